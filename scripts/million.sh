#!/usr/bin/env bash
# A million users: does the bearer check or a login slow down as the tables grow? Starts a release
# build of Aegis in local mode on its own data directory (its managed PostgreSQL holds the data),
# then:
#   1. generates 10 sites x 1,000 verified users (10,000), each with an auth token and a refresh
#      token, in SQL (generate_series), and copies that database (pg_dump) to aegis_10k;
#   2. measures with wrk (Debian: apt-get install wrk), on instances of the 10,000-user copy:
#        - GET /api/auth/me, 64 connections, rotating over 50 tokens of random users, on an
#          instance with TOKEN_CACHE_ENABLED=false (every check is a database query) and on one
#          with the token cache on;
#        - POST /api/auth/login, 16 connections, rotating over 50 random users;
#   3. grows the original to 1,000 sites x 1,000 users (1,000,000, each with both tokens) plus
#      100,000 live rate-limit buckets, prints how long that took and the tables' sizes, runs
#      VACUUM ANALYZE, starts two instances on it (and waits out their start-up scan of users),
#      and measures the same, with users picked at random across the whole million;
#   4. measures 10k and 1M once more, in turn (10k, 1M, 10k, 1M in all: a shared machine's speed
#      moves by tens of percent over minutes), and prints the better round of each and the ratios
#      (target: 1M within +-10 % of 10k);
#   5. measures the bearer check's query alone with pgbench on both databases, in turn;
#   6. prints EXPLAIN (ANALYZE, BUFFERS) of the hot queries (bearer check, tenant gate, login
#      lookup, user lock, token inserts, refresh lookup and claim, rate-limit hit) with the
#      statements as the service sends them and real parameters, as generic plans (what a
#      prepared statement settles on); and the one full scan of users Aegis makes (at start).
# The cached /me touches no database once each token has been checked, so its ratio shows how much
# the machine itself moved between the measurements.
# Every generated user has the same Argon2id hash (of "million-password", made by registering one
# user through the API), so any of them can log in. Token plaintexts are derived from the user's
# numbers (million-a-SITE-USER for auth tokens), and stored as their SHA-256 digest as Aegis does.
# Usage: scripts/million.sh [seconds per run] (default 10); about 5 minutes in all at 10 s.
# TOKENS=n rotates over n tokens and n login users instead of 50; ROUNDS=n measures each data set
# n times instead of 2 (about 80 s more per round at 10 s). AEGIS_BIN=path/to/aegis measures another
# build.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
TOKENS=${TOKENS:-50}
ROUNDS=${ROUNDS:-2}
PASSWORD=million-password
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
. scripts/bench-lib.sh
start_aegis 5694 million
# Stops the given instances and waits until they are gone. Polls rather than `wait`s, which
# returns at once in a trap run for Ctrl-C.
stop() {
  local p
  for p in "$@"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
}
# The measured instances (started by serve) stop before the one holding PostgreSQL, and the data
# directory goes once PostgreSQL is down.
SERVED=()
trap 'stop "${SERVED[@]}"; stop $AEGIS
      for _ in $(seq 600); do [ -e "$DATA/postgres/postmaster.pid" ] || break; sleep 0.1; done
      rm -rf "$DATA"' EXIT
curl -sf "$B/api/health" >/dev/null || { echo "aegis did not start:" >&2; cat "$DATA/aegis.log" >&2; exit 1; }

PGBIN=$(pg_config --bindir 2>/dev/null || true)
[ -x "$PGBIN/psql" ] || PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/psql | tail -1)")
PG_PORT=$(grep -o 'managed server on 127.0.0.1:[0-9]*' "$DATA/aegis.log" | head -1 | sed 's/.*://')
export PGPASSWORD
PGPASSWORD=$(cat "$DATA/postgres_password")
q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d aegis "$@"; }
KEY=$(cat "$DATA/master_api_key")
now() { date +%s.%N; }
since() { echo "$1 $(now)" | awk '{printf "%.1f", $2 - $1}'; }

