//! `kefu users add|list|passwd|remove`: console logins in the database.
//!
//! Passwords never go on the command line (the process list and shell history would keep
//! them): they come from the environment variable `--password-env` names, else from the
//! first line of standard input.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use thiserror::Error;

use super::users::{self, Role, User, UserError};
use crate::store::{Store, StoreError};
use crate::time::now_ms;

/// `kefu users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add a login.
    Add {
        /// Login name.
        name: String,
        /// owner (everything, pay included), supervisor (their shops), agent (their own work).
        #[arg(long, value_enum)]
        role: Role,
        /// For role agent: the platform's agent id.
        #[arg(long)]
        agent: Option<String>,
        /// For role supervisor: the shops they see, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        shops: Vec<String>,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Read the password from this environment variable (default: first line of stdin).
        #[arg(long)]
        password_env: Option<String>,
    },
    /// List logins (never their passwords).
    List {
        /// Database file.
        #[arg(long)]
        db: PathBuf,
    },
    /// Set a new password; the user's open sessions end.
    Passwd {
        /// Login name.
        name: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Read the password from this environment variable (default: first line of stdin).
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Remove a login and its sessions.
    Remove {
        /// Login name.
        name: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
    },
}

/// Failures of `kefu users`.
#[derive(Debug, Error)]
pub enum UsersCliError {
    /// The database could not be opened.
    #[error("opening the database")]
    Store(#[source] StoreError),
    /// The change was refused.
    #[error(transparent)]
    User(#[from] UserError),
    /// No password was given.
    #[error("no password: set the variable --password-env names, or give it on standard input")]
    NoPassword,
    /// Reading standard input failed.
    #[error("reading the password from standard input")]
    Stdin(#[source] std::io::Error),
}

fn password(env: Option<&str>) -> Result<String, UsersCliError> {
    if let Some(var) = env {
        return std::env::var(var).map_err(|_| UsersCliError::NoPassword);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(UsersCliError::Stdin)?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() { Err(UsersCliError::NoPassword) } else { Ok(p) }
}

fn open(db: &Path) -> Result<Store, UsersCliError> {
    Store::open(db).map_err(UsersCliError::Store)
}

/// Runs one `kefu users` command; returns what to print.
pub fn run(cmd: UsersCmd) -> Result<String, UsersCliError> {
    match cmd {
        UsersCmd::Add { name, role, agent, shops, db, password_env } => {
            let store = open(&db)?;
            let pw = password(password_env.as_deref())?;
            let shops = shops.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            let user = User { name, role, agent, shops };
            users::add(store.conn(), &user, &pw, now_ms())?;
            Ok(format!("added {} ({})", user.name, role.as_str()))
        }
        UsersCmd::List { db } => {
            let store = open(&db)?;
            let mut out = String::from("name\trole\tagent\tshops");
            for u in users::list(store.conn())? {
                let shops = if u.shops.is_empty() { "*".to_string() } else { u.shops.join(",") };
                out.push_str(&format!(
                    "\n{}\t{}\t{}\t{}",
                    u.name,
                    u.role.as_str(),
                    u.agent.as_deref().unwrap_or("-"),
                    shops
                ));
            }
            Ok(out)
        }
        UsersCmd::Passwd { name, db, password_env } => {
            let store = open(&db)?;
            let pw = password(password_env.as_deref())?;
            users::set_password(store.conn(), &name, &pw, now_ms())?;
            Ok(format!("password of {name} changed; their sessions ended"))
        }
        UsersCmd::Remove { name, db } => {
            let store = open(&db)?;
            users::remove(store.conn(), &name)?;
            Ok(format!("removed {name}"))
        }
    }
}
