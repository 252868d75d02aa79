-- The delivery workers prune delivered rows by age on every pass; these partial indexes keep that an
-- index range scan however many delivered rows accumulate.
CREATE INDEX IF NOT EXISTS idx_email_outbox_delivered_updated_at
    ON email_outbox(updated_at) WHERE status = 'delivered';
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_delivered_updated_at
    ON webhook_deliveries(updated_at) WHERE status = 'delivered';