# One password hash for everyone: register a user through the API, copy its hash, drop its site.
SITE_JSON=$(create_site Seed seed.million.example)
SEED=$(echo "$SITE_JSON" | j '["uuid"]'); SEED_KEY=$(echo "$SITE_JSON" | j '["tenant_api_key"]')
curl -sf -X POST $B/api/auth/register -H "X-Tenant-Api-Key: $SEED_KEY" -H 'Content-Type: application/json' \
  -d "{\"site_id\":\"$SEED\",\"email\":\"seed@seed.million.example\",\"password\":\"$PASSWORD\"}" >/dev/null
HASH=$(q -At -c "SELECT password_hash FROM users WHERE site_uuid = '$SEED'")
q -c "DELETE FROM sites WHERE uuid = '$SEED'"

# Sites FIRST..LAST, 1,000 users each, in one transaction. UUIDs are time-ordered like the ones
# Aegis makes (version 7 layout), derived from the numbers; site N's domain is sN.million.example
# and its tenant key the SHA-256 hex of million-tenant-N; user M of site N is
# uM@sN.million.example, verified, with an auth token (plaintext million-a-N-M) and a refresh token
# (million-r-N-M) that expire in 30 days.
cat > "$DATA/generate.sql" <<'SQL'
CREATE FUNCTION pg_temp.uuid7(ms bigint, seed text) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(to_hex(ms), 12, '0') || '7' || substr(md5(seed), 1, 3) || '8'
          || substr(md5(seed), 4, 15))::uuid
$$;
BEGIN;
INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, created_at,
                   updated_at, allow_self_registration, tenant_api_key, deletion_protected)
SELECT pg_temp.uuid7(1700000000000 + i, 'site-' || i), 'Million ' || i, 's' || i || '.million.example',
       'http://localhost:3000', 'noreply@s' || i || '.million.example', 'Million', :now, :now, true,
       encode(sha256(convert_to('million-tenant-' || i, 'UTF8')), 'hex'), false
FROM generate_series(:first, :last) i;
CREATE TEMP TABLE gen ON COMMIT DROP AS
SELECT i, j, pg_temp.uuid7(1700000000000 + i, 'site-' || i) AS site,
       pg_temp.uuid7(1710000000000 + i::bigint * 1000 + j, 'user-' || i || '-' || j) AS usr
FROM generate_series(:first, :last) i, generate_series(1, 1000) j;
INSERT INTO users (uuid, site_uuid, email, password_hash, is_verified, role, created_at, updated_at,
                   deletion_protected)
SELECT usr, site, 'u' || j || '@s' || i || '.million.example', :'hash', true, 'user', :now, :now, false
FROM gen ORDER BY usr;
INSERT INTO auth_tokens (site_uuid, user_uuid, token, expires_at, created_at)
SELECT site, usr, encode(sha256(convert_to('million-a-' || i || '-' || j, 'UTF8')), 'hex'),
       :now + 30 * 86400, :now
FROM gen;
INSERT INTO refresh_tokens (site_uuid, user_uuid, token, family_id, expires_at, created_at, used_at, revoked)
SELECT site, usr, encode(sha256(convert_to('million-r-' || i || '-' || j, 'UTF8')), 'hex'),
       'million-f-' || i || '-' || j, :now + 30 * 86400, :now, NULL, false
FROM gen;
COMMIT;
SQL
generate() {
  q -v first="$1" -v last="$2" -v now="$(date +%s)" -v hash="$HASH" -f "$DATA/generate.sql"
}

