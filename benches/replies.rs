//! Replies benchmark: keyword auto-answer matching with 1,000 rules (messages/s),
//! similar-question matching with 1,000 rules and 10,000 examples (messages/s),
//! quick-reply lookup latency with 5,000 phrases (p50/p99), and Qianniu import of 10,000,
//! 40,000 and 100,000 rows (`cargo bench --bench replies -- qianniu` for that one alone;
//! `-- similar` for the similar-question one alone).
//!
//! Run: `cargo bench --bench replies`. Figures go into docs/benchmarks.md (## Replies).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use kefu::replies::auto;
use kefu::replies::quick::{Phrase, QuickBook};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const WORDS: &[&str] = &[
    "快递",
    "物流",
    "发货",
    "顺丰",
    "中通",
    "尺码",
    "码数",
    "面料",
    "颜色",
    "色差",
    "退货",
    "退款",
    "换货",
    "运费",
    "优惠",
    "优惠券",
    "聚划算",
    "活动",
    "赠品",
    "发票",
    "质量",
    "破洞",
    "脱线",
    "起球",
    "缩水",
    "掉色",
    "裙长",
    "腰围",
    "胸围",
    "身高",
    "体重",
    "孕妇",
    "显瘦",
    "现货",
    "预售",
    "定金",
    "尾款",
    "改地址",
    "备注",
    "催单",
    "加急",
    "偏远",
    "新疆",
    "西藏",
    "包邮",
    "差价",
    "价保",
    "正品",
    "实拍",
    "雪纺",
    "棉麻",
    "真丝",
    "内衬",
    "透不透",
    "拉链",
    "纽扣",
    "口袋",
    "袖子",
    "领口",
    "碎花",
    "条纹",
    "纯色",
    "黑色",
    "白色",
    "蓝色",
    "红色",
    "大码",
    "小码",
    "均码",
];

const FILLERS: &[&str] = &[
    "亲",
    "请问",
    "你好",
    "在吗",
    "这个",
    "那个",
    "我想问一下",
    "麻烦看看",
    "谢谢",
    "多久",
    "可以吗",
    "吗",
    "呢",
    "怎么",
    "什么时候",
    "能不能",
    "有没有",
    "帮我",
    "一下",
    "急",
    "好的",
    "嗯",
    "我买的",
    "昨天",
    "今天",
];

/// 1,000 rules: mostly `any` keyword pairs, some `all` + `not`, some with a regex
/// condition and some regex-only (numbered menu), as a large shop's file would have.
fn rules_toml(rng: &mut SmallRng) -> String {
    let mut out = String::new();
    for i in 0..1000 {
        let pick = |rng: &mut SmallRng| -> String {
            // Combine two vocabulary words so the 1,000 rules have ~1,000 distinct keywords.
            let a = WORDS.choose(rng).unwrap_or(&"快递");
            let b = WORDS.choose(rng).unwrap_or(&"物流");
            if rng.gen_bool(0.5) { (*a).to_string() } else { format!("{a}{b}") }
        };
        let kind = i % 10;
        let trigger = match kind {
            0..=5 => format!("any = [\"{}\", \"{}\", \"{}\"]", pick(rng), pick(rng), pick(rng)),
            6 | 7 => format!("all = [\"{}\", \"{}\"]\nnot = [\"{}\"]", pick(rng), pick(rng), pick(rng)),
            8 => format!("any = [\"{}\"]\nregex = \"\\\\d{{2,3}}\"", pick(rng)),
            _ => format!("regex = \"^\\\\s*{}\\\\s*$\"", i / 10),
        };
        out.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\ncategory = \"自定义问题\"\nquestion = \"q{i}\"\n{trigger}\npriority = {}\nanswers = [\"亲,这是第{i}条回答\", \"亲,{{店铺}}第{i}条\"]\n\n",
            rng.gen_range(-5..5)
        ));
    }
    out
}

fn message(rng: &mut SmallRng) -> String {
    let mut s = String::new();
    for _ in 0..rng.gen_range(2..6) {
        if rng.gen_bool(0.4) {
            s.push_str(WORDS.choose(rng).unwrap_or(&"快递"));
        } else {
            s.push_str(FILLERS.choose(rng).unwrap_or(&"亲"));
        }
    }
    if rng.gen_bool(0.1) {
        s.push_str(&format!("{}", rng.gen_range(150..180)));
    }
    s
}

