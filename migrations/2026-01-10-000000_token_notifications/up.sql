-- Invalidation of the instances' token caches (decision 88). Every change to what a bearer token
-- grants or what `GET /api/auth/me` shows notifies channel `aegis_tokens`, from the transaction
-- that makes it, whoever makes it (the service, the CLI, an operator's SQL). PostgreSQL delivers a
-- notification at commit, never for a rolled-back change, and sends identical payloads of one
-- transaction once. Payloads: `u:<user uuid>`, `s:<site uuid>`, `t:<token digest>`.
-- Written to be re-run safely on a database adopted from the original service.

CREATE OR REPLACE FUNCTION aegis_notify_user_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aegis_tokens', 'u:' || OLD.uuid::text);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION aegis_notify_site_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aegis_tokens', 's:' || OLD.uuid::text);
    RETURN NULL;
END;
$$;

-- The periodic cleanup deletes only expired tokens, which no cache answers for (a cached entry is
-- checked against its expiry on every hit); it marks its transaction with `aegis.token_cleanup`
-- so its deletions cost no notification.
CREATE OR REPLACE FUNCTION aegis_notify_auth_token_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('aegis.token_cleanup', true), '') <> 'on' THEN
        PERFORM pg_notify('aegis_tokens', 't:' || OLD.token);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS aegis_users_notify_tokens ON users;
CREATE TRIGGER aegis_users_notify_tokens
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION aegis_notify_user_change();

DROP TRIGGER IF EXISTS aegis_sites_notify_tokens ON sites;
CREATE TRIGGER aegis_sites_notify_tokens
    AFTER UPDATE OR DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION aegis_notify_site_change();

-- An update of a token row (none of Aegis's statements does one) could move it to another user.
DROP TRIGGER IF EXISTS aegis_auth_tokens_notify_tokens ON auth_tokens;
CREATE TRIGGER aegis_auth_tokens_notify_tokens
    AFTER UPDATE OR DELETE ON auth_tokens
    FOR EACH ROW EXECUTE FUNCTION aegis_notify_auth_token_change();