# TOKENS random users of sites 1..$1: a wrk script rotating over their auth tokens (me-$2.lua),
# and one rotating over their logins (login-$2.lua).
pick() {
  local sites=$1 set=$2 rows
  rows=$(q -At -F ' ' -c "SELECT 'million-a-' || i || '-' || j, s.uuid, s.tenant_api_key,
             'u' || j || '@s' || i || '.million.example'
           FROM (SELECT 1 + floor(random() * $sites)::int AS i, 1 + floor(random() * 1000)::int AS j
                 FROM generate_series(1, $TOKENS)) p
           JOIN sites s ON s.domain = 's' || p.i || '.million.example'")
  {
    echo "tokens = {"
    echo "$rows" | awk '{printf "  \"%s\",\n", $1}'
    echo "}"
    echo 'n = 0'
    echo 'request = function() n = n + 1; return wrk.format("GET", "/api/auth/me", {["Authorization"] = "Bearer " .. tokens[n % #tokens + 1]}) end'
  } > "$DATA/me-$set.lua"
  {
    echo "users = {"
    echo "$rows" | awk -v pw="$PASSWORD" \
      '{printf "  {\"%s\", [[{\"site_id\":\"%s\",\"email\":\"%s\",\"password\":\"%s\"}]]},\n", $3, $2, $4, pw}'
    echo "}"
    echo 'n = 0'
    echo 'request = function() n = n + 1; local u = users[n % #users + 1]; return wrk.format("POST", "/api/auth/login", {["Content-Type"] = "application/json", ["X-Tenant-Api-Key"] = u[1]}, u[2]) end'
  } > "$DATA/login-$set.lua"
}

# An instance on port PORT serving database DB, with the token cache on or off (CACHE true or
# false); all four measured instances are configured alike.
serve() {
  local port=$1 db=$2 cache=$3
  AEGIS_ENV=development DATABASE_URL="postgres://postgres:$PGPASSWORD@127.0.0.1:$PG_PORT/$db" \
    SECRET_KEY=$(cat "$DATA/secret_key") MASTER_API_KEY=$KEY TOKEN_CACHE_ENABLED=$cache \
    RATELIMIT_ENABLED=false APP_HOST=127.0.0.1 APP_PORT=$port LOG_LEVEL=WARNING MAIL_TRANSPORT=none \
    "$AEGIS_BIN" > "$DATA/aegis-$port.log" 2>&1 &
  SERVED+=($!)
  for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && return; sleep 0.5; done
  echo "the instance on port $port did not start:" >&2; cat "$DATA/aegis-$port.log" >&2; exit 1
}

# wrk with the given arguments; appends "LABEL req/s p50-ms p99-ms non-2xx" to the results and
# prints it.
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }
measure() {
  local label=$1 out rps p50 p99 bad
  shift
  out=$(wrk -t2 -d"${SECONDS_PER_RUN}s" --latency "$@")
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(ms "$(echo "$out" | awk '$1=="50%"{print $2}')")
  p99=$(ms "$(echo "$out" | awk '$1=="99%"{print $2}')")
  bad=$(echo "$out" | awk '/Non-2xx/{print $NF}')
  echo "$label $rps $p50 $p99 ${bad:-0}" >> "$DATA/results"
  printf '  %-22s %10s req/s   p50 %8s ms   p99 %8s ms%s\n' "$label" "$rps" "$p50" "$p99" \
    "$([ -n "$bad" ] && echo "   ($bad answers not 2xx!)")"
}
# One round on a data set (10k or 1M): /me without and with the token cache, then login.
UNCACHED_10K=5690 CACHED_10K=5691 UNCACHED_1M=5692 CACHED_1M=5693
round() {
  local set=$1 uncached cached
  if [ "$set" = 10k ]; then uncached=$UNCACHED_10K cached=$CACHED_10K; else uncached=$UNCACHED_1M cached=$CACHED_1M; fi
  measure "$set/me-uncached" -c64 -s "$DATA/me-$set.lua" "http://127.0.0.1:$uncached/api/auth/me"
  measure "$set/me-cached" -c64 -s "$DATA/me-$set.lua" "http://127.0.0.1:$cached/api/auth/me"
  measure "$set/login" -c16 -s "$DATA/login-$set.lua" "http://127.0.0.1:$cached/api/auth/login"
}

echo "== 10,000 users (10 sites x 1,000)"
T0=$(now)
generate 1 10
q -c "VACUUM ANALYZE"
echo "  generated in $(since "$T0") s (users, auth and refresh tokens, VACUUM ANALYZE)"
q -c "CREATE DATABASE aegis_10k"
"$PGBIN/pg_dump" -h 127.0.0.1 -p "$PG_PORT" -U postgres aegis | q -d aegis_10k > /dev/null
q -c "CHECKPOINT"
serve $UNCACHED_10K aegis_10k false
serve $CACHED_10K aegis_10k true
pick 10 10k
round 10k

echo "== growing to 1,000,000 users (1,000 sites x 1,000)"
T0=$(now)
for first in $(seq 11 110 1000); do
  last=$((first + 109))
  T1=$(now)
  generate "$first" "$last"
  echo "  sites $first-$last: $(( (last - first + 1) * 1000 )) users with tokens in $(since "$T1") s"
