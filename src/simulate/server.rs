//! A websocket server speaking the wire protocol: it plays a list of events (generated
//! traffic or a JSONL file) in real time scaled by `speed`, honours `resume_after` and
//! acks, echoes robot replies back as `bot` messages, and injects faults on request.
//! `kefu simulate --listen`, `kefu demo`, the integration tests and the benchmark use it.
//!
//! The stream is fixed when the server starts (seq = position, from 1); a restart keeps
//! it and the acks, like a platform that persists its delivery state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tracing::{debug, info};

use crate::event::{Event, EventKind, Sender};
use crate::gateway::protocol::{ClientFrame, event_frame};
use crate::time::Millis;

/// How the server plays and which faults it injects.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Required bearer token, if any (a wrong one gets HTTP 401).
    pub token: Option<String>,
    /// Times faster than real time; 0 plays as fast as the socket takes it.
    pub speed: f64,
    /// Cut the connection (no close frame) after every N frames sent.
    pub drop_every: Option<u64>,
    /// Send every N-th frame twice.
    pub duplicate_every: Option<u64>,
    /// Make every N-th seq a frame that is not JSON (it still carries its seq).
    pub garbage_every: Option<u64>,
}

/// One entry of the stream.
#[derive(Debug, Clone)]
pub enum Item {
    /// An event, sent as `{"op":"event","seq":N,"event":…}`.
    Event(Event),
    /// A verbatim text frame; `{seq}` in it is replaced by its seq.
    Text(String),
}

/// What a client sent with `op: send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSend {
    /// Its id.
    pub id: String,
    /// Conversation.
    pub conversation: String,
    /// Text.
    pub text: String,
}

/// What the server saw, for tests and the CLI.
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    /// Highest seq acknowledged, by an ack frame or a hello's `resume_after`.
    pub acked: Option<u64>,
    /// Ack frames received.
    pub acks: u64,
    /// `resume_after` of every hello, in order.
    pub hellos: Vec<Option<u64>>,
    /// Connections that completed the handshake.
    pub connections: u64,
    /// Upgrades refused for a wrong or missing token.
    pub unauthorized: u64,
    /// Connections the server cut on purpose (`drop_every`).
    pub drops: u64,
    /// Robot replies received.
    pub sends: Vec<ReceivedSend>,
    /// Other frames received (`suggest`, `transfer`, `replies.found` …), as JSON text.
    pub other: Vec<String>,
}

struct Frame {
    /// Offset from the play origin in simulated time.
    offset_ms: i64,
    ts: Millis,
    text: Arc<str>,
}

struct Shared {
    config: ServerConfig,
    origin: Instant,
    frames: Mutex<Vec<Frame>>,
    len: watch::Sender<usize>,
    stats: Mutex<ServerStats>,
    sent: AtomicU64,
    /// Conversation → (shop, customer, agent), for echoing replies.
    parties: HashMap<String, (String, String, String)>,
}

impl Shared {
    fn frames(&self) -> MutexGuard<'_, Vec<Frame>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stats(&self) -> MutexGuard<'_, ServerStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The frame at `seq` and when it is due, if the stream has it.
    fn frame(&self, seq: u64) -> Option<(Instant, Arc<str>)> {
        let frames = self.frames();
        let f = frames.get(usize::try_from(seq).ok()?.checked_sub(1)?)?;
        let at = if self.config.speed > 0.0 {
            let real_ms = f.offset_ms.max(0) as f64 / self.config.speed;
            self.origin + Duration::from_micros((real_ms * 1000.0) as u64)
        } else {
            self.origin
        };
        Some((at, f.text.clone()))
    }

