DROP TRIGGER IF EXISTS aegis_auth_tokens_notify_tokens ON auth_tokens;
DROP TRIGGER IF EXISTS aegis_sites_notify_tokens ON sites;
DROP TRIGGER IF EXISTS aegis_users_notify_tokens ON users;
DROP FUNCTION IF EXISTS aegis_notify_auth_token_change();
DROP FUNCTION IF EXISTS aegis_notify_site_change();
DROP FUNCTION IF EXISTS aegis_notify_user_change();
