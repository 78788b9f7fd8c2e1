//! Sessions, CSRF tokens and the login rate limit.
//!
//! A session is a random 256-bit token in an `HttpOnly; SameSite=Strict` cookie; the
//! database keeps only its SHA-256 (table `console_sessions`) with the session's CSRF
//! token, which every form carries back in a hidden field. Before login, the login form
//! is protected the same way by a short-lived cookie holding its own token (double submit).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::users::{self, User, UserError};
use crate::time::Millis;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kefu_session";
/// The login form's CSRF cookie.
pub const LOGIN_COOKIE: &str = "kefu_login";
/// How long a session lasts (a working day and a half).
pub const SESSION_MS: i64 = 12 * 3_600_000;

/// 32 random bytes from the OS, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub user: User,
    /// The token forms must carry.
    pub csrf: String,
    /// When the session ends by itself (UTC ms); signing out or a password change ends it sooner.
    pub expires_at: Millis,
}

/// Starts a session; returns the cookie value and the CSRF token. Expired sessions go.
pub fn create(conn: &Connection, user: &str, now: Millis) -> Result<(String, String), UserError> {
    let (token, csrf) = (random_token(), random_token());
    conn.execute("DELETE FROM console_sessions WHERE expires_at <= ?1", [now])?;
    conn.execute(
        "INSERT INTO console_sessions (token_hash, user, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token_hash(&token), user, csrf, now, now + SESSION_MS],
    )?;
    Ok((token, csrf))
}

/// The live session a cookie value names, if any.
pub fn lookup(conn: &Connection, token: &str, now: Millis) -> Result<Option<Session>, UserError> {
    let row: Option<(String, String, Millis)> = conn
        .query_row(
            "SELECT user, csrf, expires_at FROM console_sessions WHERE token_hash = ?1 AND expires_at > ?2",
            params![token_hash(token), now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((name, csrf, expires_at)) = row else { return Ok(None) };
    Ok(users::get(conn, &name)?.map(|user| Session { user, csrf, expires_at }))
}

/// Ends a session.
pub fn delete(conn: &Connection, token: &str) -> Result<(), UserError> {
    conn.execute("DELETE FROM console_sessions WHERE token_hash = ?1", [token_hash(token)])?;
    Ok(())
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|kv| kv.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`; `Secure` when served over HTTPS.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// Failed logins allowed before each further attempt must wait.
pub const FREE_FAILURES: u32 = 3;
/// The longest wait between attempts.
pub const MAX_LOCK_MS: i64 = 60_000;
/// Failures older than this are forgotten.
pub const FORGET_MS: i64 = 15 * 60_000;

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    last: Millis,
    locked_until: Millis,
}

/// The login rate limit, per key (a user name, a client address): after
/// [`FREE_FAILURES`] failures each further failure locks the key for 1 s, 2 s, 4 s …
/// up to [`MAX_LOCK_MS`]; a success clears it. Pure: time is an argument.
#[derive(Debug, Default)]
pub struct Limiter {
    keys: HashMap<String, Failures>,
}

impl Limiter {
    /// `Err(ms)` when the key must wait that long before trying again.
    pub fn check(&self, key: &str, now: Millis) -> Result<(), i64> {
        match self.keys.get(key) {
            Some(f) if f.locked_until > now => Err(f.locked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn failed(&mut self, key: &str, now: Millis) {
        if self.keys.len() > 10_000 {
            self.keys.retain(|_, f| now - f.last < FORGET_MS);
        }
        let f = self.keys.entry(key.to_string()).or_default();
        if now - f.last >= FORGET_MS {
            *f = Failures::default();
        }
        f.count += 1;
        f.last = now;
        if f.count >= FREE_FAILURES {
            let doublings = (f.count - FREE_FAILURES).min(16);
            f.locked_until = now + (1000i64 << doublings).min(MAX_LOCK_MS);
        }
    }

    /// Records a successful login.
    pub fn succeeded(&mut self, key: &str) {
        self.keys.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_wait_longer_and_longer_then_are_forgotten() {
        let mut l = Limiter::default();
        let mut t = 0;
        let mut waits = vec![];
        for _ in 0..10 {
            match l.check("li", t) {
                Ok(()) => {
                    l.failed("li", t);
                    waits.push(l.check("li", t).err().unwrap_or(0));
                }
                Err(ms) => t += ms,
            }
        }
        assert_eq!(waits, [0, 0, 1000, 2000, 4000, 8000]);
        assert!(l.check("wang", t).is_ok(), "another key is not slowed");
        l.succeeded("li");
        assert!(l.check("li", t).is_ok());
        for _ in 0..5 {
            l.failed("zhao", 0);
        }
        assert_eq!(l.check("zhao", 0), Err(MAX_LOCK_MS.min(4000)));
        l.failed("zhao", FORGET_MS + 10_000);
        assert!(l.check("zhao", FORGET_MS + 10_000).is_ok(), "old failures are forgotten");
    }

    #[test]
    fn cookies_and_tokens() {
        assert_eq!(cookie("a=1; kefu_session=xyz; b=2", SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie("kefu_sessionx=1", SESSION_COOKIE), None);
        let c = set_cookie(SESSION_COOKIE, "v", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("; Secure"));
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same_token(&a, &a.clone()) && !same_token(&a, &b) && !same_token(&a, "x"));
    }
}
