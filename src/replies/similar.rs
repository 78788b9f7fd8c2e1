//! Similar questions (相似问法): a buyer question that no keyword rule catches is compared
//! with the example questions each rule lists, by character n-grams, and answered by the
//! closest rule when it is close enough.
//!
//! Method. Both sides are normalised first ([`normalise`]): full-width to half-width, ASCII
//! lower case, colloquial variants to one spelling (啥→什么, 咋→怎么, 木有→没有 …),
//! punctuation, spaces, emoji and filler particles (亲, 啊, 呀, 呢, 哦 …) dropped. A text is
//! then the bag of its characters and of its adjacent character pairs, each weighted by its
//! inverse document frequency over all examples (a character that occurs in every example,
//! like 吗, weighs little; a pair like 发票 weighs much). The score of a question against an
//! example is the cosine of the two weighted bags (0 to 1). Pairs make word order and
//! two-character words count; single characters keep a typo (发或 for 发货) or an inserted
//! word from breaking the match altogether. The rule of the best-scoring example answers
//! when its score reaches the shop's threshold.
//!
//! Speed: grams are interned once into ids, and grams that the same examples hold with the
//! same weights (快, 递 and 快递 when no example has one without the others) are one
//! feature with one postings list (the examples holding it), so a question only touches
//! the examples that share a feature with it, once per feature. Weights and scores are
//! fixed point (1 = 2^15): integer sums do not depend on the order they are added in, so
//! the pruned search below finds exactly the score of scoring every example (a test
//! checks it), and an example's score is a 16-bit counter (10,000 examples' counters stay
//! in the processor's first-level cache). Callers want an answer only at or above a
//! threshold, and that prunes exactly (MaxScore): each feature of the question can add at
//! most its weight times the largest weight it has in any example. Features are walked
//! cheapest first (fewest postings for what they can add); once the bounds of the features
//! left together stay under the threshold (or under the score an allowed example already
//! has), they cannot lift an example not yet reached to it, so their postings are not
//! walked: they are added only to the examples already reached that can still win.

use rustc_hash::FxHashMap;

/// A normalised text: the characters that carry meaning.
pub fn normalise(text: &str) -> Vec<char> {
    let mut out = Vec::new();
    normalise_into(text, &mut String::new(), &mut out);
    out
}

/// [`normalise`] into `out`, with `s` as scratch: a question allocates nothing.
fn normalise_into(text: &str, s: &mut String, out: &mut Vec<char>) {
    s.clear();
    out.clear();
    // The platform's placeholders ([图片], [表情], [商品链接] …) are not words the buyer typed.
    let mut in_placeholder = false;
    let mut variant = false;
    for c in text.chars() {
        match c {
            '[' => {
                in_placeholder = true;
                continue;
            }
            ']' if in_placeholder => {
                in_placeholder = false;
                continue;
            }
            _ if in_placeholder => continue,
            _ => {}
        }
        let c = match c {
            // Full-width ASCII to half-width.
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        };
        variant |= VARIANT_STARTS.contains(&c);
        // Han characters have no case: most of a question skips the case tables.
        if c.is_ascii() {
            s.push(c.to_ascii_lowercase());
        } else if is_han(c) {
            s.push(c);
        } else {
            s.extend(c.to_lowercase());
        }
    }
    // Only a text holding the first character of a variant can change (most do not).
    if variant {
        for (from, to) in VARIANTS {
            if s.contains(from) {
                *s = s.replace(from, to);
            }
        }
    }
    out.extend(s.chars().filter(|&c| {
        let meaning = if c.is_ascii() { c.is_ascii_alphanumeric() } else { is_han(c) || c.is_alphanumeric() };
        meaning && !FILLERS.contains(&c)
    }));
    // A closing 不/么/嘛/没 asks what 吗 asks (能开票不, 在么), unless it ends 什么, 怎么 ….
    let n = out.len();
    if n >= 2
        && matches!(out[n - 1], '不' | '么' | '嘛' | '没')
        && !matches!(out[n - 2], '什' | '怎' | '那' | '这' | '多')
    {
        out[n - 1] = '吗';
    }
}

/// CJK Unified Ideographs: letters (alphanumeric) without case.
fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// The first characters of [`VARIANTS`].
const VARIANT_STARTS: &[char] =
    &['啥', '神', '什', '咋', '肿', '木', '没', '哪', '时', '优', '能', '可', '有', '是'];

