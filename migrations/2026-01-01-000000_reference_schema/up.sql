-- The schema of ByteForge Aegis (the reference service, database/schema.sql at 0c3f4b1), reproduced so
-- that a database created by the reference is adopted in place: every statement is a no-op where the
-- object already exists, and no statement touches rows.

DO $$
BEGIN
    CREATE TYPE user_role AS ENUM ('user', 'admin');
EXCEPTION
    WHEN duplicate_object THEN NULL;
END
$$;

CREATE TABLE IF NOT EXISTS sites (
    uuid UUID PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    domain VARCHAR(255) UNIQUE NOT NULL,
    frontend_url VARCHAR(255) NOT NULL,
    verification_redirect_url VARCHAR(255),
    email_from VARCHAR(255) NOT NULL,
    email_from_name VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    allow_self_registration BOOLEAN NOT NULL DEFAULT TRUE,
    webhook_url VARCHAR(512),
    webhook_secret VARCHAR(255),
    tenant_api_key VARCHAR(64) NOT NULL,
    mailgun_domain VARCHAR(255),
    mailgun_api_key VARCHAR(255),
    deletion_protected BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS idx_sites_domain ON sites(domain);

CREATE TABLE IF NOT EXISTS users (
    uuid UUID PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    email VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255),
    is_verified BOOLEAN DEFAULT FALSE,
    role user_role DEFAULT 'user',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deletion_protected BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (site_uuid, email)
);
CREATE INDEX IF NOT EXISTS idx_users_site_uuid ON users(site_uuid);
CREATE INDEX IF NOT EXISTS idx_users_email ON users(email);

CREATE TABLE IF NOT EXISTS auth_tokens (
    id SERIAL PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    user_uuid UUID NOT NULL REFERENCES users(uuid) ON DELETE CASCADE,
    token VARCHAR(255) UNIQUE NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_auth_tokens_token ON auth_tokens(token);
CREATE INDEX IF NOT EXISTS idx_auth_tokens_user_uuid ON auth_tokens(user_uuid);
CREATE INDEX IF NOT EXISTS idx_auth_tokens_site_uuid ON auth_tokens(site_uuid);
CREATE INDEX IF NOT EXISTS idx_auth_tokens_expires_at ON auth_tokens(expires_at);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    id SERIAL PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    user_uuid UUID NOT NULL REFERENCES users(uuid) ON DELETE CASCADE,
    token VARCHAR(255) UNIQUE NOT NULL,
    family_id VARCHAR(255) NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT NULL,
    revoked BOOLEAN DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_token ON refresh_tokens(token);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_user_uuid ON refresh_tokens(user_uuid);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_site_uuid ON refresh_tokens(site_uuid);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_family_id ON refresh_tokens(family_id);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_expires_at ON refresh_tokens(expires_at);

CREATE TABLE IF NOT EXISTS email_verification_tokens (
    id SERIAL PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    user_uuid UUID NOT NULL REFERENCES users(uuid) ON DELETE CASCADE,
    token VARCHAR(255) UNIQUE NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_email_verification_tokens_token ON email_verification_tokens(token);
CREATE INDEX IF NOT EXISTS idx_email_verification_tokens_user_uuid ON email_verification_tokens(user_uuid);
CREATE INDEX IF NOT EXISTS idx_email_verification_tokens_site_uuid ON email_verification_tokens(site_uuid);

CREATE TABLE IF NOT EXISTS password_reset_tokens (
    id SERIAL PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    user_uuid UUID NOT NULL REFERENCES users(uuid) ON DELETE CASCADE,
    token VARCHAR(255) UNIQUE NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used BOOLEAN DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS idx_password_reset_tokens_token ON password_reset_tokens(token);
CREATE INDEX IF NOT EXISTS idx_password_reset_tokens_user_uuid ON password_reset_tokens(user_uuid);
CREATE INDEX IF NOT EXISTS idx_password_reset_tokens_site_uuid ON password_reset_tokens(site_uuid);

CREATE TABLE IF NOT EXISTS email_change_requests (
    id SERIAL PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    user_uuid UUID NOT NULL REFERENCES users(uuid) ON DELETE CASCADE,
    new_email VARCHAR(255) NOT NULL,
    token VARCHAR(255) UNIQUE NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_email_change_requests_token ON email_change_requests(token);
CREATE INDEX IF NOT EXISTS idx_email_change_requests_user_uuid ON email_change_requests(user_uuid);
CREATE INDEX IF NOT EXISTS idx_email_change_requests_site_uuid ON email_change_requests(site_uuid);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    event_id UUID PRIMARY KEY,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    event_type VARCHAR(50) NOT NULL,
    payload TEXT NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status INT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_site_uuid ON webhook_deliveries(site_uuid);
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_status ON webhook_deliveries(status);

CREATE TABLE IF NOT EXISTS webhook_events (
    uuid UUID PRIMARY KEY,
    event_id UUID NULL,
    site_uuid UUID NOT NULL REFERENCES sites(uuid) ON DELETE CASCADE,
    event_type VARCHAR(50) NOT NULL,
    payload TEXT NOT NULL,
    response_status INT,
    response_body TEXT,
    success BOOLEAN NOT NULL DEFAULT FALSE,
    attempt INT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_webhook_events_site_uuid ON webhook_events(site_uuid);
CREATE INDEX IF NOT EXISTS idx_webhook_events_event_type ON webhook_events(event_type);
CREATE INDEX IF NOT EXISTS idx_webhook_events_created_at ON webhook_events(created_at);
CREATE INDEX IF NOT EXISTS idx_webhook_events_event_id ON webhook_events(event_id);
