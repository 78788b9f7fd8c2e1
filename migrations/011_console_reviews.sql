-- Console (issue 14): supervisors' reviews of phrase-guard findings, and what
-- `ledger.voided` holds now that the console edits the ledger:
--   0 the entry counts; 1 overturned on appeal (复核); 2 removed by a supervisor;
--   3 its phrase-guard finding was dismissed.
-- A dismissed finding is also a candidate exception for rules/guard.toml (the console lists them).
CREATE TABLE finding_reviews (
    message_id TEXT NOT NULL,
    category   TEXT NOT NULL,
    start      INTEGER NOT NULL,
    status     TEXT NOT NULL,              -- 'confirmed' | 'dismissed'
    at         INTEGER NOT NULL,
    user       TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, category, start)
);
