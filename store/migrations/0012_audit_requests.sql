-- 0012: one audit row may stand for several requests. Requests refused for
-- a missing or unknown credential are counted per source and minute by the
-- API (api/badcreds.go) and stored as one row with their number, so that a
-- flood of bad requests costs neither one fsync nor one row each. Every
-- other row stands for one request: the default.

ALTER TABLE ${ops}.audit ADD COLUMN IF NOT EXISTS requests UInt64 DEFAULT 1 COMMENT 'requests this row stands for: more than 1 only for aggregated refusals of bad or missing credentials';
