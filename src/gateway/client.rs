//! The websocket client: connects, says hello with the resume point, hands frames to the
//! runtime, acks what the runtime committed, sends robot replies, and reconnects.
//!
//! One `tokio::select!` per connection over shutdown, the runtime's commit point, robot
//! replies to send, the heartbeat tick, the silence deadline and the next frame. How a
//! connection ended ([`Disconnect`]) decides between reconnecting and stopping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, interval_at, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::protocol::{ClientFrame, HARD_FRAME_BYTES, Incoming, RejectedFrame, SeqGuard, decode, truncate};
use crate::alerts::notice::mask_text;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and how to connect. Its `Debug` shows neither the token nor the URL's query.
#[derive(Clone)]
pub struct GatewayConfig {
    /// `ws://` or `wss://` URL of the platform.
    pub url: String,
    /// Bearer token for the upgrade request.
    pub token: Option<String>,
    /// Reconnect schedule.
    pub backoff: Backoff,
    /// Ping period.
    pub ping_every: Duration,
    /// With no frame (pong included) for this long, the connection is presumed dead.
    pub silence_limit: Duration,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("url", &redact_url(&self.url))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("backoff", &self.backoff)
            .field("ping_every", &self.ping_every)
            .field("silence_limit", &self.silence_limit)
            .finish()
    }
}

/// The URL as it may be logged: every query value (a platform may take its token as
/// `?token=…`) and any user or password replaced by `***`, the fragment dropped. A URL
/// that does not parse is not shown at all, only its length.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return format!("<unreadable url of {} bytes>", raw.len());
    };
    if !url.username().is_empty() {
        let _ = url.set_username("***");
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        url.query_pairs_mut().clear().extend_pairs(keys.iter().map(|k| (k.as_str(), "***")));
    }
    url.set_fragment(None);
    url.to_string()
}

impl GatewayConfig {
    /// The documented defaults: ping every 15 s, reconnect after 45 s of silence.
    pub fn new(url: impl Into<String>, token: Option<String>) -> Self {
        Self {
            url: url.into(),
            token,
            backoff: Backoff::default(),
            ping_every: Duration::from_secs(15),
            silence_limit: Duration::from_secs(45),
        }
    }
}

/// The gateway's side of its link to the runtime.
pub struct Link {
    /// Decoded frames, in arrival order, to the runtime.
    pub frames: mpsc::Sender<Incoming>,
    /// The highest seq the runtime has committed (what may be acked and resumed after).
    pub committed: watch::Receiver<Option<u64>>,
    /// Robot replies and other frames to send.
    pub sends: mpsc::Receiver<Outgoing>,
}

/// A frame waiting for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A robot reply (`op: send`, `as: bot`).
    Send(SendRequest),
    /// Any other frame, as JSON text (`suggest`, `transfer`, `replies.found` …).
    Frame(String),
}

/// A robot reply waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// Unique id.
    pub id: String,
    /// Conversation id.
    pub conversation: String,
    /// Text.
    pub text: String,
}

/// Speaks in conversations as the robot (the auto-answer issue uses this).
#[derive(Clone)]
pub struct SendHandle {
    tx: mpsc::Sender<Outgoing>,
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

/// Why a reply could not be queued.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SendError {
    /// Too many replies are waiting for the connection.
    #[error("reply queue is full")]
    Full,
    /// The gateway has stopped.
    #[error("gateway stopped")]
    Stopped,
}

impl SendHandle {
    /// A handle and the receiving end for [`Link::sends`]; `capacity` replies may wait.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity);
        // Ids must stay unique across restarts: the process start time makes them so.
        let prefix = format!("kefu-{}", crate::time::now_ms());
        (Self { tx, prefix: prefix.into(), next: Arc::new(AtomicU64::new(1)) }, rx)
    }

    /// Queues a reply without waiting; returns its id. Replies wait while disconnected.
    pub fn send(&self, conversation: &str, text: &str) -> Result<String, SendError> {
        let id = self.next_id();
        let req = SendRequest { id: id.clone(), conversation: conversation.into(), text: text.into() };
        self.queue(Outgoing::Send(req))?;
        Ok(id)
    }

    /// A fresh frame id, unique across restarts.
    pub fn next_id(&self) -> String {
        format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Queues a frame (JSON text) without waiting. Frames wait while disconnected.
    pub fn send_frame(&self, frame: String) -> Result<(), SendError> {
        self.queue(Outgoing::Frame(frame))
    }

    fn queue(&self, out: Outgoing) -> Result<(), SendError> {
        self.tx.try_send(out).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Stopped,
        })
    }
}

