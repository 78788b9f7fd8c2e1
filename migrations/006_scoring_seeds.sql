-- Scoring (issue 12): assisted buyers out of 咨询人数, buyers' ratings, incomplete scores,
-- the seeds' pay parts (ledger money and levels, grade and ranked bonuses), and the
-- minutes of a lateness entry (迟到 30 分钟以上按旷工计算).

-- Buyers the agent only assisted (协助下单) or followed up (协助跟进) that day: left out of
-- consulted / replied / received / unreplied (seed 000: 不影响他们的转化率统计).
ALTER TABLE daily_metrics ADD COLUMN assisted INTEGER NOT NULL DEFAULT 0;
-- Buyers' ratings of the agent (evaluation events) and how many were 满意 or 非常满意.
ALTER TABLE daily_metrics ADD COLUMN ratings INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily_metrics ADD COLUMN satisfied INTEGER NOT NULL DEFAULT 0;

-- Money from the ledger score (seed 003: 每扣 1 分 10 元, +5 分一级), the levels gained,
-- the bonus of the grade reached (seed 002) and the ranked bonus (seed 002 排序工资法).
ALTER TABLE scores ADD COLUMN ledger_pay TEXT NOT NULL DEFAULT '0.00';
ALTER TABLE scores ADD COLUMN pay_levels INTEGER NOT NULL DEFAULT 0;
ALTER TABLE scores ADD COLUMN grade_bonus TEXT NOT NULL DEFAULT '0.00';
ALTER TABLE scores ADD COLUMN ranked_bonus TEXT NOT NULL DEFAULT '0.00';
-- Input indicators never entered for the agent, comma-separated keys; non-empty = the
-- score is incomplete and is not a basis for pay until they are entered.
ALTER TABLE scores ADD COLUMN missing TEXT NOT NULL DEFAULT '';
ALTER TABLE score_lines ADD COLUMN missing INTEGER NOT NULL DEFAULT 0;

-- How late (minutes) a lateness entry was, when the supervisor gave it.
ALTER TABLE ledger ADD COLUMN minutes INTEGER;
