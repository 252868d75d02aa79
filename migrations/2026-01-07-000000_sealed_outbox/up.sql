-- Outbox bodies carry live links (verification, password reset, email change), so they are no
-- longer kept in plaintext (decision 33). New rows store the bodies only sealed (AES-256-GCM under a
-- key derived from SECRET_KEY) in `sealed_body`, with `sealed_with` naming the key; the plaintext
-- columns stay empty. They wait with status `queued`, which earlier versions do not claim, so an
-- instance not yet upgraded never sends a sealed (to it, empty) message; `pending` now only marks
-- a plaintext row written by an earlier version, until Aegis seals it at startup. `link_expires_at`
-- is the expiry of the token the message carries: past it, the worker clears the body and marks the
-- row `expired`.
ALTER TABLE email_outbox ADD COLUMN IF NOT EXISTS sealed_body BYTEA;
ALTER TABLE email_outbox ADD COLUMN IF NOT EXISTS sealed_with VARCHAR(16);
ALTER TABLE email_outbox ADD COLUMN IF NOT EXISTS link_expires_at BIGINT;

-- Rows that will never be sent keep no link.
UPDATE email_outbox SET text_body = '', html_body = ''
WHERE status = 'exhausted' AND (text_body <> '' OR html_body <> '');

-- Rows already waiting: find the token each link carries (stored as its SHA-256 digest) and keep
-- its expiry.
WITH carried AS (
    SELECT id, kind,
           encode(sha256(convert_to(substring(text_body FROM 'token=([A-Za-z0-9_-]+)'), 'UTF8')), 'hex')
               AS digest
    FROM email_outbox
    WHERE status = 'pending' AND kind IN ('verification', 'password_reset', 'email_change')
), live AS (
    SELECT c.id, coalesce(v.expires_at, r.expires_at, e.expires_at) AS expires_at
    FROM carried c
    LEFT JOIN email_verification_tokens v ON c.kind = 'verification' AND v.token = c.digest
    LEFT JOIN password_reset_tokens r
        ON c.kind = 'password_reset' AND r.token = c.digest AND r.used IS NOT TRUE
    LEFT JOIN email_change_requests e ON c.kind = 'email_change' AND e.token = c.digest
)
UPDATE email_outbox o SET link_expires_at = live.expires_at
FROM live WHERE o.id = live.id;

-- A waiting link whose token is gone (used, superseded, deleted) or already expired is dead: clear
-- it and say why. The sign-in-attempt message carries no token and waits to be sealed.
UPDATE email_outbox
SET status = 'expired', text_body = '', html_body = '',
    last_error = 'link expired before delivery',
    updated_at = extract(epoch FROM now())::bigint
WHERE status = 'pending' AND kind IN ('verification', 'password_reset', 'email_change')
  AND (link_expires_at IS NULL OR link_expires_at < extract(epoch FROM now())::bigint);

-- The remaining plaintext bodies are sealed by Aegis itself right after migrating (it needs the key).
CREATE INDEX IF NOT EXISTS idx_email_outbox_waiting
    ON email_outbox(next_attempt_at) WHERE status IN ('pending', 'queued');
CREATE INDEX IF NOT EXISTS idx_email_outbox_link_expires_at
    ON email_outbox(link_expires_at)
    WHERE status IN ('pending', 'queued') AND link_expires_at IS NOT NULL;
-- Finished rows (delivered, exhausted, expired) are pruned after 30 days, by age.
DROP INDEX IF EXISTS idx_email_outbox_delivered_updated_at;
CREATE INDEX IF NOT EXISTS idx_email_outbox_finished_updated_at
    ON email_outbox(updated_at) WHERE status IN ('delivered', 'exhausted', 'expired');
