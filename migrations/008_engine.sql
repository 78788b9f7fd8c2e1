-- The engine says whether the robot wrote while the buyer waited (before any agent), so
-- the daily metrics read it from the wait instead of re-deriving waits from messages.
ALTER TABLE waits ADD COLUMN robot INTEGER NOT NULL DEFAULT 0;
