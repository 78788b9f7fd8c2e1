//! The web console: a live board for supervisors, the conversation behind every number,
//! logins and roles. One binary: pages are maud templates, the script and style sheet are
//! embedded; `kefu run` and `kefu demo` serve it.
//!
//! - [`board`]: the board's state, a pure consumer of the runtime's events and engine outputs,
//!   and the publisher that hands it to browsers.
//! - [`server`]: the HTTP routes (axum), the login check, CSRF, the event stream.
//! - [`pages`]: the HTML templates and the embedded assets.
//! - [`reports`]: pages read from the database on request: an agent's day ("my day").
//! - [`points`]: points and appeals (日常考核 / 复核) with the audit trail.
//! - [`inputs`]: the score-input grid (agents × supervisor-scored indicators, CSV upload).
//! - [`findings`]: findings review — confirm or dismiss a phrase-guard finding.
//! - [`answers`]: auto-answers from misses — grouped unanswered questions, a rule added to `replies/auto.toml`.
//! - [`transcript`]: a conversation's day from the database, findings at their spans.
//! - [`auth`]: sessions, CSRF tokens, the login rate limit.
//! - [`users`]: users and roles, argon2 password hashes.
//! - [`cli`]: `kefu users add|list|passwd|remove`.

pub mod answers;
pub mod auth;
pub mod board;
pub mod cli;
pub mod findings;
pub mod inputs;
pub mod pages;
pub mod points;
pub mod reports;
pub mod server;
pub mod transcript;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinHandle;

pub use board::{BoardFeed, BoardState, BoardView};

use crate::store::{Store, StoreError};

/// Board states are published at most this often (an update reaches browsers within
/// about this much of its commit; countdowns tick in the browser in between).
pub const PUBLISH_GAP: Duration = Duration::from_millis(250);

/// Where and how to serve the console.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Address to listen on (loopback unless it sits behind a reverse proxy).
    pub addr: SocketAddr,
    /// The database (users, sessions, transcripts).
    pub db: PathBuf,
    /// Mark cookies `Secure` (set when browsers reach it over HTTPS).
    pub secure_cookies: bool,
    /// Rules folder, for the scoring sheet's appeal window (none: the embedded sheet).
    pub rules: Option<PathBuf>,
    /// Replies folder: auto-answers added from misses are written to its `auto.toml`
    /// (none: the robot serves the shipped rules and the console cannot add any).
    pub replies: Option<PathBuf>,
    /// Notified after the console wrote a rule file: the running robot's reloader looks at once.
    pub reload: Option<Arc<tokio::sync::Notify>>,
}

/// Why the console could not start.
#[derive(Debug, Error)]
pub enum ConsoleError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr} for the console")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error("opening the console's database connection")]
    Store(#[source] StoreError),
}

/// A running console: the HTTP server and the board publisher.
pub struct Console {
    addr: SocketAddr,
    server: JoinHandle<()>,
    publisher: JoinHandle<()>,
}

impl Console {
    /// The board, its publisher started (call inside a tokio runtime): the feed goes to the
    /// runtime (`LiveConfig::board`), the view to [`Console::start`]. `speed` is engine
    /// time's pace (the demo's is above 1).
    pub fn board(plan: crate::alerts::Plan, speed: f64) -> (BoardFeed, BoardView) {
        board::channel(plan, speed, PUBLISH_GAP)
    }

    /// Binds the address and serves. Call after the runtime opened the database (its
    /// migrations are then in place).
    pub async fn start(config: &ConsoleConfig, board: BoardView) -> Result<Self, ConsoleError> {
        let listener = Self::bind(config.addr).await?;
        Self::serve(listener, config, board)
    }

    /// Binds an address for [`Console::serve`].
    pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ConsoleError> {
        tokio::net::TcpListener::bind(addr).await.map_err(|source| ConsoleError::Bind { addr, source })
    }

    /// Serves on a bound listener (`config.addr` is not used).
    pub fn serve(
        listener: tokio::net::TcpListener,
        config: &ConsoleConfig,
        board: BoardView,
    ) -> Result<Self, ConsoleError> {
        let addr =
            listener.local_addr().map_err(|source| ConsoleError::Bind { addr: config.addr, source })?;
        let store = Store::open(&config.db).map_err(ConsoleError::Store)?;
        let publisher = board.task;
        if let Err(e) = crate::scoring::sheet::load(config.rules.as_deref()) {
            tracing::warn!(error = %e, "console: the scoring sheet does not load; appeals get a 24 h window and months are not rescored");
        }
        let app = Arc::new(
            server::App::new(store.into_conn(), board.rx, config.secure_cookies, config.rules.clone())
                .with_replies(config.replies.clone(), config.reload.clone()),
        );
        let router = server::router(app).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "console server stopped");
            }
        });
        Ok(Self { addr, server, publisher })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving. Open event streams never finish on their own, so the tasks are
    /// aborted rather than drained.
    pub fn stop(self) {
        self.server.abort();
        self.publisher.abort();
    }
}
