DROP TABLE IF EXISTS email_outbox;
