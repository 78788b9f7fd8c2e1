-- Alert deliveries: one row per alert (conversation, wait_start, kind) and sink.
-- The unique key is what keeps an alert from being queued twice after a reconnect or restart;
-- pending rows survive a restart and are delivered by the next run.
CREATE TABLE alert_outbox (
    id              INTEGER PRIMARY KEY,
    conversation    TEXT NOT NULL,
    wait_start      INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    sink            TEXT NOT NULL,
    -- The notice as JSON, raw ids included (masked when rendered, like everything in this file).
    notice          TEXT NOT NULL,
    -- pending | sent | failed | stale | digested (delivered inside a digest message)
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    UNIQUE (conversation, wait_start, kind, sink)
);
CREATE INDEX alert_outbox_pending ON alert_outbox (sink, status, next_attempt_at);
