//! The streams and buckets kefu uses, created when missing (every worker and publisher
//! calls [`ensure`]; creating what exists with the same settings is a no-op).
//!
//! | name | kind | holds |
//! |---|---|---|
//! | `KEFU_EVENTS` | stream `kefu.events.*` → `kefu.p.<N>.<shop>` | the events, partitioned by shop |
//! | `KEFU_RESULTS` | stream `kefu.results.<N>` | each partition's committed batches (fenced) |
//! | `kefu_leases` | KV, 1 hour (the TTL is judged by kefu) | `part.<N>` → owner, `worker.<id>` → alive |
//! | `kefu_alerts` | KV, 7 days | each alert's sender (claimed by a worker instance, then `sent`), by alert id |
//! | `kefu_snapshots` | object store | each partition's latest snapshot (`p<N>`) |

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::subject::{self, EVENTS_SUBJECTS};
use super::{ClusterConfig, ClusterError};

/// The event stream.
pub const EVENTS: &str = "KEFU_EVENTS";
/// The results log.
pub const RESULTS: &str = "KEFU_RESULTS";
/// Leases and membership.
pub const LEASES: &str = "kefu_leases";
/// Who sends which alert.
pub const ALERTS: &str = "kefu_alerts";
/// Partition snapshots.
pub const SNAPSHOTS: &str = "kefu_snapshots";

/// How long the server keeps a lease or liveness entry nobody writes. Far beyond the
/// lease TTL, which kefu judges itself (`lease::classify`): were the server to drop
/// entries one TTL after their last write, a server failing over (no renewals possible
/// for seconds) would drop every live worker's leases, and whoever read the bucket first
/// would take them as free. It only tidies away dead workers' entries.
pub const LEASES_MAX_AGE: Duration = Duration::from_secs(3600);

/// How long the stream remembers an event id to drop a re-publish of it (`Nats-Msg-Id`).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// How long events are kept: a takeover reads the partition from its snapshot's position,
/// which must still be in the stream. A week, as a platform keeps what is not acked.
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);

/// Handles on everything kefu uses in the cluster.
#[derive(Clone)]
pub struct Handles {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// The event stream.
    pub events: stream::Stream,
    /// The results log.
    pub results: stream::Stream,
    /// Leases and membership.
    pub leases: kv::Store,
    /// Who sends which alert.
    pub alerts: kv::Store,
    /// Partition snapshots.
    pub snapshots: async_nats::jetstream::object_store::ObjectStore,
    /// Partitions of the event stream, as the stream says.
    pub partitions: u32,
}

/// How long [`ensure`] keeps trying while the cluster cannot answer (starting, electing).
pub const SETUP_PATIENCE: Duration = Duration::from_secs(120);

/// Creates (or opens) the streams and buckets; an event stream made with another number
/// of partitions is an error, since moving shops between partitions needs a new stream.
/// While the servers time out (a cluster still forming, a leader being elected) it tries
/// again for up to [`SETUP_PATIENCE`].
pub async fn ensure(client: async_nats::Client, c: &ClusterConfig) -> Result<Handles, ClusterError> {
    let started = tokio::time::Instant::now();
    loop {
        match ensure_once(client.clone(), c).await {
            Err(ClusterError::JetStream { what, source }) if started.elapsed() < SETUP_PATIENCE => {
                tracing::warn!(what = %what, error = %source, "cluster not ready; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

async fn ensure_once(client: async_nats::Client, c: &ClusterConfig) -> Result<Handles, ClusterError> {
    let js = jetstream::new(client);
    let transform = subject::transform_destination(c.partitions);
    let mut events = js
        .get_or_create_stream(stream::Config {
            name: EVENTS.into(),
            subjects: vec![EVENTS_SUBJECTS.into()],
            subject_transform: Some(stream::SubjectTransform {
                source: EVENTS_SUBJECTS.into(),
                destination: transform.clone(),
            }),
            num_replicas: c.replicas,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: EVENTS_MAX_AGE,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::js(format!("opening the stream {EVENTS}"))(e.into()))?;
    let info = events.info().await.map_err(|e| ClusterError::js(format!("reading {EVENTS}"))(e.into()))?;
    let have = info.config.subject_transform.as_ref().map(|t| t.destination.clone()).unwrap_or_default();
    let partitions = subject::partitions_of(&have).ok_or_else(|| ClusterError::Layout {
        stream: EVENTS.into(),
        problem: format!("has no kefu partition transform (`{have}`)"),
    })?;
    if partitions != c.partitions {
        return Err(ClusterError::Layout {
            stream: EVENTS.into(),
            problem: format!("has {partitions} partitions, not {}", c.partitions),
        });
    }
    let results = js
        .get_or_create_stream(stream::Config {
            name: RESULTS.into(),
            subjects: vec!["kefu.results.*".into()],
            num_replicas: c.replicas,
            allow_direct: true,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::js(format!("opening the stream {RESULTS}"))(e.into()))?;
    let leases = bucket(&js, LEASES, LEASES_MAX_AGE, c.replicas).await?;
    let alerts = bucket(&js, ALERTS, EVENTS_MAX_AGE, c.replicas).await?;
    let snapshots = match js.get_object_store(SNAPSHOTS).await {
        Ok(s) => s,
        Err(_) => js
            .create_object_store(async_nats::jetstream::object_store::Config {
                bucket: SNAPSHOTS.into(),
                num_replicas: c.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::js(format!("creating the object store {SNAPSHOTS}"))(e.into()))?,
    };
    Ok(Handles { js, events, results, leases, alerts, snapshots, partitions })
}

async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = js.get_key_value(name).await {
        // A bucket made by an earlier version may keep its entries for another time
        // (the lease bucket once kept them for the TTL only): set what this one needs.
        let stream = format!("KV_{name}");
        let err = || ClusterError::js(format!("updating the bucket {name}"));
        let mut s = js.get_stream(&stream).await.map_err(|e| err()(e.into()))?;
        let info = s.info().await.map_err(|e| err()(e.into()))?;
        if info.config.max_age != max_age {
            let config = stream::Config { max_age, ..info.config.clone() };
            js.update_stream(config).await.map_err(|e| err()(e.into()))?;
        }
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: name.into(),
        history: 1,
        max_age,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::js(format!("creating the bucket {name}"))(e.into()))
}
