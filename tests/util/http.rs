//! A real HTTP/1.1 endpoint on 127.0.0.1:0 that records every request and answers from a
//! script: a status (with body), a delay then a status (a slow sink), a redirect, or never
//! (a hanging sink). It counts the requests it holds at once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the endpoint answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status and body, at once.
    Status(u16, String),
    /// Wait (tokio time), then answer.
    After(Duration, u16, String),
    /// Never answer (the connection stays open).
    Hang,
    /// A redirect: this status with `Location: <url>` and no body.
    Redirect(u16, String),
}

impl Reply {
    /// `200` with a DingTalk-style success body.
    pub fn ok() -> Self {
        Reply::Status(200, r#"{"errcode":0,"errmsg":"ok"}"#.into())
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET` …
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body as UTF-8.
    pub body: String,
    /// The status answered (0 = never answered).
    pub status: u16,
    /// When the request was fully read (real time, for benchmarks).
    pub received: std::time::Instant,
    /// Whether the answer was written to the socket (false while it waits or hangs).
    pub answered: bool,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

struct State {
    script: VecDeque<Reply>,
    default: Reply,
    recorded: Vec<Recorded>,
    /// Requests read and not yet answered, and the most there ever were.
    open: usize,
    max_open: usize,
}

/// The running endpoint.
#[derive(Clone)]
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl HttpServer {
    /// Listens on 127.0.0.1:0; answers from `script` in order, then always `default`.
    pub async fn start(script: Vec<Reply>, default: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            default,
            recorded: Vec::new(),
            open: 0,
            max_open: 0,
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        Self { addr, state }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().recorded.clone()
    }

    /// Requests received so far that were answered 2xx.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| (200..300).contains(&r.status)).collect()
    }

    /// Requests answered so far (the answer written), in arrival order.
    pub fn answered(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.answered).collect()
    }

    /// The most requests this endpoint held unanswered at once.
    pub fn max_open(&self) -> usize {
        self.state.lock().unwrap().max_open
    }

    /// Changes the answer for every later request.
    pub fn set_default(&self, reply: Reply) {
        self.state.lock().unwrap().default = reply;
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some((mut rec, used)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        buf.drain(..used);
        let (reply, index) = {
            let mut s = state.lock().unwrap();
            let reply = s.script.pop_front().unwrap_or_else(|| s.default.clone());
            rec.status = match &reply {
                Reply::Status(code, _) | Reply::After(_, code, _) | Reply::Redirect(code, _) => *code,
                Reply::Hang => 0,
            };
            s.recorded.push(rec);
            s.open += 1;
            s.max_open = s.max_open.max(s.open);
            (reply, s.recorded.len() - 1)
        };
        let (code, body, location) = match reply {
            Reply::Status(code, body) => (code, body, None),
            Reply::After(wait, code, body) => {
                tokio::time::sleep(wait).await;
                (code, body, None)
            }
            Reply::Redirect(code, to) => (code, String::new(), Some(to)),
            Reply::Hang => std::future::pending().await,
        };
        // A client that went away while the answer waited (killed, timed out) gets none:
        // the write could still succeed into the socket buffer, but nobody reads it.
        let mut probe = [0u8; 1];
        match stream.try_read(&mut probe) {
            Ok(0) => {
                state.lock().unwrap().open -= 1;
                return;
            }
            Ok(n) => buf.extend_from_slice(&probe[..n]),
            Err(_) => {}
        }
        let location = location.map_or_else(String::new, |to| format!("location: {to}\r\n"));
        // One write: head and body in two small writes would meet Nagle and delayed ACK (40 ms).
        let answer = format!(
            "HTTP/1.1 {code} X\r\n{location}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let written = stream.write_all(answer.as_bytes()).await.is_ok();
        {
            let mut s = state.lock().unwrap();
            s.open -= 1;
            s.recorded[index].answered = written;
        }
        if !written {
            return;
        }
    }
}

/// Reads one request from the connection; returns it and the bytes of `buf` it used.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Recorded, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                read_more(stream, buf).await?;
            }
            let body = String::from_utf8_lossy(&buf[end + 4..total]).into_owned();
            let received = std::time::Instant::now();
            return Some((
                Recorded { method, target, headers, body, status: 0, received, answered: false },
                total,
            ));
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// The alert keys `(conversation, wait_start, kind)` a webhook body carries: one for a
/// single alert, every notice of a digest.
pub fn alert_keys(body: &str) -> Vec<(String, i64, String)> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let one = |n: &serde_json::Value| {
        (
            n["conversation"].as_str().unwrap().to_string(),
            n["wait_start"].as_i64().unwrap(),
            n["kind"].as_str().unwrap().to_string(),
        )
    };
    match v["notices"].as_array() {
        Some(all) => all.iter().map(one).collect(),
        None => vec![one(&v)],
    }
}
