#!/usr/bin/env bash
# Load and memory harness: starts a release build of Aegis in local mode on its own data directory
# and port, creates a site and a verified user, then measures with wrk (Debian: apt-get install wrk)
# and a small Python client:
#   1. GET /api/health               (no database)
#   2. GET /api/auth/me              (the bearer check: one indexed query)
#   3. POST /api/auth/login          (Argon2id at the default costs, on the hashing threads)
#   4. GET /api/health while logins run (hashing must not starve other requests)
#   5. ratios in the same run: /me (64 connections, 50 rotating tokens) against pgbench -S -M
#      prepared at 64 clients on the same PostgreSQL (and pgbench's own p50 and p99); login (16
#      connections) against a pure Argon2id loop at the same costs on as many threads (the
#      argon2_rate example); /me latency during a burst of 200 logins; server CPU and RSS;
#   6. memory (RSS of the aegis process): idle; at rest after 1,000 logins; peak during a
#      64-connection /me load; peak during a burst of 200 concurrent logins, against its bound of
#      hashing threads x Argon2 memory + 48 MiB.
# Rate limits are off for the run. Usage: scripts/load.sh [seconds] [connections]
# AEGIS_BIN=path/to/aegis measures another build (say, an earlier release) the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-32}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
. scripts/bench-lib.sh
start_aegis 5699 load

