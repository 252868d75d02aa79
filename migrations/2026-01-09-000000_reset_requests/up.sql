-- Password-reset requests, recorded as they arrive and turned into links by a worker, so that a
-- request for an address with an account and one for an address without take the same time.
-- A row lives until the worker handles it (normally well under a second). A worker claims a row
-- for a while (`claimed_until`) before handling it, so an instance that stops mid-way leaves it to
-- the next once the claim has run out.
CREATE TABLE IF NOT EXISTS password_reset_requests (
    id UUID PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    claimed_until BIGINT
);
CREATE INDEX IF NOT EXISTS idx_password_reset_requests_created_at
    ON password_reset_requests (created_at);