/// Colloquial and input-method variants, mapped to the form the examples use.
const VARIANTS: &[(&str, &str)] = &[
    ("啥", "什么"),
    ("神马", "什么"),
    ("什摸", "什么"),
    ("咋", "怎么"),
    ("肿么", "怎么"),
    ("木有", "没有"),
    ("没得", "没有"),
    ("哪儿", "哪里"),
    ("哪里", "哪"),
    ("时侯", "时候"),
    ("优惠卷", "优惠券"),
    ("能不能", "能"),
    ("可不可以", "可以"),
    ("有没有", "有"),
    ("是不是", "是"),
];

/// Particles and forms of address that change nothing in a question.
const FILLERS: &[char] =
    &['亲', '啊', '呀', '呢', '哦', '喔', '噢', '吧', '啦', '哈', '嗯', '额', '呗', '滴', '哇', '嘞'];

/// The grams of a normalised text: each character, then each adjacent pair, packed into a
/// `u64` (a pair sets the top bit so it never equals a character).
fn grams(chars: &[char]) -> impl Iterator<Item = u64> + '_ {
    let singles = chars.iter().map(|&c| c as u64);
    let pairs = chars.windows(2).map(|w| (1 << 63) | ((w[0] as u64) << 21) | w[1] as u64);
    singles.chain(pairs)
}

/// How much of the threshold the skipped grams' bounds may use. All of it skips the most
/// postings but leaves most examples reached to be completed one by one, which costs more
/// (measured); half keeps that to the few examples already halfway there.
const WEAK_SHARE: f32 = 0.5;

/// Scores are fixed-point: a weight or a score of 1 is `ONE`. Integer sums are exact, so
/// the order postings are added in cannot change a score, and the pruned search and the
/// exhaustive one give the same numbers, not nearly the same.
const ONE: u32 = 1 << 15;

/// A normalised weight (0 to 1) in fixed point, at least 1 so a shared gram always counts.
fn quantise(w: f32) -> u16 {
    ((w * ONE as f32).round() as u32).clamp(1, ONE - 1) as u16
}

/// What a gram of the question (weight `q`, 0 = not in it) and of an example (weight `e`)
/// add to their score: the product, rounded down, plus one, so an example a question
/// reaches never scores 0 (the search counts the examples it reaches by that).
#[inline(always)]
fn part(q: u32, e: u16) -> u32 {
    ((u64::from(q) * u64::from(e)) >> 15) as u32 + u32::from(q != 0)
}

/// One example question, compiled.
#[derive(Debug, Clone)]
struct Example {
    /// The rule it belongs to (an index into the rule list the caller keeps).
    rule: u32,
    /// Where its grams start in [`SimilarIndex::bags`]; they end where the next one's start.
    bag: u32,
}

/// The compiled examples of every rule.
#[derive(Debug, Clone, Default)]
pub struct SimilarIndex {
    ids: FxHashMap<u64, u32>,
    idf: Vec<f32>,
    /// Each gram's feature: grams held by the same examples with the same weights (快, 递
    /// and 快递, when no example has one without the others) are one feature, with one
    /// postings list, walked once.
    feature: Vec<u32>,
    /// Where each feature's postings start in `post_example`/`post_weight` (one more entry
    /// than grams: a gram's end is the next one's start).
    post_start: Vec<u32>,
    /// The examples holding each gram, gram after gram.
    post_example: Vec<u32>,
    /// The gram's normalised weight in that example (fixed point).
    post_weight: Vec<u16>,
    /// For each feature, its largest normalised weight in any example (the pruning bound).
    max_weight: Vec<u16>,
    /// The largest weight of any gram: what a gram no example has weighs.
    max_idf: f32,
    examples: Vec<Example>,
    /// Every example's features and their normalised weights, by feature, one example after
    /// another in one block (an example's are read together, in cache).
    bags: Vec<(u32, u16)>,
}

/// The closest rule found for a question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// The rule (index given at build time).
    pub rule: u32,
    /// Cosine similarity, 0 to 1.
    pub score: f32,
}

