-- Fixed-window rate-limit counters shared by every instance (decision 23). One row per bucket;
-- a hit in a new window restarts the count. Rows of finished windows are deleted by the service.
CREATE TABLE IF NOT EXISTS rate_limit_counters (
    bucket TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_seconds INT NOT NULL,
    hits INT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_rate_limit_counters_window_end
    ON rate_limit_counters ((window_start + window_seconds));
