-- Replies (issue 5): what the robot and the quick-reply book are used for, so the shop
-- can see which answers work and which questions still need one.

-- Hits per day: kind 'rule' (an auto-answer sent or suggested) or 'phrase' (a quick phrase
-- used by an agent), key = rule id or `agent/code` (agent empty for the team set).
CREATE TABLE reply_hits (
    day   TEXT NOT NULL,          -- Asia/Shanghai YYYY-MM-DD
    shop  TEXT NOT NULL,
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    hits  INTEGER NOT NULL,
    PRIMARY KEY (day, shop, kind, key)
);

-- Buyer questions the robot had to answer (away or rescue) that matched no rule.
CREATE TABLE reply_misses (
    rowid        INTEGER PRIMARY KEY,
    ts           INTEGER NOT NULL,  -- UTC ms of the buyer's message
    day          TEXT NOT NULL,     -- Asia/Shanghai YYYY-MM-DD
    shop         TEXT NOT NULL,
    conversation TEXT NOT NULL,
    text         TEXT NOT NULL
);
CREATE INDEX reply_misses_day ON reply_misses (day);
