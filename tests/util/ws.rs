//! Starting the simulator and the live bot against each other on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kefu::alerts::Notice;
use kefu::event::Event;
use kefu::gateway::{Backoff, GatewayConfig};
use kefu::live::{ChannelSeam, Live, LiveConfig, LiveOptions, TimeSource};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::server::rebase;
use kefu::simulate::{Item, ServerConfig, SimConfig, SimServer, generate};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// Any free loopback port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Seeded traffic moved to end now: a backlog the platform delivers at once, every event
/// dated in the past (an event dated ahead of the wall clock is rejected).
pub fn traffic(events: usize, seed: u64) -> Vec<Event> {
    let mut ev = generate(&SimConfig { events, seed, ..SimConfig::default() });
    let span = ev.last().map_or(0, |e| e.ts) - ev.first().map_or(0, |e| e.ts);
    rebase(&mut ev, kefu::time::now_ms() - span);
    ev
}

/// Seeded traffic moved to start at `start` (to be played as it happens).
pub fn traffic_from(events: usize, seed: u64, start: kefu::time::Millis) -> Vec<Event> {
    let mut ev = generate(&SimConfig { events, seed, ..SimConfig::default() });
    rebase(&mut ev, start);
    ev
}

/// A speed that plays `events` in about `seconds` of real time.
pub fn speed_for(events: &[Event], seconds: f64) -> f64 {
    let span = events.last().map_or(0, |e| e.ts) - events.first().map_or(0, |e| e.ts);
    (span as f64 / 1000.0 / seconds).max(1.0)
}

/// Starts the simulator serving `events`.
pub async fn server(events: &[Event], config: ServerConfig) -> SimServer {
    let items = events.iter().cloned().map(Item::Event).collect();
    SimServer::start(any_port(), items, config).await.expect("bind 127.0.0.1:0")
}

/// A gateway that reconnects quickly, so tests do not wait out the real backoff.
pub fn quick_gateway(url: &str, token: Option<&str>) -> GatewayConfig {
    let mut g = GatewayConfig::new(url, token.map(str::to_string));
    g.backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200));
    g
}

/// A running bot and the alerts it hands over.
pub struct Bot {
    pub live: Live,
    pub alerts: UnboundedReceiver<(Notice, Instant)>,
}

/// Starts the live bot on `db` against `url` on the wall clock.
pub fn start_bot(url: &str, db: &Path, token: Option<&str>) -> Bot {
    let live = LiveConfig { time: TimeSource::wall(), ..LiveConfig::new(ResponseRules::default()) };
    start_bot_with(url, db, token, live)
}

/// Starts the live bot on `db` against `url` with these runtime settings.
pub fn start_bot_with(url: &str, db: &Path, token: Option<&str>, live: LiveConfig) -> Bot {
    let (seam, alerts) = ChannelSeam::new();
    let options = LiveOptions { db: PathBuf::from(db), gateway: quick_gateway(url, token), live };
    let live = Live::start(options, Box::new(seam)).expect("start live bot");
    Bot { live, alerts }
}

/// Polls `check` until it holds; fails the test after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Everything in the receiver now.
pub fn drain<T>(rx: &mut UnboundedReceiver<T>) -> Vec<T> {
    let mut v = Vec::new();
    while let Ok(x) = rx.try_recv() {
        v.push(x);
    }
    v
}

/// A websocket server that takes the hello and then goes silent: it never reads again,
/// so pings are not answered. Returns its address and the hellos it received.
pub async fn silent_server() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use futures_util::StreamExt;
    let listener = tokio::net::TcpListener::bind(any_port()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hellos = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hellos.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                if let Some(Ok(msg)) = ws.next().await {
                    seen.lock().unwrap().push(msg.to_string());
                }
                // Hold the connection open without reading: no pong, no frame.
                std::future::pending::<()>().await;
                drop(ws);
            });
        }
    });
    (addr, hellos)
}