/// Scratch space for [`SimilarIndex::best`], kept by the caller so a question allocates
/// nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    scores: Vec<u16>,
    touched: Vec<u32>,
    query: Vec<(u64, f32)>,
    /// The question's grams no example has, and how often.
    unknown: Vec<(u64, f32)>,
    /// The question, normalised.
    text: String,
    chars: Vec<char>,
    /// The question's grams: id, weight, bound (fixed point).
    terms: Vec<Term>,
    /// The weights of the question's weak grams, by gram id.
    weak: Vec<u32>,
}

/// A gram of the question.
#[derive(Debug, Clone, Copy)]
struct Term {
    id: u32,
    weight: u32,
    /// The most it can add to any example's score.
    bound: u32,
    /// How many examples hold it.
    postings: u32,
}

impl SimilarIndex {
    /// Compiles `(rule, example text)` pairs.
    pub fn build<'a>(examples: impl IntoIterator<Item = (u32, &'a str)>) -> Self {
        let mut ids: FxHashMap<u64, u32> = FxHashMap::default();
        let mut df: Vec<u32> = Vec::new();
        let mut bags: Vec<(u32, Vec<(u32, f32)>)> = Vec::new();
        for (rule, text) in examples {
            let chars = normalise(text);
            let mut bag: Vec<(u32, f32)> = Vec::new();
            for g in grams(&chars) {
                let next = ids.len() as u32;
                let id = *ids.entry(g).or_insert(next);
                if id as usize == df.len() {
                    df.push(0);
                }
                match bag.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, tf)) => *tf += 1.0,
                    None => {
                        bag.push((id, 1.0));
                        df[id as usize] += 1;
                    }
                }
            }
            if !bag.is_empty() {
                bags.push((rule, bag));
            }
        }
        let n = bags.len().max(1) as f32;
        let idf: Vec<f32> = df.iter().map(|&d| (1.0 + n / d as f32).ln()).collect();
        let mut postings: Vec<Vec<(u32, u16)>> = vec![Vec::new(); idf.len()];
        let mut fixed: Vec<(u32, Vec<(u32, u16)>)> = Vec::with_capacity(bags.len());
        for (e, (rule, mut bag)) in bags.into_iter().enumerate() {
            for (id, tf) in bag.iter_mut() {
                *tf *= idf[*id as usize];
            }
            let norm = bag.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            let bag: Vec<(u32, u16)> = bag.iter().map(|&(id, w)| (id, quantise(w / norm))).collect();
            for &(id, w) in &bag {
                postings[id as usize].push((e as u32, w));
            }
            fixed.push((rule, bag));
        }
        // Grams with the same postings are one feature.
        let mut features: FxHashMap<&[(u32, u16)], u32> = FxHashMap::default();
        let mut feature = Vec::with_capacity(postings.len());
        let mut post_start = Vec::new();
        let mut post_example = Vec::new();
        let mut post_weight = Vec::new();
        let mut max_weight = Vec::new();
        for list in &postings {
            let next = features.len() as u32;
            let f = *features.entry(list.as_slice()).or_insert(next);
            if f == next {
                post_start.push(post_example.len() as u32);
                post_example.extend(list.iter().map(|p| p.0));
                post_weight.extend(list.iter().map(|p| p.1));
                max_weight.push(list.iter().map(|p| p.1).max().unwrap_or(0));
            }
            feature.push(f);
        }
        post_start.push(post_example.len() as u32);
        let mut compiled = Vec::with_capacity(fixed.len() + 1);
        let mut all = Vec::new();
        for (rule, bag) in fixed {
            let mut bag: Vec<(u32, u16)> = bag.iter().map(|&(id, w)| (feature[id as usize], w)).collect();
            bag.sort_unstable_by_key(|(f, _)| *f);
            bag.dedup_by_key(|(f, _)| *f);
            compiled.push(Example { rule, bag: all.len() as u32 });
            all.extend(bag);
        }
        let max_idf = idf.iter().copied().fold(0.0f32, f32::max);
        Self {
            ids,
            idf,
            feature,
            post_start,
            post_example,
            post_weight,
            max_weight,
            max_idf,
            examples: compiled,
            bags: all,
        }
    }

    /// How many examples are indexed.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The postings of gram `id`: examples and weights.
    fn postings(&self, id: u32) -> (&[u32], &[u16]) {
        let (a, b) = (self.post_start[id as usize] as usize, self.post_start[id as usize + 1] as usize);
        (&self.post_example[a..b], &self.post_weight[a..b])
    }

    /// The grams of example `e` and their weights.
    fn bag(&self, e: usize) -> &[(u32, u16)] {
        let end = self.examples.get(e + 1).map_or(self.bags.len(), |next| next.bag as usize);
        &self.bags[self.examples[e].bag as usize..end]
    }

    /// The question's known grams with their fixed-point weights into `terms` (bounds
    /// included); false when the question has no gram at all.
    fn terms(&self, text: &str, scratch: &mut Scratch) -> bool {
        // (A feature's weight is the sum of its grams' weights.)
        normalise_into(text, &mut scratch.text, &mut scratch.chars);
        let (chars, q, terms) = (&scratch.chars, &mut scratch.query, &mut scratch.terms);
        // Known grams by id in `q`, the others by gram.
        q.clear();
        terms.clear();
        let unknown = &mut scratch.unknown;
        unknown.clear();
        for g in grams(chars) {
            let (list, key) = match self.ids.get(&g) {
                Some(&id) => (&mut *q, u64::from(id)),
                None => (&mut *unknown, g),
            };
            match list.iter_mut().find(|(i, _)| *i == key) {
                Some((_, tf)) => *tf += 1.0,
                None => list.push((key, 1.0)),
            }
        }
        // Unknown grams still count in the question's norm, as heavy as the rarest known
        // gram: words the examples never use make the question less like all of them.
        let mut qnorm: f32 = unknown.iter().map(|(_, tf)| (tf * self.max_idf).powi(2)).sum();
        for (id, tf) in q.iter_mut() {
            *tf *= self.idf[*id as usize];
            qnorm += *tf * *tf;
        }
        let qnorm = qnorm.sqrt();
        if qnorm == 0.0 {
            return false;
        }
        for &(id, w) in q.iter() {
            let id = id as u32;
            let weight = u32::from(quantise(w / qnorm));
            let f = self.feature[id as usize];
            match terms.iter_mut().find(|t| t.id == f) {
                Some(t) => t.weight = t.weight.saturating_add(weight),
                None => {
                    let (a, b) = (self.post_start[f as usize], self.post_start[f as usize + 1]);
                    terms.push(Term { id: f, weight, bound: 0, postings: b - a });
                }
            }
        }
        for t in terms.iter_mut() {
            t.bound = part(t.weight, self.max_weight[t.id as usize]);
        }
        true
    }

    /// The example closest to `text` with a score of at least `min_score`, among those
    /// whose rule `allowed` accepts (scope, time, order conditions); ties go to the earlier
    /// example. `None` when no allowed example reaches `min_score`.
    pub fn best(
        &self,
        text: &str,
        scratch: &mut Scratch,
        min_score: f32,
        allowed: impl Fn(u32) -> bool,
    ) -> Option<Match> {
        if self.examples.is_empty() || !self.terms(text, scratch) {
            return None;
        }
        let min = min_acc(min_score);
        let terms = &mut scratch.terms;
        // Cheapest features first: those with few postings for what they can add (measured:
        // 5 % fewer postings walked than strongest first). The last ones, whose bounds
        // together cannot lift an example not yet reached to the threshold, are not walked:
        // they are only added to the examples that can still win, and they are cut well
        // before that point, so few examples are left that can (see WEAK_SHARE).
        terms.sort_unstable_by(|a, b| {
            (u64::from(a.postings) * u64::from(b.bound))
                .cmp(&(u64::from(b.postings) * u64::from(a.bound)))
                .then(a.id.cmp(&b.id))
        });
        // (u64: a long question's bounds could add up past u32.)
        let mut rest: u64 = terms.iter().map(|t| u64::from(t.bound)).sum();
        let mut floor = u64::from(min);
        if scratch.scores.len() < self.examples.len() {
            scratch.scores.resize(self.examples.len(), 0);
        }
        if scratch.touched.len() <= self.examples.len() {
            scratch.touched.resize(self.examples.len() + 1, 0);
        }
        let mut reached = 0usize;
        let mut strong = 0;
        // The buffers as local slices, so their addresses stay in registers in the loop.
        let (scores, touched) = (&mut scratch.scores[..], &mut scratch.touched[..]);
        while strong < terms.len() && rest as f32 >= floor as f32 * WEAK_SHARE {
            let t = terms[strong];
            let (examples, weights) = self.postings(t.id);
            reached = walk(examples, weights, t.weight, scores, touched, reached);
            rest -= u64::from(t.bound);
            strong += 1;
        }
        // The weak features' weights by feature, zero elsewhere: an example is completed by
        // one pass over its own features, with no search.
        if scratch.weak.len() < self.max_weight.len() {
            scratch.weak.resize(self.max_weight.len(), 0);
        }
        for t in &terms[strong..] {
            scratch.weak[t.id as usize] = t.weight;
        }
        let mut best: Option<(u32, u32)> = None;
        for &e in &scratch.touched[..reached.min(scratch.touched.len())] {
            let mut score = u32::from(std::mem::take(&mut scratch.scores[e as usize]));
            if u64::from(score) + rest < floor {
                continue;
            }
            for &(id, ew) in self.bag(e as usize) {
                score = score.saturating_add(part(scratch.weak.get(id as usize).copied().unwrap_or(0), ew));
            }
            let score = score.min(u32::from(u16::MAX));
            let better = best.is_none_or(|(be, b)| score > b || (score == b && e < be));
            if score >= min && better && allowed(self.examples[e as usize].rule) {
                best = Some((e, score));
                // The answer scores at least this: examples that cannot reach it are out
                // (one that can only tie it is kept: a tie goes to the earlier example).
                floor = floor.max(u64::from(score));
            }
        }
        for t in &terms[strong..] {
            scratch.weak[t.id as usize] = 0;
        }
        best.map(|(e, score)| Match {
            rule: self.examples[e as usize].rule,
            score: score as f32 / ONE as f32,
        })
    }

    /// [`SimilarIndex::best`] by scoring every example in full: what the search must find.
    #[cfg(test)]
    fn best_exhaustive(&self, text: &str, min_score: f32, allowed: impl Fn(u32) -> bool) -> Option<Match> {
        let mut scratch = Scratch::default();
        if self.examples.is_empty() || !self.terms(text, &mut scratch) {
            return None;
        }
        let terms = scratch.terms;
        let mut weight = vec![0u32; self.max_weight.len()];
        for t in &terms {
            weight[t.id as usize] = t.weight;
        }
        let mut best: Option<(usize, u32)> = None;
        for e in 0..self.examples.len() {
            let score =
                self.bag(e).iter().fold(0u32, |s, &(id, ew)| s.saturating_add(part(weight[id as usize], ew)));
            let score = score.min(u32::from(u16::MAX));
            if score >= min_acc(min_score).max(1)
                && best.is_none_or(|(_, b)| score > b)
                && allowed(self.examples[e].rule)
            {
                best = Some((e, score));
            }
        }
        best.map(|(e, score)| Match { rule: self.examples[e].rule, score: score as f32 / ONE as f32 })
    }

    /// Similarity of two texts on this index's weights (for grouping misses); grams no
    /// example has weigh as much as the rarest known one.
    pub fn similarity(&self, a: &str, b: &str) -> f32 {
        let bag = |t: &str| -> FxHashMap<u64, f32> {
            let mut m = FxHashMap::default();
            for g in grams(&normalise(t)) {
                *m.entry(g).or_insert(0.0) += 1.0;
            }
            m
        };
        let (ba, bb) = (bag(a), bag(b));
        let max = self.idf.iter().copied().fold(1.0f32, f32::max);
        let w = |g: &u64| self.ids.get(g).map_or(max, |&i| self.idf[i as usize]);
        let norm = |m: &FxHashMap<u64, f32>| m.iter().map(|(g, tf)| (tf * w(g)).powi(2)).sum::<f32>().sqrt();
        let dot: f32 = ba.iter().filter_map(|(g, ta)| bb.get(g).map(|tb| ta * tb * w(g) * w(g))).sum();
        let d = norm(&ba) * norm(&bb);
        if d == 0.0 { 0.0 } else { dot / d }
    }
}

