-- Sealed bodies cannot be turned back into plaintext here (the key is not in the database): rows
-- still waiting lose their body and are marked expired.
UPDATE email_outbox
SET status = 'expired', last_error = 'link expired before delivery'
WHERE status IN ('pending', 'queued') AND sealed_body IS NOT NULL;
DROP INDEX IF EXISTS idx_email_outbox_finished_updated_at;
CREATE INDEX IF NOT EXISTS idx_email_outbox_delivered_updated_at
    ON email_outbox(updated_at) WHERE status = 'delivered';
DROP INDEX IF EXISTS idx_email_outbox_link_expires_at;
DROP INDEX IF EXISTS idx_email_outbox_waiting;
ALTER TABLE email_outbox DROP COLUMN IF EXISTS link_expires_at;
ALTER TABLE email_outbox DROP COLUMN IF EXISTS sealed_with;
ALTER TABLE email_outbox DROP COLUMN IF EXISTS sealed_body;
