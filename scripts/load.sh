#!/usr/bin/env bash
# Load and memory harness: starts a release build of Aegis in local mode on its own data directory
# and port, creates a site and a verified user, then measures with wrk (Debian: apt-get install wrk)
# and a small Python client:
#   1. GET /api/health               (no database)
#   2. GET /api/auth/me              (the bearer check: one indexed query)
#   3. POST /api/auth/login          (Argon2id at the default costs, on the hashing threads)
#   4. GET /api/health while logins run (hashing must not starve other requests)
#   5. memory (RSS of the aegis process): idle; at rest after 1,000 logins; peak during a
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
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
SITE_JSON=$(curl -sf -X POST $B/api/sites -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d '{"name":"Load","domain":"load.example.com","frontend_url":"http://localhost:3000","email_from":"noreply@load.example.com","email_from_name":"Load"}')
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
