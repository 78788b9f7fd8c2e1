-- Events are the source of truth: every report can be recomputed from them.
-- seq keeps input order (the clock processes events in input order); id makes storing idempotent.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    ts           INTEGER NOT NULL,
    shop         TEXT NOT NULL,
    type         TEXT NOT NULL,
    conversation TEXT,
    agent        TEXT,
    customer     TEXT,
    body         TEXT NOT NULL
);
CREATE INDEX events_ts ON events (ts);

-- Each buyer wait as the response clock ended it.
CREATE TABLE waits (
    conversation TEXT NOT NULL,
    start        INTEGER NOT NULL,
    end          INTEGER NOT NULL,
    shop         TEXT NOT NULL,
    customer     TEXT NOT NULL,
    agent        TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    deadline_ms  INTEGER NOT NULL,
    load         INTEGER NOT NULL,
    first        INTEGER NOT NULL,
    PRIMARY KEY (conversation, start)
);
CREATE INDEX waits_start ON waits (start);

-- One row per wait and alert kind: the key is what keeps an alert from being sent twice.
CREATE TABLE alerts (
    conversation TEXT NOT NULL,
    wait_start   INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    agent        TEXT NOT NULL,
    due_at       INTEGER NOT NULL,
    deadline_ms  INTEGER NOT NULL,
    PRIMARY KEY (conversation, wait_start, kind)
);

-- Frames or lines that were not valid events, kept for inspection.
CREATE TABLE rejected (
    rowid       INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    source      TEXT NOT NULL,
    position    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    raw         TEXT NOT NULL
);

-- Small key/value state, e.g. the last websocket seq persisted.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