/// CPU seconds the calling thread has used (utime + stime from /proc/thread-self/stat,
/// 10 ms ticks): the measuring thread's own, whatever else the process or the machine runs.
/// The bench machine is shared with other builds, so wall-clock rates understate the
/// code; the CPU-time rate is reported beside them.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn bench_auto(rng: &mut SmallRng) {
    let text = rules_toml(rng);
    let started = Instant::now();
    let rules = match auto::parse(Path::new("bench/auto.toml"), &text) {
        Ok(r) => r,
        Err(e) => panic!("generated rules are invalid: {e}"),
    };
    let compile = started.elapsed();
    let messages: Vec<String> = (0..20_000).map(|_| message(rng)).collect();
    let matched = messages.iter().filter(|m| rules.best(m).is_some()).count();
    let rounds = 50;
    let cpu0 = cpu_secs();
    let started = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for m in &messages {
            hits += usize::from(black_box(rules.best(black_box(m))).is_some());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu0.and_then(|c0| cpu_secs().map(|c1| c1 - c0)).unwrap_or(f64::NAN);
    let n = (rounds * messages.len()) as f64;
    println!(
        "auto-answer: {} rules compiled in {:.1} ms; {} messages x {rounds}: {:.0} messages/s wall ({:.2} µs/message), {:.0} messages per CPU-second, {:.0}% matched a rule",
        rules.rules().len(),
        compile.as_secs_f64() * 1000.0,
        messages.len(),
        n / secs,
        secs / n * 1e6,
        n / cpu,
        100.0 * matched as f64 / messages.len() as f64,
    );
    black_box(hits);
}

fn code(rng: &mut SmallRng) -> String {
    let len = rng.gen_range(2..=4);
    (0..len).map(|_| char::from(b'a' + rng.gen_range(0..26))).collect()
}