done
# Live rate-limit buckets, as the limits keep them (one per tenth user, for the next hour).
q -c "INSERT INTO rate_limit_counters (bucket, window_start, window_seconds, hits)
      SELECT 'login:account:' || s.uuid || ':' || md5(s.uuid || u.email), extract(epoch FROM now())::bigint, 3600, 1
      FROM users u JOIN sites s ON s.uuid = u.site_uuid WHERE u.email ~ '^u[0-9]*0@'"
GEN=$(since "$T0")
T1=$(now)
q -c "VACUUM ANALYZE"
# Write the new pages out now rather than in a checkpoint during the measurements.
q -c "CHECKPOINT"
echo "  generated in $GEN s, VACUUM ANALYZE and CHECKPOINT $(since "$T1") s; total $(since "$T0") s"
q -At -F ' ' -c "SELECT 'users ' || count(*) FROM users UNION ALL SELECT 'auth_tokens ' || count(*) FROM auth_tokens
                 UNION ALL SELECT 'refresh_tokens ' || count(*) FROM refresh_tokens
                 UNION ALL SELECT 'database ' || pg_size_pretty(pg_database_size('aegis'))" | sed 's/^/  /'
q -At -F ' ' -c "SELECT t || ': table ' || pg_size_pretty(pg_table_size(t)) || ', indexes '
                        || pg_size_pretty(pg_indexes_size(t)) || ' (' || (SELECT string_agg(indexrelid::regclass
                        || ' ' || pg_size_pretty(pg_relation_size(indexrelid)), ', ' ORDER BY indexrelid::regclass::text)
                        FROM pg_index WHERE indrelid = t) || ')'
                 FROM unnest(ARRAY['users', 'auth_tokens', 'refresh_tokens']::regclass[]) t" | sed 's/^/  /'
T0=$(now)
serve $UNCACHED_1M aegis false
serve $CACHED_1M aegis true
# At start each instance reads the kinds of stored password hashes, in the background: a full
# scan of users. Let both finish before measuring.
sleep 1
while [ "$(q -At -c "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'
                     AND query LIKE '%WITH prefixes AS MATERIALIZED%' AND pid <> pg_backend_pid()")" != 0 ]; do
  sleep 0.5
done
echo "  two instances started on it; their start-up scans of users were over after $(since "$T0") s"
pick 1000 1M
round 1M
for r in $(seq 2 "$ROUNDS"); do
  echo "== round $r of $ROUNDS, in turn"
  round 10k
  round 1M
done

# The bearer check's query alone, without HTTP or Aegis: pgbench with the statement Aegis sends
# for one token (the digest computed in SQL), for tokens of random users across the whole data
# set, 8 clients, in turn on the two databases.
cat > "$DATA/bearer.sql" <<'SQL'
\set i random(1, :sites)
\set j random(1, 1000)
SELECT "auth_tokens"."token", "users"."uuid", "users"."site_uuid", "users"."email", "users"."password_hash", "users"."is_verified", "users"."role", "users"."created_at", "users"."updated_at", "users"."deletion_protected", "auth_tokens"."expires_at" FROM ("auth_tokens" INNER JOIN "users" ON ("users"."uuid" = "auth_tokens"."user_uuid")) WHERE ("auth_tokens"."token" = ANY(ARRAY[encode(sha256(convert_to('million-a-' || :i || '-' || :j, 'UTF8')), 'hex')]));
SQL
echo "== the bearer query alone (pgbench -M prepared -c 8, random users of the whole set), in turn"
for _ in $(seq "$ROUNDS"); do
  for set in 10k 1M; do
    if [ "$set" = 10k ]; then db=aegis_10k sites=10; else db=aegis sites=1000; fi
    TPS=$("$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -D sites=$sites -D now="$(date +%s)" \
      -f "$DATA/bearer.sql" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db" 2>/dev/null | awk '/^tps/{printf "%.0f", $3; exit}')
    printf '  %-22s %10s queries/s\n' "$set/bearer-query" "$TPS"
    echo "$set/bearer-query $TPS 0 0 0" >> "$DATA/results"
  done
done

