-- Outgoing email, written in the same transaction as the change that causes it (decision 18) and
-- delivered by the service's delivery worker. Bodies carry live tokens: the worker clears them once
-- a message is delivered.
CREATE TABLE IF NOT EXISTS email_outbox (
    id UUID PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    -- What the message is (verification, sign_in_attempt, password_reset, email_change).
    kind VARCHAR(32) NOT NULL,
    recipient VARCHAR(255) NOT NULL,
    from_name VARCHAR(255) NOT NULL,
    from_address VARCHAR(255) NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_email_outbox_due ON email_outbox(next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_email_outbox_site_uuid ON email_outbox(site_uuid);
