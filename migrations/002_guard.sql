-- Phrase-guard findings, one per message, category and start character.
-- matched is the raw matched text: the database is the only place it is kept unmasked.
-- shown is the same text with personal data masked: what every report and listing reads.
-- pii names the personal-data kind when the whole match is personal data.
CREATE TABLE flags (
    message_id   TEXT NOT NULL,
    ts           INTEGER NOT NULL,
    shop         TEXT NOT NULL,
    agent        TEXT NOT NULL,
    conversation TEXT NOT NULL,
    category     TEXT NOT NULL,
    severity     TEXT NOT NULL,
    points       INTEGER NOT NULL,
    matched      TEXT NOT NULL,
    shown        TEXT NOT NULL,
    pii          TEXT,
    start        INTEGER NOT NULL,
    end          INTEGER NOT NULL,
    PRIMARY KEY (message_id, category, start)
);
CREATE INDEX flags_ts ON flags (ts);
CREATE INDEX flags_agent_ts ON flags (agent, ts);
