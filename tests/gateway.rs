//! The gateway against a hostile platform on loopback (the real simulator server, a real
//! SQLite file): seqs that break the seq rule.

mod util;

use std::time::Duration;

use kefu::simulate::{Item, ServerConfig, SimServer};
use kefu::store::Store;
use tokio::time::timeout;
use util::ws::{any_port, speed_for, start_bot, traffic, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn count(store: &Store, sql: &str) -> i64 {
    store.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_of_u64_max_is_rejected_and_later_frames_are_acked_and_resumed_across_a_restart() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let events = traffic(600, 5);
        // Frame 100 is a valid event whose seq is u64::MAX; every other frame carries its
        // position as its seq.
        let huge = u64::MAX;
        let odd = &events[99];
        let mut items: Vec<Item> = events.iter().cloned().map(Item::Event).collect();
        items[99] = Item::Text(format!(r#"{{"op":"event","seq":{huge},"event":{}}}"#, odd.to_json()));
        // Played over about three seconds, so the first bot stops in the middle.
        let config = ServerConfig { speed: speed_for(&events, 3.0), ..ServerConfig::default() };
        let mut srv = SimServer::start(any_port(), items, config).await.unwrap();
        let last = srv.last_seq();

        let first = start_bot(&srv.url(), &db, None);
        wait_for("frames past the huge seq acked", LIMIT, || srv.acked() >= Some(300)).await;
        first.live.stop().await.unwrap();
        let acked = srv.acked();
        assert!(acked >= Some(300) && acked <= Some(last), "acked {acked:?} is a real seq of the stream");

        // A restart resumes after a real seq, and the rest of the stream still arrives.
        srv.restart().await.unwrap();
        let before = srv.stats().hellos.len();
        let second = start_bot(&srv.url(), &db, None);
        wait_for("the second bot's hello", LIMIT, || srv.stats().hellos.len() > before).await;
        wait_for("the whole stream acked", LIMIT, || srv.acked() == Some(last)).await;
        second.live.stop().await.unwrap();

        let stats = srv.stats();
        assert_eq!(stats.acked, Some(last), "the huge seq was never acked");
        let resumed = stats.hellos[before];
        assert!(resumed.is_some_and(|r| r >= 300 && r < last), "resumed after {resumed:?}");
        assert!(stats.hellos.iter().all(|h| h.is_none_or(|r| r <= last)), "{:?}", stats.hellos);

        let store = Store::open(&db).unwrap();
        assert_eq!(store.meta("gateway.last_seq").unwrap(), Some(last.to_string()));
        assert_eq!(store.event_count().unwrap(), events.len() as i64 - 1, "every other event stored once");
        let id = odd.id.replace('\'', "''");
        assert_eq!(count(&store, &format!("SELECT COUNT(*) FROM events WHERE id = '{id}'")), 0);
        let (position, reason): (String, String) = store
            .conn()
            .query_row("SELECT position, reason FROM rejected", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(position, format!("seq {huge}"));
        assert!(reason.contains("above the largest seq"), "{reason}");
    })
    .await
    .expect("test timed out");
}
