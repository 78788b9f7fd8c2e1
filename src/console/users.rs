//! Console users (table `console_users`, migration 007): roles, argon2 password hashes,
//! and `kefu users add|list|passwd|remove`.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use super::board::Scope;
use crate::time::Millis;

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// What a user may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// 店长: everything, pay included.
    Owner,
    /// 客服主管: the board, conversations and findings of their shops (all when none are listed); no pay.
    Supervisor,
    /// 客服: only their own waits, conversations, findings and figures.
    Agent,
}

impl Role {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Supervisor => "supervisor",
            Self::Agent => "agent",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "supervisor" => Some(Self::Supervisor),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

/// A console user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// For an agent: the platform's agent id whose work they see.
    pub agent: Option<String>,
    /// For a supervisor: the shops they see (empty = every shop).
    pub shops: Vec<String>,
}

impl User {
    /// What this user sees of the board.
    pub fn scope(&self) -> Scope {
        match (self.role, &self.agent) {
            (Role::Owner, _) => Scope::All,
            (Role::Supervisor, _) if self.shops.is_empty() => Scope::All,
            (Role::Supervisor, _) => Scope::Shops(self.shops.clone()),
            (Role::Agent, Some(a)) => Scope::Agent(a.clone()),
            // An agent user without an agent id sees nothing of anyone.
            (Role::Agent, None) => Scope::Agent(String::new()),
        }
    }

    /// Pay (salary, bonus, commission) is for the owner only.
    pub fn sees_pay(&self) -> bool {
        self.role == Role::Owner
    }

    /// Whether a conversation of `shop` served by `agents` is this user's to read.
    pub fn may_read(&self, shop: &str, agents: &[String]) -> bool {
        match self.scope() {
            Scope::All => true,
            Scope::Shops(s) => s.iter().any(|x| x == shop),
            Scope::Agent(a) => !a.is_empty() && agents.contains(&a),
        }
    }
}

