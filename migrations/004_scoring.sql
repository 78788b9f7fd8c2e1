-- Scoring (issue 6): daily metrics, monthly scores, the 日常考核 ledger, disputes, job runs.
-- Money and points are Decimal TEXT; days are Asia/Shanghai 'YYYY-MM-DD', months 'YYYY-MM'.

-- One row per agent per Shanghai day; a rerun of the day replaces its rows.
CREATE TABLE daily_metrics (
    day                  TEXT NOT NULL,
    agent                TEXT NOT NULL,
    received             INTEGER NOT NULL,  -- 接待人数: buyers where both sides wrote
    consulted            INTEGER NOT NULL,  -- 咨询人数: buyers who wrote to the agent
    replied              INTEGER NOT NULL,  -- 回复过的客户数
    unreplied            INTEGER NOT NULL,  -- 未回复人数
    ordered              INTEGER NOT NULL,  -- 下单人数 (credited)
    paid                 INTEGER NOT NULL,  -- 付款人数 (credited)
    sales                TEXT NOT NULL,     -- 销售额: paid − shipping − refunds
    assist_orders        INTEGER NOT NULL,  -- 协助下单
    assist_follow        INTEGER NOT NULL,  -- 协助跟进 (orders)
    assist_follow_amount TEXT NOT NULL,     -- 协助跟进 (元)
    agent_msgs           INTEGER NOT NULL,
    buyer_msgs           INTEGER NOT NULL,
    waits                INTEGER NOT NULL,
    answered             INTEGER NOT NULL,
    unanswered           INTEGER NOT NULL,
    transferred          INTEGER NOT NULL,
    response_ms          INTEGER NOT NULL,  -- summed over answered waits
    breaches             INTEGER NOT NULL,  -- 慢响应: waits past their deadline
    robot_answered       INTEGER NOT NULL,  -- waits in which a bot replied before the agent
    platform_waits       INTEGER NOT NULL,  -- waits starting 08:00–23:00
    platform_ms          INTEGER NOT NULL,  -- each capped at 600 s, unanswered = 600 s
    platform_within_3min INTEGER NOT NULL,
    findings             TEXT NOT NULL,     -- JSON {category: count} from the phrase guard
    PRIMARY KEY (day, agent)
);

-- Breaches per agent, day and Shanghai hour (for the "breaches by hour" chart).
CREATE TABLE daily_breaches (
    day    TEXT NOT NULL,
    agent  TEXT NOT NULL,
    hour   INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (day, agent, hour)
);

-- Response-time histogram per agent and day: bucket = upper bound in seconds (0 = unanswered).
CREATE TABLE daily_response_hist (
    day    TEXT NOT NULL,
    agent  TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (day, agent, bucket)
);

-- The shop's side of a day: 静默下单 and 无人接待销售额.
CREATE TABLE daily_shop (
    day               TEXT PRIMARY KEY,
    silent_orders     INTEGER NOT NULL,
    unattended_sales  TEXT NOT NULL
);

-- Supervisor-entered indicator values (metric "input" in the sheet).
CREATE TABLE score_inputs (
    month     TEXT NOT NULL,
    agent     TEXT NOT NULL,
    indicator TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (month, agent, indicator)
);

-- Monthly (month-to-date) results; a rerun replaces the month's rows.
CREATE TABLE scores (
    month               TEXT NOT NULL,
    agent               TEXT NOT NULL,
    through             TEXT NOT NULL,   -- last day included
    total               TEXT NOT NULL,
    grade               TEXT,
    rank                INTEGER NOT NULL,
    ledger_points       TEXT NOT NULL,
    base_salary         TEXT NOT NULL,
    seniority           TEXT NOT NULL,
    bonus               TEXT NOT NULL,
    commission_rate     TEXT NOT NULL,
    personal_commission TEXT NOT NULL,
    public_commission   TEXT NOT NULL,
    commission_paid     TEXT NOT NULL,
    salary              TEXT NOT NULL,
    below_streak        INTEGER NOT NULL,
    review              INTEGER NOT NULL,
    PRIMARY KEY (month, agent)
);

CREATE TABLE score_lines (
    month     TEXT NOT NULL,
    agent     TEXT NOT NULL,
    indicator TEXT NOT NULL,
    position  INTEGER NOT NULL,
    value     TEXT,
    tier      INTEGER,
    points    TEXT NOT NULL,
    weighted  TEXT NOT NULL,
    PRIMARY KEY (month, agent, indicator)
);

-- 日常考核 entries. `ref` makes an entry from a finding idempotent (one entry per finding).
CREATE TABLE ledger (
    id           INTEGER PRIMARY KEY,
    agent        TEXT NOT NULL,
    day          TEXT NOT NULL,
    points       TEXT NOT NULL,
    source       TEXT NOT NULL,          -- 'guard' | 'supervisor' | 'import'
    category     TEXT,
    reason       TEXT NOT NULL,
    ref          TEXT,
    published_at INTEGER NOT NULL,
    voided       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, ref)
);
CREATE INDEX ledger_day ON ledger (day);

-- 复核 (appeals) of ledger entries.
CREATE TABLE disputes (
    id          INTEGER PRIMARY KEY,
    entry       INTEGER NOT NULL REFERENCES ledger (id),
    opened_at   INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open',   -- 'open' | 'upheld' | 'overturned'
    resolved_at INTEGER,
    resolved_by TEXT,
    note        TEXT
);

-- Days the nightly job has scored (catch-up starts after the latest).
CREATE TABLE job_runs (
    day     TEXT PRIMARY KEY,
    ran_at  INTEGER NOT NULL,
    events  INTEGER NOT NULL
);

-- Attribution looks back over a buyer's messages; late payments and refunds find their order.
CREATE INDEX events_customer ON events (customer, ts);
CREATE INDEX events_order ON events (json_extract(body, '$.order')) WHERE type = 'order';