/// Adds a gram's postings to the scores and appends the examples reached for the first
/// time to `touched` (from `reached` on, written without a branch: whether an example is
/// reached for the first time is a coin toss the processor cannot predict); returns how
/// many `touched` holds now. Its own
/// function so the count stays in a register (inlined, it was kept in memory and every
/// posting waited on the store of the previous one).
#[inline(never)]
fn walk(
    examples: &[u32],
    weights: &[u16],
    weight: u32,
    scores: &mut [u16],
    touched: &mut [u32],
    mut reached: usize,
) -> usize {
    for (&e, &ew) in examples.iter().zip(weights) {
        let Some(s) = scores.get_mut(e as usize) else { continue };
        if let Some(slot) = touched.get_mut(reached) {
            *slot = e;
        }
        reached += usize::from(*s == 0);
        *s = s.saturating_add(part(weight, ew).min(u32::from(u16::MAX)) as u16);
    }
    reached
}

/// The fixed-point score a match needs (at least 1: an example sharing no gram is no match).
fn min_acc(min_score: f32) -> u32 {
    ((min_score * ONE as f32).ceil() as u32).max(1)
}

/// Misses grouped by similarity: each group's first question stands for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissGroup {
    /// The first question of the group.
    pub question: String,
    /// How many misses it holds.
    pub count: usize,
    /// Up to five other wordings, in order of arrival.
    pub others: Vec<String>,
}