fn bench_quick(rng: &mut SmallRng) {
    let agents = ["小美", "小雪", "阿强", "阿珍"];
    let phrases: Vec<Phrase> = (0..5000)
        .map(|i| {
            let words: String = (0..rng.gen_range(6..14))
                .map(|_| {
                    if rng.gen_bool(0.5) {
                        *WORDS.choose(rng).unwrap_or(&"快递")
                    } else {
                        *FILLERS.choose(rng).unwrap_or(&"亲")
                    }
                })
                .collect();
            Phrase {
                agent: if i % 3 == 0 { None } else { Some(agents[i % 4].to_string()) },
                code: code(rng),
                text: format!("亲,{words}~"),
                group: WORDS.choose(rng).unwrap_or(&"快递").to_string(),
            }
        })
        .collect();
    let started = Instant::now();
    let book = QuickBook::new(phrases);
    let build = started.elapsed();
    let queries: Vec<String> = (0..20_000)
        .map(|i| match i % 4 {
            0 => code(rng)[..1].to_string(),
            1 => code(rng)[..2].to_string(),
            2 => WORDS.choose(rng).unwrap_or(&"发货").to_string(),
            _ => FILLERS.choose(rng).unwrap_or(&"亲").to_string(),
        })
        .collect();
    let mut lat: Vec<u64> = Vec::with_capacity(queries.len());
    let mut found = 0usize;
    for (i, q) in queries.iter().enumerate() {
        let agent = agents[i % 4];
        let t = Instant::now();
        let hits = black_box(book.find(Some(agent), black_box(q), 10));
        lat.push(t.elapsed().as_nanos() as u64);
        found += hits.len();
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    println!(
        "quick lookup: 5000 phrases indexed in {:.1} ms; {} queries (code prefixes and words, limit 10): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({:.1} results/query)",
        build.as_secs_f64() * 1000.0,
        lat.len(),
        pct(0.50),
        pct(0.99),
        *lat.last().unwrap_or(&0) as f64 / 1000.0,
        found as f64 / lat.len() as f64,
    );
}

/// A Qianniu export of `n` phrases in GBK, as Qianniu writes it (`&#44;`/`&#13;` escapes,
/// some codes and texts repeated so the duplicate warnings have work to do).
fn qianniu_csv(rng: &mut SmallRng, n: usize) -> Vec<u8> {
    let mut text = String::from("快捷短语编码,快捷短语,快捷短语分组\r\n");
    for i in 0..n {
        let words: String = (0..rng.gen_range(6..14))
            .map(|_| {
                if rng.gen_bool(0.5) {
                    *WORDS.choose(rng).unwrap_or(&"快递")
                } else {
                    *FILLERS.choose(rng).unwrap_or(&"亲")
                }
            })
            .collect();
        let group = WORDS.choose(rng).unwrap_or(&"快递");
        // Codes as Qianniu allows them: at most 4 letters, distinct (26^4 > 100,000).
        let code: String = (0..4).map(|k| char::from(b'a' + (i / 26usize.pow(k) % 26) as u8)).collect();
        text.push_str(&format!("{code},亲&#44;{words}&#13;祝您购物愉快~,{group}\r\n"));
    }
    encoding_rs::GBK.encode(&text).0.into_owned()
}

/// `kefu replies import` of a Qianniu file: read, decode, parse, check, write quick.toml,
/// re-read it. Three sizes, to show the time grows linearly with the rows.
fn bench_qianniu_import(rng: &mut SmallRng) {
    let Ok(dir) = tempfile::tempdir() else { panic!("no temp dir") };
    for n in [10_000, 40_000, 100_000] {
        let file = dir.path().join(format!("q{n}.csv"));
        let bytes = qianniu_csv(rng, n);
        if let Err(e) = std::fs::write(&file, &bytes) {
            panic!("writing {}: {e}", file.display());
        }
        let replies = dir.path().join(format!("replies{n}"));
        let cpu0 = cpu_secs();
        let started = Instant::now();
        let report = match kefu::replies::cli::import(&file, &replies, None) {
            Ok(r) => r,
            Err(e) => panic!("import failed: {e}"),
        };
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu0.and_then(|c0| cpu_secs().map(|c1| c1 - c0)).unwrap_or(f64::NAN);
        assert_eq!(report.imported, n);
        println!(
            "qianniu import: {n} rows ({:.1} MB GBK): {secs:.3} s wall, {cpu:.2} CPU-s, {:.2} µs/row, {} warnings",
            bytes.len() as f64 / 1e6,
            secs / n as f64 * 1e6,
            report.warnings.len(),
        );
    }
}

/// 1,000 rules with 10 example questions each (10,000 examples) and no keywords, so every
/// message goes through the similar-question matcher: the worst case for `AutoRules::find`.
fn bench_similar(rng: &mut SmallRng) {
    let mut text = String::new();
    let example = |rng: &mut SmallRng| -> String {
        // A product word first, so no example is all filler (which normalises to nothing).
        let mut s = WORDS.choose(rng).unwrap_or(&"快递").to_string();
        for _ in 0..rng.gen_range(1..4) {
            s.push_str(if rng.gen_bool(0.6) {
                WORDS.choose(rng).unwrap_or(&"快递")
            } else {
                FILLERS.choose(rng).unwrap_or(&"亲")
            });
        }
        s
    };
    for i in 0..1000 {
        let ex: Vec<String> = (0..10).map(|_| format!("\"{}\"", example(rng))).collect();
        text.push_str(&format!(
            "[[rule]]\nid = \"s{i}\"\ncategory = \"自定义问题\"\nquestion = \"q{i}\"\nexamples = [{}]\nanswers = [\"亲,第{i}条\"]\n\n",
            ex.join(", ")
        ));
    }
    let started = Instant::now();
    let rules = match auto::parse(Path::new("bench/auto.toml"), &text) {
        Ok(r) => r,
        Err(e) => panic!("generated rules are invalid: {e}"),
    };
    let compile = started.elapsed();
    assert_eq!(rules.similar().len(), 10_000);
    let messages: Vec<String> = (0..20_000).map(|_| message(rng)).collect();
    let ask = auto::Ask { shop: "毛菇小象", agent: "小美", ts: 1_794_362_400_000, order: None };
    let mut scratch = kefu::replies::similar::Scratch::default();
    let answered = messages.iter().filter(|m| rules.find(m, &ask, 0.5, &mut scratch).is_some()).count();
    let rounds = 10;
    let cpu0 = cpu_secs();
    let started = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for m in &messages {
            hits += usize::from(black_box(rules.find(black_box(m), &ask, 0.5, &mut scratch)).is_some());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu0.and_then(|c0| cpu_secs().map(|c1| c1 - c0)).unwrap_or(f64::NAN);
    let n = (rounds * messages.len()) as f64;
    println!(
        "similar questions: {} rules, {} examples compiled in {:.1} ms; {} messages x {rounds}: {:.0} messages/s wall ({:.2} µs/message), {:.0} messages per CPU-second, {:.0}% answered at 0.5",
        rules.rules().len(),
        rules.similar().len(),
        compile.as_secs_f64() * 1000.0,
        messages.len(),
        n / secs,
        secs / n * 1e6,
        n / cpu,
        100.0 * answered as f64 / messages.len() as f64,
    );
    black_box(hits);
}

fn main() {
    let mut rng = SmallRng::seed_from_u64(5);
    let only_import = std::env::args().any(|a| a == "qianniu");
    let only_similar = std::env::args().any(|a| a == "similar");
    if !only_import {
        bench_similar(&mut rng);
    }
    if !only_import && !only_similar {
        bench_auto(&mut rng);
        bench_quick(&mut rng);
    }
    if !only_similar {
        bench_qianniu_import(&mut rng);
    }
}