# Resident memory of the aegis process now, and its peak since the last reset, in MiB.
rss() { awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$AEGIS/status"; }
peak() { awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$AEGIS/status"; }
reset_peak() { echo 5 > "/proc/$AEGIS/clear_refs"; }
IDLE_RSS=$(rss)

KEY=$(cat "$DATA/master_api_key")
SITE_JSON=$(create_site Load load.example.com)
SITE=$(echo "$SITE_JSON" | j '["uuid"]'); TKEY=$(echo "$SITE_JSON" | j '["tenant_api_key"]')
curl -sf -X POST $B/api/auth/register -H "X-Tenant-Api-Key: $TKEY" -H 'Content-Type: application/json' \
  -d "{\"site_id\":\"$SITE\",\"email\":\"load@example.com\",\"password\":\"load-password\"}" >/dev/null
for _ in $(seq 20); do ls "$DATA"/outbox/*.eml >/dev/null 2>&1 && break; sleep 0.5; done
TOKEN=$(grep -ho 'verify-email?token=[A-Za-z0-9_-]*' "$DATA"/outbox/*.eml | head -1 | sed 's/.*token=//')
curl -sf -X POST $B/api/auth/verify-email -H "X-Tenant-Api-Key: $TKEY" -H 'Content-Type: application/json' \
  -d "{\"site_id\":\"$SITE\",\"token\":\"$TOKEN\"}" >/dev/null
LOGIN_BODY="{\"site_id\":\"$SITE\",\"email\":\"load@example.com\",\"password\":\"load-password\"}"
AUTH=$(curl -sf -X POST $B/api/auth/login -H "X-Tenant-Api-Key: $TKEY" -H 'Content-Type: application/json' \
  -d "$LOGIN_BODY" | j '["auth_token"]["token"]')
LUA="$DATA/login.lua"
cat > "$LUA" <<LUA
wrk.method = "POST"
wrk.body = '$LOGIN_BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant-Api-Key"] = "$TKEY"
LUA

# COUNT logins from CONCURRENCY clients at once (all released together when they are equal);
# prints the answers by status.
logins() {
  python3 - "$B" "$TKEY" "$LOGIN_BODY" "$1" "$2" <<'PY'
import collections, concurrent.futures, sys, threading, urllib.error, urllib.request
base, key, body, count, clients = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4]), int(sys.argv[5])
start = threading.Barrier(clients) if count == clients else None
def login(_):
    if start:
        start.wait()
    req = urllib.request.Request(base + "/api/auth/login", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Tenant-Api-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
with concurrent.futures.ThreadPoolExecutor(clients) as pool:
    print(dict(sorted(collections.Counter(pool.map(login, range(count))).items())))
PY
}

echo "== GET /api/health"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency $B/api/health | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== GET /api/auth/me (bearer check)"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $AUTH" $B/api/auth/me \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== POST /api/auth/login (Argon2id m=19456 KiB, t=2, p=1)"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$LUA" $B/api/auth/login \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== GET /api/health while logins run (hashing must not starve other requests)"
wrk -t1 -c16 -d"${SECONDS_PER_RUN}s" -s "$LUA" $B/api/auth/login > /dev/null &
LOGINS=$!
sleep 1
wrk -t1 -c8 -d"$((SECONDS_PER_RUN - 2))s" --latency $B/api/health | grep -E "Requests/sec|Latency|50%|99%"
wait $LOGINS

echo "== ratios, all measured in this run against the same PostgreSQL"
PGBIN=$(pg_config --bindir 2>/dev/null || true)
[ -x "$PGBIN/pgbench" ] || PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/pgbench | tail -1)")
PG_PORT=$(grep -o 'managed server on 127.0.0.1:[0-9]*' "$DATA/aegis.log" | head -1 | sed 's/.*://')
export PGPASSWORD
PGPASSWORD=$(cat "$DATA/postgres_password")
"$PGBIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d aegis -c "CREATE DATABASE pgbench" >/dev/null
"$PGBIN/pgbench" -q -i -s 1 -h 127.0.0.1 -p "$PG_PORT" -U postgres pgbench >/dev/null 2>&1
# CPU seconds the aegis process has used so far (user + system).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$AEGIS/stat"; }
# 50 sessions, so /me rotates over 50 tokens as real clients would.
ME_LUA="$DATA/me.lua"
{
  echo "tokens = {"
  for _ in $(seq 50); do
    curl -sf -X POST $B/api/auth/login -H "X-Tenant-Api-Key: $TKEY" -H 'Content-Type: application/json' \
      -d "$LOGIN_BODY" | j '["auth_token"]["token"]' | sed 's/.*/  "&",/'
  done
  echo "}"
  echo 'n = 0'
  echo 'request = function() n = n + 1; return wrk.format("GET", "/api/auth/me", {["Authorization"] = "Bearer " .. tokens[n % #tokens + 1]}) end'
} > "$ME_LUA"
CPU0=$(cpu)
ME=$(wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -s "$ME_LUA" $B/api/auth/me)
CPU1=$(cpu)
ME_RPS=$(echo "$ME" | awk '/Requests\/sec/{print $2}')
# pgbench logs every transaction's latency (-l), so its own p50 and p99 show what the database
# alone achieves at 64 clients on this machine in this run.
PGB=$(cd "$DATA" && "$PGBIN/pgbench" -n -S -M prepared -c 64 -j 2 -T "$SECONDS_PER_RUN" -l --log-prefix=pgb \
  -h 127.0.0.1 -p "$PG_PORT" -U postgres pgbench 2>/dev/null | awk '/^tps/{print $3; exit}')
PGB_LATENCY=$(cat "$DATA"/pgb.* | awk '{print $3}' | sort -n \
  | awk '{a[NR] = $1} END {printf "p50 %.2fms, p99 %.2fms", a[int(NR * 0.5)] / 1000, a[int(NR * 0.99)] / 1000}')
rm -f "$DATA"/pgb.*
echo "/me, 64 connections, 50 tokens:    $ME_RPS req/s, p50 $(echo "$ME" | awk '$1=="50%"{print $2}'), p99 $(echo "$ME" | awk '$1=="99%"{print $2}'), server CPU $(echo "$CPU0 $CPU1 $SECONDS_PER_RUN" | awk '{printf "%.2f", ($2-$1)/$3}') cores, RSS $(rss) MiB"
# The same load on a second instance with the token cache off, on the same database: every check
# is a database query.
UNCACHED_PORT=5695
AEGIS_ENV=development DATABASE_URL="postgres://postgres:$PGPASSWORD@127.0.0.1:$PG_PORT/aegis" \
  SECRET_KEY=$(cat "$DATA/secret_key") MASTER_API_KEY=$KEY TOKEN_CACHE_ENABLED=false \
  RATELIMIT_ENABLED=false APP_PORT=$UNCACHED_PORT LOG_LEVEL=WARNING MAIL_TRANSPORT=none \
  "$AEGIS_BIN" > "$DATA/uncached.log" 2>&1 &
UNCACHED=$!
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$UNCACHED_PORT/api/health" >/dev/null && break; sleep 0.5; done
ME_DB=$(wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -s "$ME_LUA" "http://127.0.0.1:$UNCACHED_PORT/api/auth/me")
kill -INT $UNCACHED; wait $UNCACHED 2>/dev/null || true
ME_DB_RPS=$(echo "$ME_DB" | awk '/Requests\/sec/{print $2}')
echo "/me, cache off (every check a query): $ME_DB_RPS req/s, p50 $(echo "$ME_DB" | awk '$1=="50%"{print $2}'), p99 $(echo "$ME_DB" | awk '$1=="99%"{print $2}')"
echo "pgbench -S -M prepared -c 64:      $PGB tps, $PGB_LATENCY"
echo "/me through the database vs pgbench: $(echo "$ME_DB_RPS $PGB" | awk '{printf "%.1f %%", 100*$1/$2}')   (target >= 35 %, p99 <= 10 ms)"
echo "/me with the token cache vs pgbench: $(echo "$ME_RPS $PGB" | awk '{printf "%.1f %%", 100*$1/$2}')   (aim >= 100 %)"
THREADS=${PASSWORD_HASH_CONCURRENCY:-$(nproc)}
cargo build --release -q -p aegis-domain --example argon2_rate
# Login and the pure loop take turns, the loop first and last (A L A L A L A), so that each login
# turn is compared with the loop just before and just after it: the host's speed drifts within
# minutes, and a drift then weighs on both sides alike. The pause lets the logins wrk left in
# flight finish hashing before the loop starts.
argon_turn() { target/release/examples/argon2_rate "$SECONDS_PER_RUN" "$THREADS" | awk '{print $2}'; }
LOGINS=0; ARGONS=0; BEFORE=$(argon_turn)
for _ in 1 2 3; do
  LOGIN=$(wrk -t2 -c16 -d"${SECONDS_PER_RUN}s" --latency -s "$LUA" $B/api/auth/login)
  LOGINS=$(( LOGINS + $(echo "$LOGIN" | awk '/requests in/{print $1}') ))
  sleep 1
  AFTER=$(argon_turn)
  ARGONS=$(echo "$ARGONS $BEFORE $AFTER $SECONDS_PER_RUN" | awk '{printf "%.3f", $1 + ($2 + $3) / 2 * $4}')
  BEFORE=$AFTER
done
LOGIN_RPS=$(echo "$LOGINS $SECONDS_PER_RUN" | awk '{printf "%.1f", $1 / (3 * $2)}')
ARGON=$(echo "$ARGONS $SECONDS_PER_RUN" | awk '{printf "%.1f", $1 / (3 * $2)}')
echo "login, 16 connections:             $LOGIN_RPS req/s (p50 $(echo "$LOGIN" | awk '$1=="50%"{print $2}'), p99 $(echo "$LOGIN" | awk '$1=="99%"{print $2}') in the last turn)"
echo "pure Argon2id, $THREADS threads:           $ARGON /s"
echo "login as a share of Argon2id alone: $(echo "$LOGIN_RPS $ARGON" | awk '{printf "%.3f (cost %.2fx)", $1/$2, $2/$1}')   (target >= 0.870, i.e. <= 1.15x)"
logins 200 200 > "$DATA/burst.txt" &
BURST=$!
sleep 0.2
FLOOD=$(wrk -t1 -c8 -d3s --latency -s "$ME_LUA" $B/api/auth/me)
wait $BURST
echo "/me during a 200-login burst:      p50 $(echo "$FLOOD" | awk '$1=="50%"{print $2}'), p99 $(echo "$FLOOD" | awk '$1=="99%"{print $2}')   (target p99 <= 50 ms; logins $(cat "$DATA/burst.txt"))"

echo "== memory (RSS of the aegis process)"
echo "idle, after start:                  $IDLE_RSS MiB"
echo -n "1,000 logins from 16 clients:       "; logins 1000 16
sleep 2
echo "at rest after them:                 $(rss) MiB   (target <= 64 MiB)"
reset_peak
wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" -H "Authorization: Bearer $AUTH" $B/api/auth/me > /dev/null
echo "peak during a 64-connection /me load: $(peak) MiB   (target <= 64 MiB)"
reset_peak
echo -n "a burst of 200 concurrent logins:   "; logins 200 200
THREADS=${PASSWORD_HASH_CONCURRENCY:-$(nproc)}
echo "peak during the burst:              $(peak) MiB   (bound: $THREADS threads x 19 MiB + 48 MiB = $((THREADS * 19 + 48)) MiB)"
sleep 2
echo "at rest after the burst:            $(rss) MiB"

# A run with answers other than 2xx (wrk's "Non-2xx or 3xx responses") says why here.
WARNINGS=$(warnings_by_kind "$DATA/aegis.log" "$DATA/uncached.log" || true)
echo "== the servers' warnings and errors, by kind: ${WARNINGS:-none}"