/// Connection counters, read by the status line and tests.
#[derive(Debug, Default)]
pub struct GatewayCounters {
    /// Successful connections.
    pub connects: AtomicU64,
    /// Connections lost (each is followed by a reconnect attempt).
    pub disconnects: AtomicU64,
    /// Acks sent.
    pub acks: AtomicU64,
    /// Frames sent on kefu's initiative (robot replies, suggestions, lookup answers).
    pub sent: AtomicU64,
}

/// Why a connection ended without kefu asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The platform closed, with its close code and reason when it gave one.
    Closed(Option<(u16, String)>),
    /// The socket or the websocket layer failed.
    Transport(String),
    /// No frame or pong within the silence limit.
    Silent,
}

impl Disconnect {
    /// Close codes that mean "do not come back": policy violation (1008, a bad token
    /// mid-session) and the application range 4000–4099 a platform may use for auth.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Closed(Some((code, _))) if *code == 1008 || (4000..4100).contains(code))
    }
}

/// Why the gateway stopped for good.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// The URL is not a websocket URL.
    #[error("bad platform url `{url}`: {reason}")]
    BadUrl {
        /// The URL, query values masked ([`redact_url`]).
        url: String,
        /// Why.
        reason: String,
    },
    /// The platform refused the token on the upgrade.
    #[error("the platform refused the token (HTTP {0}); check `token` / `token_env`")]
    Unauthorized(u16),
    /// The platform closed with a code that forbids reconnecting.
    #[error("the platform closed the connection: {0:?}")]
    Refused(Disconnect),
    /// The runtime stopped taking frames.
    #[error("the live runtime stopped")]
    RuntimeStopped,
}

enum Ended {
    Reconnect(Disconnect),
    Fatal(GatewayError),
    Shutdown,
}

/// The `kefu/<version>` client name sent in `hello`.
pub fn client_name() -> String {
    format!("kefu/{}", env!("CARGO_PKG_VERSION"))
}

