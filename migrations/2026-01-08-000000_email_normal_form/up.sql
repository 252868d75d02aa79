-- Decision 30: stored email addresses are brought to Aegis's normal form (NFC, lowercase, the
-- domain in IDNA ASCII). That needs Unicode and IDNA tables PostgreSQL does not have, so Aegis does
-- it itself, in a data step that runs right after the SQL migrations, under the same advisory lock.
-- This table records the data steps that have run, so that each runs once per database.
CREATE TABLE IF NOT EXISTS aegis_data_steps (
    name TEXT PRIMARY KEY,
    done_at BIGINT NOT NULL
);
