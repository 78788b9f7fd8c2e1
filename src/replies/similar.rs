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
//! Speed: grams are interned once into ids; each gram keeps the examples that contain it
//! (postings), so a question only touches the examples that share a gram with it. Callers
//! want an answer only at or above a threshold, and that prunes exactly (MaxScore): each
//! gram of the question can add at most its weight times the largest normalised weight it
//! has in any example. Grams are walked strongest first; once the bounds of the grams left
//! together stay under the threshold (or under the score an allowed example already has),
//! they cannot lift an example not yet reached to it, so their postings (the commonest
//! grams, shared by thousands of examples) are not walked: they are added only to the
//! examples already reached that can still win. The answer is the same as scoring every
//! example (a test checks it on generated questions).

use rustc_hash::FxHashMap;

/// A normalised text: the characters that carry meaning.
pub fn normalise(text: &str) -> Vec<char> {
    let mut s = String::with_capacity(text.len());
    // The platform's placeholders ([图片], [表情], [商品链接] …) are not words the buyer typed.
    let mut in_placeholder = false;
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
        s.extend(c.to_lowercase());
    }
    for (from, to) in VARIANTS {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    let mut out: Vec<char> = s.chars().filter(|c| c.is_alphanumeric() && !FILLERS.contains(c)).collect();
    // A closing 不/么/嘛/没 asks what 吗 asks (能开票不, 在么), unless it ends 什么, 怎么 ….
    let n = out.len();
    if n >= 2
        && matches!(out[n - 1], '不' | '么' | '嘛' | '没')
        && !matches!(out[n - 2], '什' | '怎' | '那' | '这' | '多')
    {
        out[n - 1] = '吗';
    }
    out
}

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
    /// For each gram, the examples holding it and the gram's normalised weight there.
    postings: Vec<Vec<(u32, f32)>>,
    /// For each gram, its largest normalised weight in any example (the pruning bound).
    max_weight: Vec<f32>,
    /// The largest weight of any gram: what a gram no example has weighs.
    max_idf: f32,
    examples: Vec<Example>,
    /// Every example's grams and their weights divided by the example's norm, by gram id,
    /// one example after another in one block (an example's are read together, in cache).
    bags: Vec<(u32, f32)>,
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
    scores: Vec<f32>,
    touched: Vec<u32>,
    query: Vec<(u32, f32)>,
    /// The question's grams: id, normalised weight, bound.
    terms: Vec<(u32, f32, f32)>,
    /// The weights of the question's weak grams, by gram id.
    weak: Vec<f32>,
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
        let mut postings = vec![Vec::new(); idf.len()];
        let mut max_weight = vec![0.0f32; idf.len()];
        let mut compiled = Vec::with_capacity(bags.len() + 1);
        let mut all = Vec::new();
        for (e, (rule, mut bag)) in bags.into_iter().enumerate() {
            for (id, tf) in bag.iter_mut() {
                *tf *= idf[*id as usize];
            }
            let norm = bag.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            for (id, w) in bag.iter_mut() {
                *w /= norm;
                postings[*id as usize].push((e as u32, *w));
                max_weight[*id as usize] = max_weight[*id as usize].max(*w);
            }
            bag.sort_unstable_by_key(|(id, _)| *id);
            compiled.push(Example { rule, bag: all.len() as u32 });
            all.extend(bag);
        }
        let max_idf = idf.iter().copied().fold(0.0f32, f32::max);
        Self { ids, idf, postings, max_weight, max_idf, examples: compiled, bags: all }
    }

    /// How many examples are indexed.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
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
        if self.examples.is_empty() {
            return None;
        }
        let chars = normalise(text);
        let q = &mut scratch.query;
        q.clear();
        let mut all = 0usize;
        for g in grams(&chars) {
            all += 1;
            let Some(&id) = self.ids.get(&g) else { continue };
            match q.iter_mut().find(|(i, _)| *i == id) {
                Some((_, tf)) => *tf += 1.0,
                None => q.push((id, 1.0)),
            }
        }
        // Unknown grams still count in the question's norm: words the examples never use
        // make the question less like all of them.
        let unknown = all - q.iter().map(|(_, tf)| *tf as usize).sum::<usize>();
        let mut qnorm = unknown as f32 * self.max_idf * self.max_idf;
        for (id, tf) in q.iter_mut() {
            *tf *= self.idf[*id as usize];
            qnorm += *tf * *tf;
        }
        let qnorm = qnorm.sqrt();
        if qnorm == 0.0 {
            return None;
        }
        let terms = &mut scratch.terms;
        terms.clear();
        terms.extend(q.iter().map(|&(id, w)| {
            let w = w / qnorm;
            (id, w, w * self.max_weight[id as usize])
        }));
        // Strongest grams first. Once the grams left cannot lift an example not yet reached
        // to the threshold, nor to the score an allowed example already has, they are only
        // added to examples that can still win; and they are cut well before that point,
        // so few examples are left that can (see WEAK_SHARE).
        terms.sort_unstable_by(|a, b| b.2.total_cmp(&a.2));
        let mut rest: f32 = terms.iter().map(|t| t.2).sum();
        let mut floor = min_score - 1e-4;
        if scratch.scores.len() < self.examples.len() {
            scratch.scores.resize(self.examples.len(), 0.0);
        }
        // Which examples were reached is written without a branch: whether an example is
        // reached for the first time is a coin toss the processor cannot predict.
        if scratch.touched.len() <= self.examples.len() {
            scratch.touched.resize(self.examples.len() + 1, 0);
        }
        let mut reached = 0usize;
        let mut strong = 0;
        while strong < terms.len() && rest >= floor * WEAK_SHARE {
            let (id, w, bound) = terms[strong];
            let (mut top, mut top_e) = (0.0f32, 0u32);
            for &(e, ew) in &self.postings[id as usize] {
                let Some(s) = scratch.scores.get_mut(e as usize) else { continue };
                if let Some(slot) = scratch.touched.get_mut(reached) {
                    *slot = e;
                }
                reached += usize::from(*s == 0.0);
                *s += w * ew;
                if *s > top {
                    (top, top_e) = (*s, e);
                }
            }
            // An allowed example's score so far is a score the answer will at least have.
            if top - 1e-4 > floor && allowed(self.examples[top_e as usize].rule) {
                floor = top - 1e-4;
            }
            rest -= bound;
            strong += 1;
        }
        // The weak grams' weights by gram id, zero elsewhere: an example is completed by one
        // pass over its own grams, with no search.
        if scratch.weak.len() < self.idf.len() {
            scratch.weak.resize(self.idf.len(), 0.0);
        }
        for &(id, w, _) in &terms[strong..] {
            scratch.weak[id as usize] = w;
        }
        let mut best: Option<(u32, Match)> = None;
        for &e in &scratch.touched[..reached.min(scratch.touched.len())] {
            let mut score = std::mem::take(&mut scratch.scores[e as usize]);
            if score + rest < floor {
                continue;
            }
            let ex = &self.examples[e as usize];
            let end = self.examples.get(e as usize + 1).map_or(self.bags.len(), |next| next.bag as usize);
            let bag = &self.bags[ex.bag as usize..end];
            for &(id, ew) in bag {
                score += scratch.weak.get(id as usize).copied().unwrap_or(0.0) * ew;
            }
            let better = best.is_none_or(|(be, b)| score > b.score || (score == b.score && e < be));
            if score >= min_score && better && allowed(ex.rule) {
                best = Some((e, Match { rule: ex.rule, score }));
            }
        }
        for &(id, _, _) in &terms[strong..] {
            scratch.weak[id as usize] = 0.0;
        }
        best.map(|(_, m)| m)
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

    /// Pruning by the threshold finds what scoring every example finds, on many generated
    /// questions sharing common characters with thousands of examples.
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
        let mut pruned_some = 0;
        for _ in 0..500 {
            let q = text(&mut rng);
            let every = idx.best(&q, &mut s, 0.0, |r| r % 3 != 0);
            for threshold in [0.3, 0.5, 0.7] {
                let got = idx.best(&q, &mut s, threshold, |r| r % 3 != 0);
                let want = every.filter(|m| m.score >= threshold);
                match (got, want) {
                    (Some(g), Some(w)) => {
                        assert!((g.score - w.score).abs() < 1e-5, "{q} at {threshold}: {g:?} vs {w:?}")
                    }
                    (None, None) => {}
                    // A score within rounding of the threshold may fall either side.
                    (g, w) => assert!(
                        g.or(w).is_some_and(|m| (m.score - threshold).abs() < 1e-5),
                        "{q} at {threshold}: {g:?} vs {w:?}"
                    ),
                }
                pruned_some += usize::from(got.is_none() && every.is_some());
            }
        }
        assert!(pruned_some > 0, "some questions fall under a threshold");
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