/// User management failures.
#[derive(Debug, Error)]
pub enum UserError {
    /// The name is empty, too long or has spaces or control characters.
    #[error("user name `{0}`: expected 1 to 64 characters, no spaces")]
    BadName(String),
    /// The password is too short.
    #[error("the password must have at least {MIN_PASSWORD} characters")]
    ShortPassword,
    /// An agent login needs the agent id it stands for.
    #[error("role agent needs --agent (the platform's agent id)")]
    NoAgent,
    /// The name is taken.
    #[error("user `{0}` already exists")]
    Exists(String),
    /// No such user.
    #[error("no user `{0}`")]
    Missing(String),
    /// Hashing failed (the OS random source).
    #[error("hashing the password: {0}")]
    Hash(String),
    /// The database failed.
    #[error("console users table")]
    Sql(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for UserError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

fn check_name(name: &str) -> Result<(), UserError> {
    let ok = (1..=64).contains(&name.chars().count())
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok { Ok(()) } else { Err(UserError::BadName(name.chars().take(64).collect())) }
}

/// Hashes a password with Argon2id (the crate's defaults: 19 MiB, 2 passes) and a fresh salt,
/// as a PHC string.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(UserError::ShortPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Adds a user.
pub fn add(conn: &Connection, user: &User, password: &str, now: Millis) -> Result<(), UserError> {
    check_name(&user.name)?;
    if user.role == Role::Agent && user.agent.as_deref().is_none_or(str::is_empty) {
        return Err(UserError::NoAgent);
    }
    let hash = hash_password(password)?;
    let n = conn.execute(
        "INSERT OR IGNORE INTO console_users (name, role, agent, shops, hash, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![user.name, user.role.as_str(), user.agent, user.shops.join(","), hash, now],
    )?;
    if n == 0 {
        return Err(UserError::Exists(user.name.clone()));
    }
    Ok(())
}

/// Sets a new password; the user's sessions end.
pub fn set_password(conn: &Connection, name: &str, password: &str, now: Millis) -> Result<(), UserError> {
    let hash = hash_password(password)?;
    let n = conn.execute(
        "UPDATE console_users SET hash = ?2, updated_at = ?3 WHERE name = ?1",
        params![name, hash, now],
    )?;
    if n == 0 {
        return Err(UserError::Missing(name.into()));
    }
    conn.execute("DELETE FROM console_sessions WHERE user = ?1", [name])?;
    Ok(())
}

/// Removes a user and their sessions.
pub fn remove(conn: &Connection, name: &str) -> Result<(), UserError> {
    conn.execute("DELETE FROM console_sessions WHERE user = ?1", [name])?;
    if conn.execute("DELETE FROM console_users WHERE name = ?1", [name])? == 0 {
        return Err(UserError::Missing(name.into()));
    }
    Ok(())
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<User>> {
    let role: String = r.get(1)?;
    let shops: String = r.get(3)?;
    Ok(Role::parse(&role).map(|role| User {
        name: r.get(0).unwrap_or_default(),
        role,
        agent: r.get(2).unwrap_or_default(),
        shops: shops.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
    }))
}

/// Every user, by name (a row with an unknown role is skipped).
pub fn list(conn: &Connection) -> Result<Vec<User>, UserError> {
    let mut stmt = conn.prepare("SELECT name, role, agent, shops FROM console_users ORDER BY name")?;
    let rows = stmt.query_map([], from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.extend(r?);
    }
    Ok(out)
}

/// One user by name.
pub fn get(conn: &Connection, name: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .query_row("SELECT name, role, agent, shops FROM console_users WHERE name = ?1", [name], from_row)
        .optional()?
        .flatten())
}

/// Checks a login. A missing user costs the same hash as a wrong password, so the answer's
/// time does not tell which names exist.
pub fn verify(conn: &Connection, name: &str, password: &str) -> Result<Option<User>, UserError> {
    let stored: Option<String> =
        conn.query_row("SELECT hash FROM console_users WHERE name = ?1", [name], |r| r.get(0)).optional()?;
    // A hash of a random password nobody has, made once, for the timing of unknown names.
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash_password(&super::auth::random_token()).unwrap_or_default());
    let hash = stored.as_deref().unwrap_or(decoy);
    let ok = PasswordHash::new(hash)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
    if !ok || stored.is_none() {
        return Ok(None);
    }
    get(conn, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn user(name: &str, role: Role, agent: Option<&str>) -> User {
        User { name: name.into(), role, agent: agent.map(Into::into), shops: vec![] }
    }

    #[test]
    fn add_verify_passwd_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.db")).unwrap();
        let c = store.conn();
        add(c, &user("li", Role::Agent, Some("agent01")), "correct horse", 1).unwrap();
        assert!(matches!(
            add(c, &user("li", Role::Owner, None), "another one", 1),
            Err(UserError::Exists(_))
        ));
        assert!(matches!(add(c, &user("x", Role::Agent, None), "long enough", 1), Err(UserError::NoAgent)));
        assert!(matches!(add(c, &user("y", Role::Owner, None), "short", 1), Err(UserError::ShortPassword)));
        assert!(matches!(
            add(c, &user("a b", Role::Owner, None), "long enough", 1),
            Err(UserError::BadName(_))
        ));
        assert_eq!(verify(c, "li", "correct horse").unwrap().map(|u| u.agent), Some(Some("agent01".into())));
        assert_eq!(verify(c, "li", "wrong horse").unwrap(), None);
        assert_eq!(verify(c, "nobody", "correct horse").unwrap(), None);
        set_password(c, "li", "battery staple", 2).unwrap();
        assert_eq!(verify(c, "li", "correct horse").unwrap(), None);
        assert!(verify(c, "li", "battery staple").unwrap().is_some());
        let stored: String = c.query_row("SELECT hash FROM console_users", [], |r| r.get(0)).unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains("battery"));
        remove(c, "li").unwrap();
        assert!(list(c).unwrap().is_empty());
        assert!(matches!(remove(c, "li"), Err(UserError::Missing(_))));
    }

    #[test]
    fn who_reads_which_conversation() {
        let agent = user("li", Role::Agent, Some("a1"));
        let sup = User { shops: vec!["s1".into()], ..user("wang", Role::Supervisor, None) };
        let owner = user("boss", Role::Owner, None);
        let cases = [
            (&agent, "s1", vec!["a1".to_string()], true),
            (&agent, "s1", vec!["a2".to_string()], false),
            (&sup, "s1", vec!["a2".to_string()], true),
            (&sup, "s2", vec!["a2".to_string()], false),
            (&owner, "s2", vec![], true),
        ];
        for (u, shop, agents, want) in cases {
            assert_eq!(u.may_read(shop, &agents), want, "{} {shop} {agents:?}", u.name);
        }
        assert!(owner.sees_pay() && !sup.sees_pay() && !agent.sees_pay());
    }
}