    fn append_echo(&self, send: &ReceivedSend) {
        let (shop, customer, agent) = self
            .parties
            .get(&send.conversation)
            .cloned()
            .unwrap_or_else(|| ("unknown".to_string(), "unknown".to_string(), "unknown".to_string()));
        let mut frames = self.frames();
        let (ts, offset_ms) = frames.last().map_or((0, 0), |f| (f.ts, f.offset_ms));
        let elapsed = self.origin.elapsed().as_millis() as i64;
        let offset_ms = if self.config.speed > 0.0 {
            offset_ms.min((elapsed as f64 * self.config.speed) as i64)
        } else {
            0
        };
        let event = Event {
            id: format!("echo-{}", send.id),
            ts,
            shop,
            kind: EventKind::Message {
                conversation: send.conversation.clone(),
                customer,
                agent,
                from: Sender::Bot,
                text: send.text.clone(),
            },
        };
        let seq = frames.len() as u64 + 1;
        frames.push(Frame { offset_ms, ts, text: event_frame(seq, &event.to_json()).into() });
        let len = frames.len();
        drop(frames);
        self.len.send_replace(len);
    }
}

/// A running simulator server.
pub struct SimServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SimServer {
    /// Binds `addr` (use port 0 for any free port) and starts serving `items`; playback
    /// time starts now.
    pub async fn start(addr: SocketAddr, items: Vec<Item>, config: ServerConfig) -> std::io::Result<Self> {
        let shared = Arc::new(build(items, config));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
        info!(%addr, frames = shared.frames().len(), "simulator listening");
        Ok(Self { addr, shared, stop, task: Some(task) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://addr`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The tokio instant playback started (time `offset 0` of the stream).
    pub fn origin(&self) -> Instant {
        self.shared.origin
    }

    /// Frames in the stream (the last seq).
    pub fn last_seq(&self) -> u64 {
        self.shared.frames().len() as u64
    }

    /// The highest seq acked, without copying the rest of [`Self::stats`] (whose list of
    /// received sends grows with every robot message: a poller copying it every millisecond
    /// takes a core from the bot it measures).
    pub fn acked(&self) -> Option<u64> {
        self.shared.stats().acked
    }

    /// A copy of what the server has seen.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats().clone()
    }

    /// Cuts every connection at once, with no close frame.
    pub async fn stop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops and listens again on the same port, keeping the stream and the acks.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        let (stop, stop_rx) = watch::channel(false);
        self.stop = stop;
        self.task = Some(tokio::spawn(accept_loop(listener, self.shared.clone(), stop_rx)));
        Ok(())
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn build(items: Vec<Item>, config: ServerConfig) -> Shared {
    let first_ts = items.iter().find_map(|i| if let Item::Event(e) = i { Some(e.ts) } else { None });
    let first_ts = first_ts.unwrap_or(0);
    let mut frames: Vec<Frame> = Vec::with_capacity(items.len());
    let mut parties = HashMap::new();
    let (mut ts, mut offset_ms) = (first_ts, 0);
    for item in items {
        let seq = frames.len() as u64 + 1;
        if config.garbage_every.is_some_and(|n| n > 0 && seq.is_multiple_of(n)) {
            let text = format!(r#"{{"op":"event","seq":{seq},"event":{{"type":"message", ### garbage"#);
            frames.push(Frame { offset_ms, ts, text: text.into() });
        }
        let seq = frames.len() as u64 + 1;
        let text = match item {
            Item::Event(e) => {
                ts = e.ts;
                offset_ms = e.ts - first_ts;
                if let EventKind::Message { conversation, customer, agent, .. } = &e.kind {
                    parties.insert(conversation.clone(), (e.shop.clone(), customer.clone(), agent.clone()));
                }
                event_frame(seq, &e.to_json())
            }
            Item::Text(t) => t.replace("{seq}", &seq.to_string()),
        };
        frames.push(Frame { offset_ms, ts, text: text.into() });
    }
    let (len, _) = watch::channel(frames.len());
    Shared {
        config,
        origin: Instant::now(),
        frames: Mutex::new(frames),
        len,
        stats: Mutex::new(ServerStats::default()),
        sent: AtomicU64::new(0),
        parties,
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                debug!(%peer, "simulator: connection");
                conns.spawn(serve(tcp, shared.clone(), stop.clone()));
            }
        }
    }
    // Dropping the connections' sockets cuts the clients, as a crashed platform would.
    conns.shutdown().await;
}

async fn serve(tcp: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let _ = tcp.set_nodelay(true);
    let token = shared.config.token.clone();
    // The Err type is tungstenite's callback contract, boxed or not.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let Some(token) = &token else { return Ok(resp) };
        let given = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if given == Some(format!("Bearer {token}").as_str()) {
            return Ok(resp);
        }
        // Counted before the 401 is written: a client that has read it must find it counted
        // (counted after the handshake returned, a test reading the stats raced it).
        shared.stats().unauthorized += 1;
        let mut refuse = ErrorResponse::new(Some("bad or missing bearer token".into()));
        *refuse.status_mut() = StatusCode::UNAUTHORIZED;
        Err(refuse)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(tcp, check).await {
        Ok(ws) => ws,
        Err(e) => {
            debug!(error = %e, "simulator: handshake failed");
            return;
        }
    };
    let (mut tx, mut rx) = ws.split();
    let resume_after = match timeout(Duration::from_secs(10), rx.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ClientFrame>(&t) {
            Ok(ClientFrame::Hello { resume_after, .. }) => resume_after,
            _ => return,
        },
        _ => return,
    };
    {
        let mut s = shared.stats();
        s.connections += 1;
        s.hellos.push(resume_after);
        // `resume_after` is what kefu has persisted: it acknowledges that seq as an ack
        // frame would. A cut right after the last frame leaves no other ack for it.
        s.acked = s.acked.max(resume_after);
    }
    let mut len_rx = shared.len.subscribe();
    let mut next = resume_after.map_or(1, |s| s.saturating_add(1));
    loop {
        len_rx.borrow_and_update();
        let frame = shared.frame(next);
        let due = frame.as_ref().map(|f| f.0);
        tokio::select! {
            _ = stop.changed() => return,
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => on_client_frame(&shared, &t),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = len_rx.changed(), if frame.is_none() => {}
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                // Send everything already due (up to a burst), then flush once.
                let mut burst = 0;
                while let Some((at, text)) = shared.frame(next) {
                    if at > Instant::now() || burst == 256 {
                        break;
                    }
                    if tx.feed(Message::Text(text.to_string())).await.is_err() {
                        return;
                    }
                    let sent = shared.sent.fetch_add(1, Ordering::Relaxed) + 1;
                    if shared.config.duplicate_every.is_some_and(|n| n > 0 && sent.is_multiple_of(n))
                        && tx.feed(Message::Text(text.to_string())).await.is_err()
                    {
                        return;
                    }
                    next += 1;
                    burst += 1;
                    if shared.config.drop_every.is_some_and(|n| n > 0 && sent.is_multiple_of(n)) {
                        let _ = tx.flush().await;
                        shared.stats().drops += 1;
                        return;
                    }
                }
                if tx.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

fn on_client_frame(shared: &Shared, text: &str) {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Ack { seq }) => {
            let mut s = shared.stats();
            s.acks += 1;
            s.acked = s.acked.max(Some(seq));
        }
        Ok(ClientFrame::Send { id, conversation, text, .. }) => {
            let send = ReceivedSend { id, conversation, text };
            shared.stats().sends.push(send.clone());
            shared.append_echo(&send);
        }
        Ok(ClientFrame::Hello { .. }) => debug!(frame = text, "simulator: unexpected client frame"),
        Err(_) => shared.stats().other.push(text.to_string()),
    }
}

/// Shifts every event so the first is at `to` (UTC ms), keeping the gaps: traffic
/// generated for any day plays as if it were happening now.
pub fn rebase(events: &mut [Event], to: Millis) {
    let Some(first) = events.first().map(|e| e.ts) else { return };
    for e in events {
        e.ts = e.ts - first + to;
    }
}
