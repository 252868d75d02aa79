-- Sealed bodies cannot be turned back into plaintext here (the key is not in the database): rows
-- still waiting lose their body and are marked expired.
UPDATE email_outbox
SET status = 'expired', last_error = 'link expired before delivery'
WHERE status = 'pending' AND sealed_body IS NOT NULL;
DROP INDEX IF EXISTS idx_email_outbox_link_expires_at;
ALTER TABLE email_outbox DROP COLUMN IF EXISTS link_expires_at;
ALTER TABLE email_outbox DROP COLUMN IF EXISTS sealed_with;
ALTER TABLE email_outbox DROP COLUMN IF EXISTS sealed_body;
