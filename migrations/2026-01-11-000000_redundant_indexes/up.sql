-- The reference schema indexes every token column twice: its UNIQUE constraint makes one index and
-- an explicit `idx_<table>_token` makes an identical second; `sites.domain` likewise, and
-- `idx_users_site_uuid` repeats the first column of the unique (site_uuid, email) index. Queries
-- read one of each pair, while every insert writes both (two extra index entries per login, about
-- 120 MB per million tokens). Drops each such index only where a valid unique index on the same
-- table leads with the same column (same operator class and collation), so a database adopted from
-- the original service whose constraints differ keeps its indexes. Re-runnable.
DO $$
DECLARE
    redundant record;
BEGIN
    FOR redundant IN
        SELECT dup.indexrelid::regclass AS name
        FROM pg_index dup
        JOIN pg_class idx ON idx.oid = dup.indexrelid
        WHERE idx.relname IN (
                'idx_auth_tokens_token', 'idx_refresh_tokens_token',
                'idx_email_verification_tokens_token', 'idx_password_reset_tokens_token',
                'idx_email_change_requests_token', 'idx_sites_domain', 'idx_users_site_uuid')
          AND idx.relnamespace = current_schema()::regnamespace
          AND NOT dup.indisunique
          AND dup.indnatts = 1
          AND dup.indexprs IS NULL
          AND dup.indpred IS NULL
          AND EXISTS (
              SELECT 1 FROM pg_index keep
              WHERE keep.indrelid = dup.indrelid
                AND keep.indexrelid <> dup.indexrelid
                AND keep.indisunique
                AND keep.indisvalid
                AND keep.indexprs IS NULL
                AND keep.indpred IS NULL
                AND keep.indkey[0] = dup.indkey[0]
                AND keep.indclass[0] = dup.indclass[0]
                AND keep.indcollation[0] = dup.indcollation[0])
    LOOP
        EXECUTE format('DROP INDEX %s', redundant.name);
    END LOOP;
END;
$$;