# Of each measurement's rounds, the one with the most requests per second (interference from the
# rest of the machine only ever slows a run down), with its own p50 and p99.
echo "== 1M against 10k (best of $ROUNDS rounds each; ratio = 1M / 10k; target within +-10 %, i.e. 0.90-1.10)"
printf '  %-13s %-9s %12s %12s %7s\n' measure figure 10k 1M ratio
awk '$2 > best[$1] { best[$1] = $2; p50[$1] = $3; p99[$1] = $4 }
     END {
       split("me-uncached me-cached login bearer-query", order, " "); split("req/s p50-ms p99-ms", figs, " ")
       for (i = 1; i <= 4; i++) for (f = 1; f <= (i < 4 ? 3 : 1); f++) {
         s = "10k/" order[i]; b = "1M/" order[i]
         small = f == 1 ? best[s] : f == 2 ? p50[s] : p99[s]; big = f == 1 ? best[b] : f == 2 ? p50[b] : p99[b]
         r = small > 0 ? big / small : 0
         printf "  %-13s %-9s %12.2f %12.2f %7.2f%s\n", order[i], i == 4 ? "queries/s" : figs[f], small, big, r, (r < 0.9 || r > 1.1) ? "  outside" : ""
       }
     }' "$DATA/results"
if awk '$5 > 0 { found = 1 } END { exit !found }' "$DATA/results"; then
  echo "  some answers were not 2xx; the instances' warnings, by kind:"
  warnings_by_kind "$DATA"/aegis-*.log | sed 's/^/  /'
fi

echo "== EXPLAIN (ANALYZE, BUFFERS) of the hot queries at 1,000,000 users (generic plans)"
# A random user whose login bucket exists; statements exactly as the service sends them.
read -r SI SJ < <(q -At -F ' ' -c "SELECT 1 + floor(random() * 1000)::int, 10 * (1 + floor(random() * 100)::int)")
read -r SITE USER < <(q -At -F ' ' -c "SELECT site_uuid, uuid FROM users WHERE email = 'u$SJ@s$SI.million.example'")
NOW=$(date +%s)
q -v site="$SITE" -v user="$USER" -v email="u$SJ@s$SI.million.example" -v now="$NOW" \
  -v auth="million-a-$SI-$SJ" -v refresh="million-r-$SI-$SJ" <<'SQL'
SET plan_cache_mode = force_generic_plan;
\set u '"users"."uuid", "users"."site_uuid", "users"."email", "users"."password_hash", "users"."is_verified", "users"."role", "users"."created_at", "users"."updated_at", "users"."deletion_protected"'
\set r '"refresh_tokens"."site_uuid", "refresh_tokens"."user_uuid", "refresh_tokens"."token", "refresh_tokens"."family_id", "refresh_tokens"."expires_at", "refresh_tokens"."created_at", "refresh_tokens"."used_at", "refresh_tokens"."revoked"'
SELECT encode(sha256(convert_to(:'auth', 'UTF8')), 'hex') AS auth_digest,
       encode(sha256(convert_to(:'refresh', 'UTF8')), 'hex') AS refresh_digest \gset
-- A batch of 32 tokens of random users, as concurrent checks send them together.
SELECT array_agg(encode(sha256(convert_to('million-a-' || (1 + floor(random() * 1000))::int || '-'
         || 10 * (1 + floor(random() * 100))::int, 'UTF8')), 'hex'))::text AS batch
  FROM generate_series(1, 32) \gset
