-- Console (issue 13): logins and their sessions.

-- One row per login. hash is an Argon2id PHC string; the password itself is never stored.
CREATE TABLE console_users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,              -- 'owner' | 'supervisor' | 'agent'
    agent      TEXT,                       -- role agent: the platform's agent id
    shops      TEXT NOT NULL DEFAULT '',   -- role supervisor: comma-separated shops, '' = all
    hash       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Signed-in browsers. token_hash is the SHA-256 of the cookie value, so a copy of the
-- database does not hold a usable cookie; csrf is the token every form must carry.
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user);
