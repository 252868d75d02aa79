-- Aegis's first changes on top of the reference schema. Safe on a fresh database and on one adopted
-- from the reference service.

-- Some reference installs ran with users.password_hash NOT NULL; invited and admin-created users have
-- no password yet, so the column must be nullable (a no-op where it already is).
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- Decision 17: domains are lowercase on write and on lookup. Lowercase existing domains, except where
-- that would collide with another site's domain; such sites keep their stored domain (an operator can
-- rename one of them) and are reported by the notice below.
UPDATE sites s
SET domain = lower(s.domain)
WHERE s.domain <> lower(s.domain)
  AND NOT EXISTS (SELECT 1 FROM sites o WHERE o.uuid <> s.uuid AND lower(o.domain) = lower(s.domain));

DO $$
DECLARE
    n INTEGER;
BEGIN
    SELECT count(*) INTO n FROM sites WHERE domain <> lower(domain);
    IF n > 0 THEN
        RAISE NOTICE 'aegis: % site domain(s) differ from another only by case and were left as stored', n;
    END IF;
END
$$;