PREPARE bearer AS SELECT "auth_tokens"."token", :u, "auth_tokens"."expires_at" FROM ("auth_tokens" INNER JOIN "users" ON ("users"."uuid" = "auth_tokens"."user_uuid")) WHERE ("auth_tokens"."token" = ANY($1));
PREPARE site AS SELECT "sites"."uuid", "sites"."name", "sites"."domain", "sites"."frontend_url", "sites"."verification_redirect_url", "sites"."email_from", "sites"."email_from_name", "sites"."created_at", "sites"."updated_at", "sites"."allow_self_registration", "sites"."webhook_url", "sites"."webhook_secret", "sites"."tenant_api_key", "sites"."mailgun_domain", "sites"."mailgun_api_key", "sites"."deletion_protected" FROM "sites" WHERE ("sites"."uuid" = $1) LIMIT $2;
PREPARE login AS SELECT :u FROM "users" WHERE (("users"."site_uuid" = $1) AND ("users"."email" = $2)) LIMIT $3;
PREPARE lock_user AS SELECT :u FROM "users" WHERE ("users"."uuid" = $1) LIMIT $2 FOR NO KEY UPDATE;
PREPARE insert_auth AS INSERT INTO "auth_tokens" ("site_uuid", "user_uuid", "token", "expires_at", "created_at") VALUES ($1, $2, $3, $4, $5);
PREPARE insert_refresh AS INSERT INTO "refresh_tokens" ("site_uuid", "user_uuid", "token", "family_id", "expires_at", "created_at", "used_at", "revoked") VALUES ($1, $2, $3, $4, $5, $6, $7, $8);
PREPARE refresh AS SELECT :r FROM "refresh_tokens" WHERE ("refresh_tokens"."token" = $1) LIMIT $2;
PREPARE claim AS UPDATE "refresh_tokens" SET "used_at" = $1 WHERE (("refresh_tokens"."token" = $2) AND ("refresh_tokens"."used_at" IS NULL));
PREPARE hit AS WITH t AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[]) AS t(b, s, w, i)) INSERT INTO rate_limit_counters AS c (bucket, window_start, window_seconds, hits) SELECT b, s, w, GREATEST(i, 0) FROM t ON CONFLICT (bucket) DO UPDATE SET hits = CASE WHEN c.window_start = EXCLUDED.window_start THEN GREATEST(c.hits + (SELECT i FROM t WHERE t.b = EXCLUDED.bucket), 0) ELSE EXCLUDED.hits END, window_start = EXCLUDED.window_start, window_seconds = EXCLUDED.window_seconds RETURNING c.bucket, c.hits, c.window_start;
\echo '-- bearer check (GET /api/auth/me and every bearer route, when the token cache misses)'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE bearer(ARRAY[:'auth_digest']);
\echo '-- the same, for 32 checks that arrived together'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE bearer(:'batch');
\echo '-- tenant gate: the site a tenant-keyed request names (login, refresh, register, ...)'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE site(:'site', 1);
\echo '-- login lookup: the user by site and address'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE login(:'site', :'email', 1);
BEGIN;
\echo '-- login and refresh: the user row locked before tokens are stored'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE lock_user(:'user', 1);
\echo '-- token insert: auth token (login, refresh)'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_auth(:'site', :'user', repeat('a', 64), :now + 3600, :now);
\echo '-- token insert: refresh token (login, refresh)'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_refresh(:'site', :'user', repeat('b', 64), 'family', :now + 604800, :now, NULL, false);
ROLLBACK;
\echo '-- refresh lookup (also run FOR UPDATE inside the refresh transaction)'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE refresh(:'refresh_digest', 1);
BEGIN;
\echo '-- refresh claim: the atomic compare-and-set on used_at'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim(:now, :'refresh_digest');
ROLLBACK;
BEGIN;
\echo '-- rate-limit hit of a login: account, client network, failed-login read (100,000 live buckets)'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE hit(
  ARRAY['login:account:' || :'site' || ':' || md5(:'site' || :'email'), 'login:ip:127.0.0.1/32',
        'login-fail:' || :'site' || ':' || md5(:'site' || :'email') || ':127.0.0.1/32'],
  ARRAY[:now, :now, :now]::bigint[], ARRAY[60, 60, 3600], ARRAY[1, 1, 0]);
ROLLBACK;
\echo '-- not a hot path: the kinds of stored password hashes, read once at every start'
EXPLAIN (ANALYZE, BUFFERS) WITH prefixes AS MATERIALIZED (SELECT DISTINCT CASE WHEN split_part(password_hash, '$', 3) LIKE 'v=%' THEN concat_ws('$', '', split_part(password_hash, '$', 2), split_part(password_hash, '$', 3), split_part(password_hash, '$', 4), '') ELSE concat_ws('$', '', split_part(password_hash, '$', 2), split_part(password_hash, '$', 3), '') END AS prefix FROM users WHERE password_hash LIKE '$2%' OR password_hash LIKE '$argon2%') SELECT kind FROM (SELECT DISTINCT substring(prefix FROM '^(\$2[aby]\$[0-9]+\$|\$argon2[a-z]*\$(?:v=[0-9]+\$)?m=[0-9]+,t=[0-9]+,p=[0-9]+\$)') AS kind FROM prefixes) AS kinds WHERE kind IS NOT NULL LIMIT 32;
SQL
