-- Robot figures (issue 15): what the robot did, per conversation and event time, so a
-- day's figures per shop — answered by the robot, handed to a human (转人工), resolved
-- (answered, and no request for a human within `resolved_after_min`), 催付 reminders — are
-- computed from the events' own times, like every stored number.
CREATE TABLE robot_figures (
    rowid        INTEGER PRIMARY KEY,
    ts           INTEGER NOT NULL,  -- UTC ms (event time)
    day          TEXT NOT NULL,     -- Asia/Shanghai YYYY-MM-DD
    shop         TEXT NOT NULL,
    conversation TEXT NOT NULL,
    kind         TEXT NOT NULL      -- answered | handoff | reminder
);
CREATE INDEX robot_figures_day ON robot_figures (day, shop);
CREATE INDEX robot_figures_conversation ON robot_figures (conversation, ts);
