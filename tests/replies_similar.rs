//! Similar questions (issue 15): the shipped rules (keywords, then examples by character
//! n-grams) on `tests/data/similar_questions.tsv`, paraphrases written for the shipped rules
//! and questions no rule should answer. Correct: the expected rule answers, or nothing when
//! none should. Wrong: another rule answers, or any rule answers a question none should.
//! Unanswered questions are neither (the away text or the agent takes them).
//! `cargo test --test replies_similar -- --nocapture` prints the figures per threshold.

use kefu::replies::auto::{Ask, AutoRules, How};
use kefu::replies::similar::Scratch;
use kefu::time::parse_rfc3339_ms;

struct Figures {
    total: usize,
    correct: usize,
    wrong: Vec<String>,
    unanswered: Vec<String>,
    /// Correct answers that came from the examples (no keyword matched).
    by_similarity: Vec<String>,
}

fn measure(rules: &AutoRules, cases: &[(String, String)], threshold: f32) -> Figures {
    let ask = Ask {
        shop: "毛菇小象",
        agent: "小美",
        ts: parse_rfc3339_ms("2026-11-02T10:00:00+08:00").unwrap(),
        order: None,
    };
    let mut scratch = Scratch::default();
    let mut f = Figures {
        total: cases.len(),
        correct: 0,
        wrong: Vec::new(),
        unanswered: Vec::new(),
        by_similarity: Vec::new(),
    };
    for (want, q) in cases {
        let found = rules.find(q, &ask, threshold, &mut scratch);
        let got = found.map(|(r, _)| rules.rules()[r].id.as_str());
        if let (Some((_, How::Similar(score))), true) = (found, got == Some(want.as_str())) {
            f.by_similarity.push(format!("{q} → {want} ({score:.2})"));
        }
        match (got, want.as_str()) {
            (None, "-") => f.correct += 1,
            (None, w) => f.unanswered.push(format!("{q} (want {w})")),
            (Some(g), w) if g == w => f.correct += 1,
            (Some(g), w) => f.wrong.push(format!("{q} → {g} (want {w})")),
        }
    }
    f
}

fn cases() -> Vec<(String, String)> {
    let text = include_str!("data/similar_questions.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (want, q) = l.split_once('\t').unwrap_or_else(|| panic!("bad line: {l}"));
            (want.to_string(), q.to_string())
        })
        .collect()
}

#[test]
fn paraphrased_questions_are_answered_85_percent_correctly_with_at_most_2_percent_wrong() {
    let rules = kefu::replies::auto::load(None).unwrap();
    let cases = cases();
    assert!(cases.len() >= 200, "{} questions", cases.len());
    let negatives = cases.iter().filter(|c| c.0 == "-").count();
    assert!(negatives >= 20, "{negatives} questions no rule should answer");
    for t in [0.3, 0.4, 0.5, 0.6, 0.7] {
        let f = measure(&rules, &cases, t);
        eprintln!(
            "threshold {t:.1}: {} questions, {} correct ({:.1}%), {} wrong ({:.1}%)",
            f.total,
            f.correct,
            f.correct as f64 * 100.0 / f.total as f64,
            f.wrong.len(),
            f.wrong.len() as f64 * 100.0 / f.total as f64
        );
    }
    let settings = kefu::replies::settings::load(None).unwrap();
    let threshold = settings.resolve("毛菇小象", "小美").similar_threshold;
    let f = measure(&rules, &cases, threshold);
    // Keywords alone, for comparison: what the matcher adds.
    let keywords = measure(&rules, &cases, f32::INFINITY);
    eprintln!("keywords only: {} correct, {} wrong", keywords.correct, keywords.wrong.len());
    eprintln!("wrong at {threshold}: {:#?}", f.wrong);
    eprintln!("unanswered at {threshold}: {:#?}", f.unanswered);
    eprintln!("answered from examples at {threshold}: {:#?}", f.by_similarity);
    assert!(f.correct * 100 >= 85 * f.total, "{} of {} correct", f.correct, f.total);
    assert!(f.wrong.len() * 100 <= 2 * f.total, "{} wrong: {:#?}", f.wrong.len(), f.wrong);
    assert!(f.correct > keywords.correct, "the examples add to the keywords");
}
