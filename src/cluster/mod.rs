//! Cluster mode (issue 16): many shops on many machines, over NATS JetStream.
//!
//! Events come from a JetStream stream partitioned by shop instead of the websocket; each
//! partition is owned by one `kefu run --nats` worker at a time and runs through the same
//! live runtime and store writer as the single-process mode. What a partition commits is
//! appended, fenced, to a results log that every worker and `kefu collect` read. See
//! `docs/cluster.md` for the design and the operating guide.
//!
//! - [`subject`]: shop → subject token and partition (the server's `partition()`), pure.
//! - [`setup`]: the streams and key-value buckets kefu uses, created idempotently.
//! - [`publish`]: `kefu publish`: events from a JSONL file or the simulator into the stream.
//! - [`lease`]: who owns which partition: the fair share (pure) and leases in a KV bucket with a TTL.
//! - [`keeper`]: a worker's liveness and leases, renewed and taken on a thread of their own.
//! - [`results`]: the results log: each partition's committed batches, appended fenced.
//! - [`snapshots`]: partition snapshots in the object store, where every worker can read them.
//! - [`source`]: one partition's consumer feeding the live runtime; acks after the commit.
//! - [`gate`]: alerts claimed by id in a KV bucket before they go, marked sent after: once per alert.
//! - [`worker`]: `kefu run --nats`: membership, leases, a runtime per owned partition, takeover.
//! - [`cli`]: `kefu run --nats`, `kefu publish`, `kefu collect`: arguments in, effects out.
//! - [`collect`]: `kefu collect`: the results log into one SQLite database for every shop.

pub mod cli;
pub mod collect;
pub mod gate;
pub mod keeper;
pub mod lease;
pub mod publish;
pub mod results;
pub mod setup;
pub mod snapshots;
pub mod source;
pub mod subject;
pub mod worker;

use std::time::Duration;

use thiserror::Error;

/// Where the cluster is and how its streams are laid out.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URLs, comma-separated (`nats://127.0.0.1:4222,nats://…`).
    pub servers: String,
    /// Partitions of the event stream (fixed when the stream is created).
    pub partitions: u32,
    /// Replicas of every stream and bucket (3 in a 3-node cluster, 1 on a single server).
    pub replicas: usize,
    /// How long a lease lives without renewal: a dead worker's partitions are free after it.
    pub lease_ttl: Duration,
}

impl ClusterConfig {
    /// `partitions` partitions on `servers`, 3 replicas, a 5 s lease.
    pub fn new(servers: impl Into<String>, partitions: u32) -> Self {
        Self { servers: servers.into(), partitions, replicas: 3, lease_ttl: Duration::from_secs(5) }
    }
}

/// What can go wrong talking to the cluster.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The servers cannot be reached.
    #[error("connecting to NATS at {servers}")]
    Connect {
        /// The URLs tried.
        servers: String,
        /// Why.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A JetStream request failed.
    #[error("{what}")]
    JetStream {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: async_nats::Error,
    },
    /// The stream exists with another layout.
    #[error("the event stream {stream} {problem}")]
    Layout {
        /// The stream.
        stream: String,
        /// What does not match.
        problem: String,
    },
    /// Another worker owns the partition now: its writes were refused (fencing).
    #[error("partition {partition}: fenced off, another worker owns it now")]
    Fenced {
        /// The partition.
        partition: u32,
    },
    /// A delivery of the partition's consumer never arrived (lost in transit while a
    /// server died): the ownership ends and the partition is taken again from its
    /// snapshot, since ack-all would otherwise ack the lost event unseen.
    #[error("partition {partition}: delivery {expected} of its consumer never arrived (got {got})")]
    DeliveryGap {
        /// The partition.
        partition: u32,
        /// The consumer sequence due next.
        expected: u64,
        /// The one that came.
        got: u64,
    },
    /// A record in the results log cannot be read.
    #[error("results log message {seq}: {reason}")]
    BadRecord {
        /// Its stream sequence.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// An input file cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The runtime failed.
    #[error(transparent)]
    Live(#[from] crate::live::LiveError),
    /// The alert service failed.
    #[error(transparent)]
    Alerts(#[from] crate::alerts::AlertError),
}

impl ClusterError {
    /// Wraps a JetStream error with what was being done.
    pub fn js(what: impl Into<String>) -> impl FnOnce(async_nats::Error) -> ClusterError {
        let what = what.into();
        move |source| ClusterError::JetStream { what, source }
    }
}

/// What the client says about its connection, in the worker's log: a reconnect or a slow
/// consumer (messages dropped by the client) is where deliveries get lost, which
/// [`source::next_delivery`] then catches — the log says why.
fn log_connection_event(event: &async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::Connected => tracing::info!("connected to a NATS server"),
        Event::Closed => tracing::info!("NATS connection closed"),
        // The server's own text: escaped like any text from outside.
        other => tracing::warn!(
            event = %crate::textio::escape_for_terminal(&other.to_string()),
            "NATS connection"
        ),
    }
}

/// Connects to the servers; the client reconnects by itself to any of them.
pub async fn connect(servers: &str) -> Result<async_nats::Client, ClusterError> {
    let urls: Vec<async_nats::ServerAddr> =
        servers.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>().map_err(
            |e: std::io::Error| ClusterError::Connect {
                servers: servers.to_string(),
                source: async_nats::ConnectError::with_source(async_nats::ConnectErrorKind::ServerParse, e),
            },
        )?;
    async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .event_callback(|event| async move { log_connection_event(&event) })
        .connect(urls)
        .await
        .map_err(|source| ClusterError::Connect { servers: servers.to_string(), source })
}
