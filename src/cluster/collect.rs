//! `kefu collect`: the results log of every partition into one SQLite database — the
//! figures of every shop in one place. The database has the single-process schema, so
//! `kefu report --db`, `kefu score`, `kefu flags` and the console work on it unchanged.
//!
//! Each record goes through the store's one batch writer, in its own transaction with
//! the log position (`meta` key [`POSITION_KEY`]): events are stored once by id, waits
//! by (conversation, start), alerts by (conversation, wait start, kind). A takeover makes
//! the new owner commit again what the old one committed after its last snapshot — the
//! same rows, so the database does not change; a collector restarted anywhere goes on
//! after its position, or builds the whole database again from the log.

use std::path::Path;

use super::ClusterError;
use super::results::{self, Record};
use super::setup::Handles;
use crate::engine::Wait;
use crate::store::{BatchWriter, RejectedRow, Store};

/// The `meta` key holding the last results-log sequence applied.
pub const POSITION_KEY: &str = "cluster.results_seq";

/// What one pass applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Records applied.
    pub records: u64,
    /// Events new to the database.
    pub events: u64,
    /// Events already in it (a takeover's repeat), stored once.
    pub repeated: u64,
    /// Rejected inputs new to the database.
    pub rejected: u64,
    /// The log position reached.
    pub position: u64,
}

/// Whether the database has this rejected input already: the same stream position
/// (`seq N`, unique in the event stream) and the same input.
fn rejected_already(
    tx: &rusqlite::Transaction<'_>,
    r: &super::results::RejectedRec,
) -> Result<bool, ClusterError> {
    if !r.position.starts_with("seq ") || r.position == "seq ?" {
        return Ok(false);
    }
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM rejected WHERE position = ?1 AND raw = ?2)",
        rusqlite::params![r.position, r.raw],
        |row| row.get(0),
    )
    .map_err(|e| ClusterError::Store(e.into()))
}

/// Applies every record after the database's position up to the log's end as of now.
pub async fn collect_once(h: &Handles, db: &Path) -> Result<Collected, ClusterError> {
    let mut store = Store::open(db)?;
    let from = store.meta(POSITION_KEY)?.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) + 1;
    let mut results = h.results.clone();
    let to = results
        .info()
        .await
        .map_err(|e| ClusterError::js("reading the results log's end")(e.into()))?
        .state
        .last_sequence;
    let mut out = Collected { position: from - 1, ..Collected::default() };
    results::for_each(&h.results, None, from, to, |seq, r| apply(&mut store, seq, &r, &mut out)).await?;
    Ok(out)
}

/// Applies one record in one transaction with the position.
pub fn apply(store: &mut Store, seq: u64, r: &Record, out: &mut Collected) -> Result<(), ClusterError> {
    let tx = store.conn_mut().transaction().map_err(crate::store::StoreError::from)?;
    {
        let mut w = BatchWriter::new(&tx)?;
        if let Record::Batch(b) = r {
            for body in &b.events {
                let e = crate::event::parse(body)
                    .map_err(|e| ClusterError::BadRecord { seq, reason: e.to_string() })?;
                if w.event(&e, body)? {
                    out.events += 1;
                } else {
                    out.repeated += 1;
                }
            }
            w.waits(&b.waits)?;
            w.alerts(b.alerts.clone())?;
            for rej in &b.rejected {
                // A takeover processes the inputs after the snapshot again, bad ones too;
                // a rejected input has no id, but its stream sequence names it.
                if !rejected_already(&tx, rej)? {
                    w.rejected(&RejectedRow::from(rej))?;
                    out.rejected += 1;
                }
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            rusqlite::params![POSITION_KEY, seq.to_string()],
        )
        .map_err(crate::store::StoreError::from)?;
    }
    tx.commit().map_err(crate::store::StoreError::from)?;
    out.records += 1;
    out.position = seq;
    Ok(())
}

/// The report for every shop from the collected database: the waits and breach alerts the
/// workers stored (not recomputed: a partition's engine saw its shops' events in stream
/// order, and the database interleaves partitions in commit order), the per-agent days
/// from those waits and the stored messages, the phrase guard's findings over the stored
/// messages (`guard`), in the database's order.
pub fn report(
    store: &Store,
    guard: Option<&crate::guard::Guard>,
) -> Result<crate::report::Report, ClusterError> {
    use crate::alerts::Kind;
    let mut b = crate::report::ReportBuilder::new();
    store.for_each_event(|e| {
        b.add_event(&e);
        if let Some(g) = guard {
            b.add_flags(&g.check_event(&e));
        }
    })?;
    let conn = store.conn();
    let sql = |e: rusqlite::Error| ClusterError::Store(e.into());
    let mut stmt = conn
        .prepare(
            "SELECT conversation, start, end, shop, customer, agent, outcome, deadline_ms, load, first, robot FROM waits",
        )
        .map_err(sql)?;
    let waits = stmt
        .query_map([], |r| {
            let outcome: String = r.get(6)?;
            Ok((
                Wait {
                    conversation: r.get::<_, String>(0)?.into(),
                    start: r.get(1)?,
                    end: r.get(2)?,
                    shop: r.get::<_, String>(3)?.into(),
                    customer: r.get::<_, String>(4)?.into(),
                    agent: r.get::<_, String>(5)?.into(),
                    outcome: crate::engine::Outcome::Answered,
                    deadline_ms: r.get(7)?,
                    load: r.get(8)?,
                    first: r.get(9)?,
                    robot: r.get(10)?,
                },
                outcome,
            ))
        })
        .map_err(sql)?;
    for w in waits {
        let (mut row, outcome) = w.map_err(sql)?;
        row.outcome = crate::engine::Outcome::parse(&outcome).ok_or_else(|| ClusterError::BadRecord {
            seq: 0,
            reason: format!("stored wait outcome `{outcome}`"),
        })?;
        b.add_wait(row);
    }
    let mut stmt = conn
        .prepare(
            "SELECT conversation, wait_start, agent, due_at, deadline_ms FROM alerts WHERE kind = 'breach'",
        )
        .map_err(sql)?;
    let alerts = stmt
        .query_map([], |r| {
            let mut n = crate::alerts::Notice::summary("", 0, "");
            n.kind = Kind::Breach;
            n.conversation = r.get(0)?;
            n.wait_start = r.get(1)?;
            n.agent = r.get(2)?;
            n.due_at = r.get(3)?;
            n.deadline_ms = r.get(4)?;
            n.waited_ms = n.due_at - n.wait_start;
            Ok(n)
        })
        .map_err(sql)?;
    let notices: Vec<crate::alerts::Notice> = alerts.collect::<Result<_, _>>().map_err(sql)?;
    b.add_notices(&notices);
    Ok(b.build())
}