/// How similar two unanswered questions must be to share a group.
pub const MISS_GROUP_THRESHOLD: f32 = 0.5;

/// Groups questions greedily: each joins the first group whose first question is at least
/// `threshold` similar, else starts one. Largest groups first, ties by first arrival.
pub fn group_misses<'a>(
    index: &SimilarIndex,
    questions: impl IntoIterator<Item = &'a str>,
    threshold: f32,
) -> Vec<MissGroup> {
    let mut groups: Vec<MissGroup> = Vec::new();
    for q in questions {
        match groups.iter_mut().find(|g| g.question == q || index.similarity(&g.question, q) >= threshold) {
            Some(g) => {
                g.count += 1;
                if g.question != q && g.others.len() < 5 && !g.others.iter().any(|o| o == q) {
                    g.others.push(q.to_string());
                }
            }
            None => groups.push(MissGroup { question: q.to_string(), count: 1, others: Vec::new() }),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_maps_variants_and_drops_fillers() {
        let cases = [
            ("亲，啥时候发货呀？", "什么时候发货"),
            ("咋还不发货啊!!", "怎么还不发货"),
            ("能开票不", "能开票吗"),
            ("ＳＦ 可以吗~", "sf可以吗"),
            ("有没有优惠卷 😀", "有优惠券"),
            ("[图片]", ""),
            ("[表情]好的", "好的"),
        ];
        for (text, want) in cases {
            assert_eq!(normalise(text).into_iter().collect::<String>(), want, "{text}");
        }
    }

    #[test]
    fn paraphrases_typos_and_extra_words_find_their_example() {
        let ex = [(0, "什么时候发货"), (1, "能开发票吗"), (2, "退货运费谁出"), (3, "衣服是什么面料")];
        let idx = SimilarIndex::build(ex);
        let mut s = Scratch::default();
        let cases = [
            ("啥时候能发货", Some(0)),
            ("什么时候发或", Some(0)),
            ("请问一下你们这个大概什么时候能发货呀", Some(0)),
            ("可以开票不", Some(1)),
            ("退回去运费谁承担", Some(2)),
            ("面料是啥", Some(3)),
        ];
        for (q, want) in cases {
            let got = idx.best(q, &mut s, 0.3, |_| true).map(|m| m.rule);
            assert_eq!(got, want, "{q}: {:?}", idx.best(q, &mut s, 0.0, |_| true));
        }
        assert!(idx.best("今天天气好", &mut s, 0.3, |_| true).is_none());
        // The filter removes a rule from the running.
        assert_ne!(idx.best("啥时候能发货", &mut s, 0.0, |r| r != 0).map(|m| m.rule), Some(0));
    }

    /// Pruning by the threshold finds exactly what scoring every example finds (rule and
    /// score), on many generated questions sharing common characters with thousands of
    /// examples.
    #[test]
    fn pruned_search_equals_scoring_every_example() {
        use rand::rngs::SmallRng;
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let words =
            ["快递", "发货", "退货", "运费", "尺码", "面料", "颜色", "发票", "优惠券", "包邮", "色差"];
        let fillers = ["请问", "吗", "什么时候", "可以吗", "怎么", "一下", "这个", "今天", "谢谢"];
        let mut rng = SmallRng::seed_from_u64(9);
        let text = |rng: &mut SmallRng| -> String {
            (0..rng.gen_range(1..5))
                .map(|_| if rng.gen_bool(0.5) { words.choose(rng) } else { fillers.choose(rng) })
                .map(|w| *w.unwrap_or(&"吗"))
                .collect()
        };
        let examples: Vec<(u32, String)> = (0..2_000).map(|i| (i / 5, text(&mut rng))).collect();
        let idx = SimilarIndex::build(examples.iter().map(|(r, t)| (*r, t.as_str())));
        let mut s = Scratch::default();
        let allowed = |r: u32| !r.is_multiple_of(3);
        let (mut pruned_some, mut answered) = (0, [0; 4]);
        for _ in 0..500 {
            let q = text(&mut rng);
            let every = idx.best_exhaustive(&q, 0.0, allowed);
            for (i, threshold) in [0.0, 0.3, 0.5, 0.7].into_iter().enumerate() {
                let got = idx.best(&q, &mut s, threshold, allowed);
                assert_eq!(got, idx.best_exhaustive(&q, threshold, allowed), "{q} at {threshold}");
                pruned_some += usize::from(got.is_none() && every.is_some());
                answered[i] += usize::from(got.is_some());
            }
        }
        assert!(pruned_some > 0, "some questions fall under a threshold");
        assert!(answered.iter().all(|&a| a > 0), "every threshold answers some: {answered:?}");
    }

    /// The fixed-point score, over merged features, is the cosine of the weighted bags
    /// computed from the definition in floating point.
    #[test]
    fn fixed_point_scores_are_the_cosine() {
        let examples = [
            "什么时候发货",
            "能开发票吗",
            "发票怎么开",
            "快递快递到哪了",
            "退货运费谁出",
            "发什么快递",
            "快递什么时候到",
        ];
        let idx = SimilarIndex::build(examples.iter().enumerate().map(|(i, t)| (i as u32, *t)));
        let n = examples.len() as f32;
        let df = |g: u64| examples.iter().filter(|e| grams(&normalise(e)).any(|x| x == g)).count();
        let max_idf = examples
            .iter()
            .flat_map(|e| grams(&normalise(e)).collect::<Vec<_>>())
            .map(|g| (1.0 + n / df(g) as f32).ln())
            .fold(0.0f32, f32::max);
        let bag = |t: &str| -> FxHashMap<u64, f32> {
            let mut m = FxHashMap::default();
            for g in grams(&normalise(t)) {
                let d = df(g);
                *m.entry(g).or_insert(0.0) += if d == 0 { max_idf } else { (1.0 + n / d as f32).ln() };
            }
            m
        };
        let norm = |m: &FxHashMap<u64, f32>| m.values().map(|w| w * w).sum::<f32>().sqrt();
        let mut s = Scratch::default();
        for q in
            ["什么时候发货呀", "发票能开吗", "快递到哪", "退货谁出运费", "今天天气好快递", "快递快递快递"]
        {
            let bq = bag(q);
            for (i, e) in examples.iter().enumerate() {
                let be = bag(e);
                let dot: f32 = bq.iter().filter_map(|(g, w)| be.get(g).map(|v| w * v)).sum();
                let want = dot / (norm(&bq) * norm(&be));
                let got = idx.best(q, &mut s, 0.0, |r| r == i as u32).map_or(0.0, |m| m.score);
                assert!((got - want).abs() < 1e-3, "{q} / {e}: {got} vs {want}");
            }
        }
    }

    /// `normalise` skips the case and letter tables for Han characters and the variant
    /// table for texts without a variant's first character: both shortcuts agree with them.
    #[test]
    fn the_shortcuts_of_normalise_agree_with_the_tables() {
        for c in '\u{4e00}'..='\u{9fff}' {
            assert!(c.is_alphanumeric() && c.to_lowercase().eq([c]), "{c}");
        }
        for (from, _) in VARIANTS {
            assert!(from.chars().next().is_some_and(|c| VARIANT_STARTS.contains(&c)), "{from}");
        }
    }

    #[test]
    fn misses_group_by_similarity() {
        let idx = SimilarIndex::build([(0, "什么时候发货")]);
        let qs = ["能开发票吗", "你们老板是谁", "可以开发票吗", "能开发票么", "老板是谁啊"];
        let g = group_misses(&idx, qs, 0.5);
        assert_eq!(g[0].question, "能开发票吗");
        assert_eq!(g[0].count, 3);
        assert_eq!(g[1].count, 2);
    }
}
