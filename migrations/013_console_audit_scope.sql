-- Console (issue 14): what each audit line is about, so a supervisor limited to some
-- shops sees only the lines about their shops' findings and their agents' score inputs.
-- Lines written before this migration have neither and are shown to unlimited staff only.
ALTER TABLE console_audit ADD COLUMN shop TEXT;
CREATE TABLE console_audit_agents (
    audit INTEGER NOT NULL REFERENCES console_audit (id),
    agent TEXT NOT NULL
);
CREATE INDEX console_audit_agents_audit ON console_audit_agents (audit);
