-- Console (issue 14): the audit trail of what people change through the console.
-- One row per change: who (login name), when, what (points.add, points.appeal,
-- points.accept, points.reject), which ledger entry, and the details in words.
CREATE TABLE console_audit (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    user   TEXT NOT NULL,
    action TEXT NOT NULL,
    entry  INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX console_audit_entry ON console_audit (entry);
