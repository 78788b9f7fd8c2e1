//! The phrase guard end to end: shipped rules per category, evasions, near misses, personal
//! data masked everywhere but the database, rule-file errors, and a replay of a day.

use kefu::event::{self, Event};
use kefu::guard::{Guard, Severity, store};
use kefu::store::Store;

fn guard() -> Guard {
    Guard::load(None).unwrap_or_else(|e| panic!("{e:?}"))
}

/// `(category, text, matched original text)` for the first finding of `category`.
fn hit(g: &Guard, text: &str, category: &str) -> Option<String> {
    g.check_text(text).into_iter().find(|f| f.category == category).map(|f| {
        let got: String = text.chars().skip(f.start).take(f.end - f.start).collect();
        assert_eq!(got, f.matched, "span of {category} in {text}");
        f.matched
    })
}

/// Each shipped category: plain hits, evasions (spacing, symbols, full width, traditional,
/// variants, repeats) with the original span they cover, and near misses that must not flag.
#[test]
fn shipped_categories_catch_evasions_and_spare_near_misses() {
    let g = guard();
    #[rustfmt::skip]
    let hits: &[(&str, &str, &str)] = &[
        ("推卸责任", "这个不归我管的", "不归我管"),
        ("推卸责任", "你找 快递 去吧", "你找 快递 去"),
        ("推卸责任", "不關我的事", "不關我的事"),
        ("推卸责任", "我也*没*办法", "我也*没*办法"),
        ("生硬不耐烦", "说了多少遍了", "说了多少遍了"),
        ("生硬不耐烦", "說了多少遍了！", "說了多少遍了"),
        ("生硬不耐烦", "爱 买 不 买", "爱 买 不 买"),
        ("生硬不耐烦", "随便你吧", "随便你"),
        ("生硬不耐烦", "爱爱买不买买", "爱爱买不买买"),
        ("责备客户", "你怎么不看详情呢", "你怎么不看详情"),
        ("责备客户", "是你自己拍错了", "是你自己拍错了"),
        ("责备客户", "你怎麼不看詳情", "你怎麼不看詳情"),
        ("与客户争执", "你爱投诉就投诉", "你爱投诉就投诉"),
        ("与客户争执", "你 有 病 吧", "你 有 病 吧"),
        ("与客户争执", "買不起就別買", "買不起就別買"),
        ("引导站外", "加微信聊", "加微信聊"),
        ("引导站外", "加 微 信", "加 微 信"),
        ("引导站外", "加，微，信", "加，微，信"),
        ("引导站外", "亲，加-V-信吧", "加-V-信"),
        ("引导站外", "加ＶＸ", "加ＶＸ"),
        ("引导站外", "加薇信", "加薇信"),
        ("引导站外", "+v信", "+v信"),
        ("引导站外", "支*付*宝转账", "支*付*宝转账"),
        ("引导站外", "用ZFB转账吧", "ZFB转账"),
        ("引导站外", "私下交易更便宜", "私下交易"),
        ("引导站外", "QQ号 12345678", "QQ号 12345678"),
        ("引导站外", "扣扣号 12345678", "扣扣号 12345678"),
        ("好评返现", "好评返现哦", "好评返现"),
        ("好评返现", "好評送小禮品", "好評送"),
        ("好评返现", "好评截图发我返5元", "好评截图发我返5元"),
        ("邀评改评", "给个五星好评吧", "给个五星好评"),
        ("邀评改评", "给个5星好评吧", "给个5星好评"),
        ("邀评改评", "麻烦把差评改一下", "把差评改"),
        ("广告法极限词", "全网最好的面料", "最好"),
        ("广告法极限词", "销量第一", "第一"),
        ("广告法极限词", "國家級品質", "國家級"),
        ("广告法极限词", "１００％好评", "１００％"),
        ("广告法极限词", "最 佳 选择", "最 佳"),
        ("私自改价", "拍下我改价给你", "拍下我改价"),
        ("私自改价", "99元卖给你", "99元卖给你"),
        ("私自改价", "帮您改價", "帮您改價"),
        ("擅自承诺", "保证明天到", "保证明天到"),
        ("擅自承诺", "保證 明天到！", "保證 明天到"),
        ("推卸责任", "不-归-我-管", "不-归-我-管"),
        ("责备客户", "是你自己的问题", "是你自己的问题"),
        ("与客户争执", "傻 逼", "傻 逼"),
        ("邀评改评", "求求好評", "求求好評"),
    ];
    for &(category, text, matched) in hits {
        assert_eq!(hit(&g, text, category).as_deref(), Some(matched), "{category}: {text}");
    }
    #[rustfmt::skip]
    let misses: &[(&str, &str)] = &[
        ("广告法极限词", "第一次购买可以领券"),
        ("广告法极限词", "第一时间给您发货"),
        ("广告法极限词", "最好的办法是先量尺寸"),
        ("广告法极限词", "您最好先量一下腰围"),
        ("广告法极限词", "面料是100%纯棉的"),
        ("广告法极限词", "绝对不会让您吃亏"),
        ("引导站外", "亲，平台规定不能加微信哦"),
        ("引导站外", "支持支付宝付款的"),
        ("引导站外", "淘宝不支持微信付款哦"),
        ("引导站外", "我们不支持私下交易"),
        ("生硬不耐烦", "款式随便你挑"),
        ("生硬不耐烦", "这款我常买，不买别家的"),
        ("责备客户", "是你自己用还是送人呢"),
        ("与客户争执", "商品有毛病的话直接退"),
        ("邀评改评", "感谢您的五星好评"),
        ("好评返现", "我们店好评率很高的"),
        ("擅自承诺", "一般明天能到，不能保证哦"),
        ("与客户争执", "闭嘴夹要几个"),
        ("推卸责任", "我帮您联系快递"),
        ("私自改价", "帮您改一下地址"),
        ("引导站外", "这件有折扣，扣子是金属的"),
    ];
    for &(category, text) in misses {
        assert_eq!(hit(&g, text, category), None, "{category} must not flag: {text}");
    }
}

