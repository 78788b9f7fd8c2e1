-- The engine's (and the robot's) state as of an event: a restart loads the latest and
-- processes only the events after `position` (events.seq). Written in the transaction of
-- the batch whose last event it covers; `bytes` start with a format version
-- (engine::snapshot), an unreadable one is ignored and the state rebuilt from the events.
CREATE TABLE snapshots (
    position   INTEGER PRIMARY KEY,
    version    INTEGER NOT NULL,
    taken_at   INTEGER NOT NULL,
    watermark  INTEGER NOT NULL,
    bytes      BLOB NOT NULL
);
