//! `kefu run --nats …` (a worker), `kefu publish` and `kefu collect`: arguments in,
//! effects out. `main.rs` only parses and dispatches here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;
use tracing::info;

use super::setup::{self, Handles};
use super::worker::{self, WorkerCounters, WorkerOptions};
use super::{ClusterConfig, ClusterError, collect, lease, publish};
use crate::live::cli::{LiveCliError, StopSignals, init_logging};
use crate::live::{LiveConfig, TimeSource};
use crate::rules::response_time;

/// Where the cluster is (shared by `run --nats`, `publish` and `collect`).
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// NATS servers, comma-separated (nats://127.0.0.1:4222,…). With `kefu run`: run as a
    /// cluster worker, reading the JetStream event stream instead of the websocket.
    #[arg(long)]
    pub nats: Option<String>,
    /// Partitions of the event stream (used when creating it; checked against it after).
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Replicas of the streams and buckets (3 in a 3-node cluster, 1 on one server).
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
}

impl ClusterArgs {
    fn config(&self) -> Result<ClusterConfig, LiveCliError> {
        let servers =
            self.nats.clone().ok_or_else(|| LiveCliError::Usage("--nats URL is required".into()))?;
        if !(1..=10_000).contains(&self.partitions) {
            return Err(LiveCliError::Usage(format!(
                "--partitions {}: expected 1 to 10000",
                self.partitions
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(LiveCliError::Usage(format!("--replicas {}: expected 1 to 5", self.replicas)));
        }
        Ok(ClusterConfig { replicas: self.replicas, ..ClusterConfig::new(servers, self.partitions) })
    }
}

/// The worker part of `kefu run`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// This worker's id, unique in the cluster (default: host name and process id).
    #[arg(long)]
    pub worker: Option<String>,
    /// Folder for the worker's local files (default: ./kefu-state/<worker>).
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// `kefu publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Events to publish, one JSON object a line (bad lines are reported and skipped).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Or: simulated traffic of this many shops (`kefu simulate` per shop, ids made unique).
    #[arg(long)]
    pub shops: Option<usize>,
    /// Events per simulated shop.
    #[arg(long, default_value_t = 1_000)]
    pub events: usize,
    /// Agents per simulated shop.
    #[arg(long, default_value_t = 4)]
    pub agents: usize,
    /// Seed of the simulated traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// `kefu collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The database for every shop's figures (created when missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Keep following the results log (default: apply what is there, then stop).
    #[arg(long)]
    pub follow: bool,
    /// Then print the report for every shop (the stored waits and alerts).
    #[arg(long)]
    pub report: bool,
    /// The report as JSON (as `kefu replay --json`).
    #[arg(long)]
    pub json: bool,
    /// Rules folder (the phrase guard of the report; default ./rules when present).
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

fn rt() -> Result<tokio::runtime::Runtime, LiveCliError> {
    tokio::runtime::Runtime::new()
        .map_err(|source| LiveCliError::Io { what: "cannot start the async runtime".into(), source })
}

fn cluster_err(e: ClusterError) -> LiveCliError {
    LiveCliError::Usage(format!("{:#}", anyhow::Error::from(e)))
}

async fn handles(c: &ClusterConfig) -> Result<Handles, LiveCliError> {
    let client = super::connect(&c.servers).await.map_err(cluster_err)?;
    setup::ensure(client, c).await.map_err(cluster_err)
}

/// `kefu run --nats …`: a worker, until Ctrl-C / SIGTERM.
pub fn run_worker(
    cluster: &ClusterArgs,
    args: &WorkerArgs,
    config: Option<&std::path::Path>,
    rules: Option<PathBuf>,
) -> Result<(), LiveCliError> {
    let rt = rt()?;
    let mut signals = {
        let _entered = rt.enter();
        StopSignals::install()
    };
    let c = cluster.config()?;
    // A worker reads no platform: the URL is required by the file's format only.
    let overrides = crate::config::Overrides {
        url: Some("ws://cluster-worker.invalid".into()),
        rules,
        ..Default::default()
    };
    let file = crate::config::load(config, overrides, &|v| std::env::var(v).ok())?;
    init_logging(&file.log)?;
    let id = args.worker.clone().unwrap_or_else(default_id);
    if !lease::valid_worker_id(&id) {
        return Err(LiveCliError::Usage(format!(
            "--worker {id:?}: letters, digits, `-` and `_` only, at most 64"
        )));
    }
    let rules_dir = file.rules.clone().or_else(|| Some(PathBuf::from("rules")).filter(|p| p.is_dir()));
    let response = response_time::load(rules_dir.as_deref())?;
    let alerts = match file.alerts.clone() {
        Some(a) => a,
        None => crate::alerts::config::load(rules_dir.as_deref())?,
    };
    let state = args.state.clone().unwrap_or_else(|| PathBuf::from("kefu-state").join(&id));
    let opts = WorkerOptions {
        cluster: c,
        id: id.clone(),
        state,
        live: LiveConfig {
            plan: alerts.plan,
            time: TimeSource::wall(),
            // A takeover reads the stream from the latest snapshot: keep it close.
            snapshots: crate::live::SnapshotPolicy { every_ms: 10_000, every_events: 20_000, load: true },
            ..LiveConfig::new(response)
        },
        alerts,
    };
    rt.block_on(async move {
        let counters = Arc::new(WorkerCounters::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut task = tokio::spawn(worker::run(opts, counters.clone(), stop_rx));
        let mut status = tokio::time::interval(Duration::from_secs(60));
        status.tick().await;
        let result = loop {
            tokio::select! {
                biased;
                () = signals.recv() => {
                    stop_tx.send_replace(true);
                    break (&mut task).await;
                }
                r = &mut task => break r,
                _ = status.tick() => {
                    use std::sync::atomic::Ordering::Relaxed;
                    info!(
                        worker = %id,
                        owned = counters.owned.load(Relaxed),
                        taken = counters.taken.load(Relaxed),
                        lost = counters.lost.load(Relaxed),
                        status = %counters.live.status_line(),
                        "status"
                    );
                }
            }
        };
        match result {
            Ok(r) => r.map_err(cluster_err),
            Err(e) => Err(LiveCliError::Usage(format!("worker task failed: {e}"))),
        }
    })
}

fn default_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "kefu".into());
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
    format!("{host}-{}", std::process::id())
}

/// `kefu publish`: prints what the stream stored.
pub fn publish(args: &PublishArgs) -> Result<String, LiveCliError> {
    init_logging("warn")?;
    let c = args.cluster.config()?;
    let (events, bad) = match (&args.file, args.shops) {
        (Some(f), None) => publish::read_file(f).map_err(cluster_err)?,
        (None, Some(shops)) => {
            let sim = crate::simulate::SimConfig {
                seed: args.seed,
                events: args.events,
                agents: args.agents,
                ..crate::simulate::SimConfig::default()
            };
            (crate::simulate::many_shops(&sim, shops).iter().map(publish::Outgoing::of).collect(), Vec::new())
        }
        _ => return Err(LiveCliError::Usage("kefu publish: give --file FILE or --shops N".into())),
    };
    for b in &bad {
        eprintln!("kefu publish: skipped {}", crate::textio::escape_for_terminal(b));
    }
    let total = events.len();
    let done = rt()?.block_on(async move {
        let h = handles(&c).await?;
        publish::publish(&h, events).await.map_err(cluster_err)
    })?;
    Ok(format!(
        "published {total} events: {} stored, {} already in the stream, {} bad lines skipped; last sequence {}",
        done.stored,
        done.duplicates,
        bad.len(),
        done.last_seq
    ))
}

/// `kefu collect`: applies the results log to the database (and follows it with `--follow`).
pub fn collect(args: &CollectArgs) -> Result<String, LiveCliError> {
    init_logging("warn")?;
    let c = args.cluster.config()?;
    let rt = rt()?;
    let mut signals = {
        let _entered = rt.enter();
        StopSignals::install()
    };
    rt.block_on(async move {
        let h = handles(&c).await?;
        let mut total = collect::Collected::default();
        loop {
            let got = match collect::collect_once(&h, &args.db).await {
                Ok(got) => got,
                // Following: a server failing over is waited out (what was applied stays,
                // with its position); a single pass reports it.
                Err(e @ ClusterError::JetStream { .. }) if args.follow => {
                    tracing::warn!(error = %format!("{:#}", anyhow::Error::from(e)), "results log not read; trying again");
                    collect::Collected { position: total.position, ..Default::default() }
                }
                Err(e) => return Err(cluster_err(e)),
            };
            total.records += got.records;
            total.rejected += got.rejected;
            total.events += got.events;
            total.repeated += got.repeated;
            total.position = got.position;
            if !args.follow {
                break;
            }
            tokio::select! {
                () = signals.recv() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let summary = format!(
            "collected {} records into {}: {} new events, {} repeated (stored once), {} rejected inputs; position {}",
            total.records,
            args.db.display(),
            total.events,
            total.repeated,
            total.rejected,
            total.position
        );
        if !args.report {
            return Ok(summary);
        }
        eprintln!("{summary}");
        let rules = args.rules.clone().or_else(|| Some(PathBuf::from("rules")).filter(|p| p.is_dir()));
        let guard = crate::guard::Guard::load(rules.as_deref()).map_err(LiveCliError::Files)?;
        let store = crate::store::Store::open(&args.db)?;
        let report = collect::report(&store, Some(&guard)).map_err(cluster_err)?;
        Ok(if args.json {
            serde_json::to_string(&report).map_err(|e| LiveCliError::Usage(e.to_string()))?
        } else {
            report.to_table()
        })
    })
}