/// Runs the gateway until `shutdown` turns true or a fatal error. On shutdown it stops
/// reading, lets the runtime commit what it has, sends the final ack and closes.
pub async fn run(
    config: GatewayConfig,
    link: Link,
    counters: Arc<GatewayCounters>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), GatewayError> {
    let Link { frames, mut committed, mut sends } = link;
    let mut backoff = config.backoff.clone();
    let mut frames = Some(frames);
    loop {
        if *shutdown.borrow() {
            drop(frames.take());
            return Ok(());
        }
        let ended = match connect(&config).await {
            Ok(ws) => {
                counters.connects.fetch_add(1, Ordering::Relaxed);
                info!(url = %redact_url(&config.url), "connected");
                let s = Session { config: &config, counters: &counters, heard_any: false };
                let mut s = s;
                let ended = s.run(ws, &mut frames, &mut committed, &mut sends, &mut shutdown).await;
                if s.heard_any {
                    backoff.reset();
                }
                ended
            }
            Err(e) => e,
        };
        match ended {
            Ended::Shutdown => return Ok(()),
            Ended::Fatal(e) => {
                drop(frames.take());
                return Err(e);
            }
            Ended::Reconnect(why) => {
                counters.disconnects.fetch_add(1, Ordering::Relaxed);
                let delay = backoff.next_delay(rand::random::<f64>());
                warn!(reason = ?why, delay_ms = delay.as_millis() as u64, "disconnected; reconnecting");
                tokio::select! {
                    _ = sleep(delay) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

async fn connect(config: &GatewayConfig) -> Result<Ws, Ended> {
    let bad_url =
        |reason: String| Ended::Fatal(GatewayError::BadUrl { url: redact_url(&config.url), reason });
    let mut request = config.url.as_str().into_client_request().map_err(|e| bad_url(e.to_string()))?;
    if let Some(token) = &config.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Ended::Fatal(GatewayError::Unauthorized(0)))?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let ws_config = WebSocketConfig {
        max_message_size: Some(HARD_FRAME_BYTES),
        max_frame_size: Some(HARD_FRAME_BYTES),
        ..WebSocketConfig::default()
    };
    let attempt = timeout(Duration::from_secs(10), connect_async_with_config(request, Some(ws_config), true));
    match attempt.await {
        Err(_) => Err(Ended::Reconnect(Disconnect::Transport("connect timed out".into()))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(WsError::Http(resp))) if matches!(resp.status().as_u16(), 401 | 403) => {
            Err(Ended::Fatal(GatewayError::Unauthorized(resp.status().as_u16())))
        }
        Ok(Err(WsError::Url(e))) => Err(bad_url(e.to_string())),
        Ok(Err(e)) => Err(Ended::Reconnect(Disconnect::Transport(e.to_string()))),
    }
}

/// Frames waiting for the socket at most.
const OUT_QUEUE: usize = 256;
/// Room kept in the queue for acks and pings.
const OUT_RESERVE: usize = 8;

/// Writes the queued frames in order until the queue closes (then closes the socket) or a
/// write fails (its error).
async fn write_all(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut queue: mpsc::Receiver<Message>,
) -> Result<(), String> {
    while let Some(m) = queue.recv().await {
        sink.send(m).await.map_err(|e| e.to_string())?;
    }
    sink.close().await.map_err(|e| e.to_string())
}

struct Session<'a> {
    config: &'a GatewayConfig,
    counters: &'a GatewayCounters,
    heard_any: bool,
}

impl Session<'_> {
    async fn run(
        &mut self,
        ws: Ws,
        frames: &mut Option<mpsc::Sender<Incoming>>,
        committed: &mut watch::Receiver<Option<u64>>,
        sends: &mut mpsc::Receiver<Outgoing>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let (mut sink, mut stream) = ws.split();
        let resume_after = *committed.borrow_and_update();
        let hello = ClientFrame::Hello { client: client_name(), resume_after };
        if let Err(e) = sink.send(Message::Text(hello.to_text())).await {
            return Ended::Reconnect(Disconnect::Transport(e.to_string()));
        }
        // Writing has its own future, fed through a queue, so reading never waits on a
        // write: a platform that stops reading while it sends (as the simulator does in a
        // burst) would otherwise wait on kefu while kefu waits on it.
        let (out, out_rx) = mpsc::channel::<Message>(OUT_QUEUE);
        let writer = write_all(sink, out_rx);
        tokio::pin!(writer);
        let mut acked = resume_after;
        let mut seqs = SeqGuard::new(resume_after);
        let limit = self.config.silence_limit;
        let mut heard = Instant::now();
        let mut ping = interval_at(heard + self.config.ping_every, self.config.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Reset lazily: only when it fires early, not on every frame.
        let silence = sleep_until(heard + limit);
        tokio::pin!(silence);
        let mut sends_open = true;
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    // Stop reading; the runtime drains and commits, then its commit point
                    // closes and the final ack goes out before the close frame.
                    drop(frames.take());
                    while committed.changed().await.is_ok() {}
                    let last = *committed.borrow();
                    if let (Some(seq), true) = (last, last > acked) {
                        let _ = out.send(Message::Text(ClientFrame::Ack { seq }.to_text())).await;
                        self.counters.acks.fetch_add(1, Ordering::Relaxed);
                    }
                    let bye = CloseFrame { code: CloseCode::Normal, reason: "kefu stopping".into() };
                    let _ = out.send(Message::Close(Some(bye))).await;
                    drop(out);
                    let _ = timeout(Duration::from_secs(5), &mut writer).await;
                    info!(acked = ?last, "gateway stopped");
                    return Ended::Shutdown;
                }
                written = &mut writer => {
                    let why = written.err().unwrap_or_else(|| "writer stopped".into());
                    return Ended::Reconnect(Disconnect::Transport(why));
                }
                changed = committed.changed() => {
                    if changed.is_err() {
                        return Ended::Fatal(GatewayError::RuntimeStopped);
                    }
                    let last = *committed.borrow_and_update();
                    if let (Some(seq), true) = (last, last > acked) {
                        // Acks are cumulative: with the queue full this one is skipped and
                        // the next commit's ack covers it.
                        if out.try_send(Message::Text(ClientFrame::Ack { seq }.to_text())).is_ok() {
                            self.counters.acks.fetch_add(1, Ordering::Relaxed);
                            acked = last;
                        }
                    }
                }
                // Kefu's own frames wait in `sends` while the queue is nearly full, leaving
                // room for acks and pings.
                req = sends.recv(), if sends_open && out.capacity() > OUT_RESERVE => {
                    let Some(req) = req else { sends_open = false; continue };
                    let text = match req {
                        Outgoing::Send(req) => ClientFrame::Send {
                            id: req.id,
                            conversation: req.conversation,
                            text: req.text,
                            sender: "bot".into(),
                        }
                        .to_text(),
                        Outgoing::Frame(text) => text,
                    };
                    if out.try_send(Message::Text(text)).is_err() {
                        return Ended::Reconnect(Disconnect::Transport("writer stopped".into()));
                    }
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                _ = ping.tick() => {
                    // A full queue means writes are stuck: the silence limit decides.
                    let _ = out.try_send(Message::Ping(Vec::new()));
                }
                () = &mut silence => {
                    if heard.elapsed() >= limit {
                        return Ended::Reconnect(Disconnect::Silent);
                    }
                    silence.as_mut().reset(heard + limit);
                }
                msg = stream.next() => {
                    let msg = match msg {
                        None => return Ended::Reconnect(Disconnect::Closed(None)),
                        Some(Err(e)) => return Ended::Reconnect(Disconnect::Transport(e.to_string())),
                        Some(Ok(m)) => m,
                    };
                    heard = Instant::now();
                    self.heard_any = true;
                    let incoming = match msg {
                        Message::Text(text) => seqs.admit(decode(&text), &text),
                        Message::Binary(bytes) => Incoming::Rejected(RejectedFrame {
                            seq: None,
                            ackable: false,
                            reason: "binary frame: the protocol is JSON text".into(),
                            raw: truncate(&String::from_utf8_lossy(&bytes), 4096).to_string(),
                        }),
                        Message::Close(frame) => {
                            let why = Disconnect::Closed(frame.map(|f| (u16::from(f.code), f.reason.into_owned())));
                            if why.is_fatal() {
                                return Ended::Fatal(GatewayError::Refused(why));
                            }
                            return Ended::Reconnect(why);
                        }
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                    };
                    match &incoming {
                        // The reason may quote the frame (serde names the value it refused):
                        // phone and ID numbers are masked before it is logged.
                        Incoming::Rejected(r) => warn!(seq = ?r.seq, reason = %mask_text(&r.reason), "rejected frame"),
                        // Requests (`replies.find`) go to the runtime, which answers them.
                        Incoming::Other(v) if v["op"].as_str().is_some_and(|op| op.starts_with("replies.")) => {}
                        Incoming::Other(v) => {
                            debug!(op = %mask_text(v["op"].as_str().unwrap_or("")), "ignored frame");
                            continue;
                        }
                        Incoming::Event { .. } => {}
                    }
                    let Some(tx) = frames.as_ref() else { return Ended::Shutdown };
                    if tx.send(incoming).await.is_err() {
                        return Ended::Fatal(GatewayError::RuntimeStopped);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_tokens() {
        let cases = [
            ("ws://127.0.0.1:9000/kefu/v1?token=S3CRET", "ws://127.0.0.1:9000/kefu/v1?token=***"),
            ("wss://u:pw@h.example/a?x=1&key=S3CRET#frag", "wss://***:***@h.example/a?x=***&key=***"),
            ("ws://h.example/plain", "ws://h.example/plain"),
            ("not a url S3CRET", "<unreadable url of 16 bytes>"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact_url(raw), want, "{raw}");
        }
        let config = GatewayConfig::new("ws://h/?token=S3CRET", Some("B34RER".into()));
        let shown = format!("{config:?}");
        assert!(!shown.contains("S3CRET") && !shown.contains("B34RER"), "{shown}");
    }
}