#[test]
fn each_finding_says_why() {
    let g = guard();
    let f = g.check_text("加 -V- 信");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].severity, f[0].points), (Severity::Critical, -10));
    assert_eq!(f[0].rule, "phrase 加微信");
    assert_eq!(f[0].normalized, "加微信");
    assert_eq!(g.normalized("加 -V- 信"), "加微信");
}

fn events() -> Vec<Event> {
    let text = include_str!("data/guard_traffic.jsonl");
    text.lines().map(|l| event::parse(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

/// A day of traffic with seeded violations: every one is reported with its span, only for
/// the senders its category watches, and personal data never appears unmasked.
#[test]
fn replaying_seeded_traffic_reports_every_violation() {
    let g = guard();
    let mut got = Vec::new();
    for e in events() {
        for f in g.check_event(&e) {
            got.push((f.message_id.clone(), f.category.clone(), f.start, f.end, f.matched.clone()));
        }
    }
    let want: Vec<(String, String, usize, usize, String)> = [
        ("m2", "广告法极限词", 5, 10, "全网最低价"),
        ("m4", "引导站外", 0, 7, "加 -V- 信"),
        ("m4", "引导站外-微信号", 12, 22, "k***a"),
        ("m4", "私自改价", 23, 29, "私下给你优惠"),
        ("m5", "买家辱骂", 4, 6, "黑店"),
        ("m6", "生硬不耐烦", 0, 6, "說了多少遍了"),
        ("m6", "生硬不耐烦", 8, 12, "愛買不買"),
        ("m9", "个人信息-手机号", 6, 19, "139****4321"),
        ("m9", "好评返现", 23, 29, "好评返现5元"),
    ]
    .into_iter()
    .map(|(a, b, c, d, e)| (a.to_string(), b.to_string(), c, d, e.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn personal_data_is_masked_everywhere_but_the_database() {
    let g = guard();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let store = Store::open(&db).unwrap();
    let mut alerts = Vec::new();
    let mut all_json = String::new();
    for e in events() {
        let flags = g.check_event(&e);
        all_json += &serde_json::to_string(&flags).unwrap();
        alerts.extend(flags.iter().filter_map(|f| f.alert()));
        store::save_flags(&store, &e, &flags).unwrap();
        // Saving twice adds nothing: replays are idempotent.
        assert_eq!(store::save_flags(&store, &e, &flags).unwrap(), 0);
    }
    let raw = ["13987654321", "139 8765 4321", "kefu_2024a"];
    let listing = kefu::guard::cli::flags(&db, None, None, false).unwrap();
    let listing_json = kefu::guard::cli::flags(&db, Some("2026-11-12"), Some("a1"), true).unwrap();
    let check_text = kefu::guard::cli::check_text("vx：kefu_2024a 电话13987654321", None, false).unwrap();
    let check_json = kefu::guard::cli::check_text("vx：kefu_2024a 电话13987654321", None, true).unwrap();
    let alert_json = serde_json::to_string(&alerts).unwrap();
    for (what, out) in [
        ("flags json", &all_json),
        ("kefu flags", &listing),
        ("kefu flags --json", &listing_json),
        ("check-text", &check_text),
        ("check-text --json", &check_json),
        ("alerts", &alert_json),
    ] {
        for r in raw {
            assert!(!out.contains(r), "{what} leaks {r}:\n{out}");
        }
    }
    assert!(listing.contains("139****4321") && listing.contains("k***a"), "{listing}");
    assert!(check_text.contains("139****4321"), "{check_text}");
    // Critical findings carry what an alert needs, masked.
    let wechat = alerts.iter().find(|a| a.category == "引导站外-微信号").expect("wechat alert");
    assert_eq!(
        (wechat.agent.as_str(), wechat.conversation.as_str(), wechat.matched.as_str()),
        ("a1", "c1", "k***a")
    );
    assert!(alerts.iter().all(|a| a.severity == Severity::Critical));
    // The database alone keeps the raw text.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: Vec<String> = conn
        .prepare("SELECT matched FROM flags ORDER BY ts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(stored.iter().any(|m| m == "kefu_2024a"), "{stored:?}");
    assert!(stored.iter().any(|m| m == "139 8765 4321"), "{stored:?}");
}

#[test]
fn flags_are_listed_by_shanghai_day_and_agent() {
    let g = guard();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("k.db")).unwrap();
    for e in events() {
        store::save_flags(&store, &e, &g.check_event(&e)).unwrap();
    }
    let day = |d: &str| kefu::time::parse_day(d);
    let count = |d, a| store::query(&store, d, a).unwrap().len();
    assert_eq!(count(None, None), 9);
    assert_eq!(count(day("2026-11-11"), None), 7);
    assert_eq!(count(day("2026-11-12"), Some("a1")), 2);
    assert_eq!(count(day("2026-11-11"), Some("a2")), 3);
    assert_eq!(count(day("2026-11-13"), None), 0);
    let e = kefu::guard::cli::flags(&dir.path().join("k.db"), Some("11/12"), None, false).unwrap_err();
    assert!(e.to_string().contains("--date '11/12'"), "{e}");
}

/// `kefu check` reports each broken guard file by file and line.
#[test]
fn kefu_check_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "guard.toml",
        "[[category]]\nname = '站外'\nseverity = 'critical'\npoints = -10\nphrases = ['加微信', '加 V信']\n\
         regexes = ['qq(']\nexceptions = ['加 微信']\n[[category]]\nname = '空'\nseverity = 'info'\npoints = 0\n",
    );
    write("guard_t2s.txt", "說 说\n說 説 x\n");
    let errors = kefu::check::check_all(Some(dir.path()), None);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let file = dir.path().join("guard.toml").display().to_string();
    let t2s = dir.path().join("guard_t2s.txt").display().to_string();
    for want in [
        format!("{t2s}:2: expected two single characters"),
        format!("{file}:5: duplicate phrase '加 V信'"),
        format!("{file}:6: invalid regex 'qq('"),
        format!("{file}:5: phrase '加微信' is swallowed by its own exception '加 微信' (line 7)"),
        format!("{file}:9: category '空' is empty"),
    ] {
        assert!(text.iter().any(|t| t.starts_with(&want)), "missing {want} in:\n{}", text.join("\n"));
    }
    assert_eq!(text.len(), 5, "{}", text.join("\n"));
    assert!(kefu::check::check_all(None, None).is_empty());
}

#[test]
fn flags_serialise_to_exactly_the_report_fields() {
    let g = guard();
    let e = events().into_iter().find(|e| e.id == "m4").unwrap();
    let v = serde_json::to_value(g.check_event(&e)).unwrap();
    let keys: Vec<&str> = v[0].as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = ["message_id", "agent", "category", "severity", "points", "matched", "start", "end"];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(v[0]["severity"], "critical");
}

/// What the simulator's seeded violations must yield: `(category, start, end, matched)`.
fn seeded(text: &str) -> Option<Vec<(&'static str, usize, usize, &'static str)>> {
    Some(match text {
        "加我微信吧,私下给你便宜" => {
            vec![("引导站外", 0, 4, "加我微信"), ("私自改价", 8, 12, "给你便宜")]
        }
        "说了多少遍了,你自己看详情页" => {
            vec![("生硬不耐烦", 0, 6, "说了多少遍了"), ("生硬不耐烦", 7, 13, "你自己看详情")]
        }
        "这个不归我管,你找快递去" => {
            vec![("推卸责任", 2, 6, "不归我管"), ("推卸责任", 7, 12, "你找快递去")]
        }
        "爱买不买" => vec![("生硬不耐烦", 0, 4, "爱买不买")],
        "我们家是全网最好的,第一品牌" => {
            vec![("广告法极限词", 6, 8, "最好"), ("广告法极限词", 10, 12, "第一")]
        }
        "可以支付宝转账给我,便宜20" => vec![("引导站外", 2, 9, "支付宝转账给我")],
        "给个好评返现5元哦" => {
            vec![("邀评改评", 0, 4, "给个好评"), ("好评返现", 2, 8, "好评返现5元")]
        }
        "我的手机号13812345678,直接打给我" => {
            vec![("引导站外", 0, 5, "我的手机号"), ("个人信息-手机号", 5, 16, "138****5678")]
        }
        _ => return None,
    })
}

/// `kefu simulate` traffic with seeded violations, replayed with the guard into a database:
/// every seeded violation is in the report's `flags` with its span, ordinary answers raise
/// nothing, the stored findings match, and a second replay stores nothing new.
#[test]
fn replay_of_simulated_traffic_reports_every_seeded_violation() {
    use kefu::replay::{replay_with_guard, report_from_db_with_guard};
    use kefu::rules::response_time::ResponseRules;
    use kefu::simulate::{SimConfig, generate, write_jsonl};

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("day.jsonl");
    let db = dir.path().join("k.db");
    let config = SimConfig { events: 4_000, violations: 0.2, ..SimConfig::default() };
    let events = generate(&config);
    write_jsonl(&events, std::io::BufWriter::new(std::fs::File::create(&file).unwrap())).unwrap();
    let open = || std::io::BufReader::new(std::fs::File::open(&file).unwrap());
    let (report, _) =
        replay_with_guard(open(), "day", ResponseRules::default(), Some(guard()), Some(&db)).unwrap();

    let mut want = Vec::new();
    let mut seeded_messages = 0;
    for e in &events {
        let kefu::event::EventKind::Message { from: kefu::event::Sender::Agent, text, .. } = &e.kind else {
            continue;
        };
        if let Some(expected) = seeded(text) {
            seeded_messages += 1;
            for (c, s, end, m) in expected {
                want.push((e.id.clone(), c.to_string(), s, end, m.to_string()));
            }
        }
    }
    assert!(seeded_messages > 20, "the simulation seeded only {seeded_messages} violations");
    let got: Vec<_> = report
        .flags
        .iter()
        .map(|f| (f.message_id.clone(), f.category.clone(), f.start, f.end, f.matched.clone()))
        .collect();
    assert_eq!(got, want, "flags other than the seeded ones, or seeded ones missing");

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["flags"].as_array().unwrap().len(), want.len());
    assert!(!json.to_string().contains("13812345678"));

    let store = Store::open(&db).unwrap();
    assert_eq!(store::query(&store, None, None).unwrap().len(), want.len());
    let again =
        replay_with_guard(open(), "day", ResponseRules::default(), Some(guard()), Some(&db)).unwrap().0;
    assert_eq!(again.flags, report.flags);
    assert_eq!(store::query(&store, None, None).unwrap().len(), want.len());
    let from_db = report_from_db_with_guard(&store, ResponseRules::default(), Some(guard())).unwrap();
    assert_eq!(from_db.flags, report.flags);
}

/// The shortcuts (regexes gated by their required literals, personal-data pre-checks,
/// table-driven folding, the reused buffer) change no result: over the texts of these tests,
/// texts made to trigger each regex and privacy kind, every shipped phrase with an evasion
/// around it, and a day of simulated traffic, the fast guard finds exactly what the guard
/// without shortcuts finds.
#[test]
fn fast_paths_find_exactly_what_the_slow_path_finds() {
    use kefu::event::{EventKind, Sender};
    use kefu::simulate::{SimConfig, generate};

    let fast = guard();
    let slow = guard().without_fast_paths();
    #[rustfmt::skip]
    let mut texts: Vec<String> = [
        // Each regex of the shipped rules, plainly and evaded.
        "qq号12345678", "Q Q 号是 1234567", "ＱＱ１２３４５６７８", "扣扣号：88886666",
        "加我微信abc12345", "加 V 信 kefu_2024", "联系我qq123456", "找我微信号是tb_shop01",
        "好评给你5元", "好 评 返 现", "好评之后发红包", "五星好评送现金哦",
        "给你改成50", "帮您减20块", "给你便宜10", "50元卖给你", "99块给您", "算你88", "算您 120",
        // Near misses of the regexes.
        "qq音乐", "加微信不行", "好评率高", "给你改一下地址", "卖给你的是正品", "算你运气好",
        // Personal data of each kind, in both widths, and near misses.
        "电话13812345678", "打 138 1234 5678", "１３８１２３４５６７８", "+86-138-1234-5678",
        "身份证11010519491231002X", "卡号6222020200112233446", "卡 4111 1111 1111 1111",
        "邮箱zhang.san@163.com收", "ｚｈａｎｇ＠１６３.ｃｏｍ", "我微信号: kefu_2024a 加一下",
        "VX是abc123456", "ＶＸ：ａｂｃ１２３４５", "订单号6222020200112233446请查收",
        "编号 12 13812345678", "满300减30,限时3天", "伐伐伐伐伐伐伐伐伐伐伐伐", "微信支付可以的",
        // Phrases with exceptions, boundaries, repeats, traditional and full width.
        "第一次购买可以领券，销量第一", "最好的办法是全网最好", "面料是100%纯棉的，１００％好评",
        "亲，平台规定不能加微信哦，加微信吧", "爱买，不买了", "說了多少遍了！！你看", "加加微微信信",
        "😊🌹加-V-信", "", "，，，", "a", "Ωμέγα ÅNGSTRÖM ǅ", "\u{FFFF}\u{10FFFF}𠀀",
    ]
    .map(String::from)
    .to_vec();
    // Every shipped phrase, plain, spaced, in a sentence, and after a number.
    let rules = kefu::guard::rules::load(None).unwrap_or_else(|e| panic!("{e:?}"));
    for c in &rules.categories {
        for (phrase, _) in &c.phrases {
            let spaced: String = phrase.chars().flat_map(|ch| [ch, ' ']).collect();
            texts.push(phrase.clone());
            texts.push(spaced);
            texts.push(format!("亲，{phrase}，好的呢"));
            texts.push(format!("13812345678 {phrase} 20元"));
        }
        for x in &c.exceptions {
            texts.push(format!("您好，{x}哦"));
        }
    }
    let config = SimConfig { events: 4_000, violations: 0.3, ..SimConfig::default() };
    let events = generate(&config);
    for e in &events {
        if let EventKind::Message { text, .. } = &e.kind {
            texts.push(text.clone());
        }
    }
    let mut with_findings = 0;
    for t in &texts {
        let got = fast.check_text(t);
        assert_eq!(got, slow.check_text(t), "{t}");
        with_findings += usize::from(!got.is_empty());
    }
    for e in &events {
        assert_eq!(fast.check_event(e), slow.check_event(e), "{e:?}");
    }
    // The comparison covered messages with findings of every kind, not only clean ones.
    assert!(with_findings > 1_000, "only {with_findings} texts had findings");
    let rules_seen: std::collections::HashSet<String> = texts
        .iter()
        .flat_map(|t| fast.check_text(t))
        .map(|f| f.rule.split(' ').next().unwrap_or_default().to_string())
        .collect();
    for kind in ["phrase", "regex", "pii"] {
        assert!(rules_seen.contains(kind), "no {kind} finding among the compared texts");
    }
    let agent_messages =
        events.iter().filter(|e| matches!(&e.kind, EventKind::Message { from: Sender::Agent, .. })).count();
    assert!(agent_messages > 500);
}
