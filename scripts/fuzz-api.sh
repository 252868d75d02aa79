#!/usr/bin/env bash
# Fuzzes the API with schemathesis, driven by the OpenAPI document the service serves.
#
# Starts a debug build of Aegis in local mode (its own PostgreSQL, data directory and port, rate
# limits off), creates a site whose id is the one the document's examples use, and a verified user
# signed in on it, then runs schemathesis with the master key, the site's tenant key and the user's
# bearer token on every request. It fails on any 5xx answer and on any answer whose status,
# content type or body the document does not describe, and when fewer than MIN_CASES cases ran.
#
# Usage: scripts/fuzz-api.sh. Environment: FUZZ_MAX_EXAMPLES (per operation and phase, default
# 40), FUZZ_MAX_TIME (seconds for the main run, default 120), FUZZ_SEED (default: random, printed), MIN_CASES
# (default 1000), AEGIS_BIN (another build), SCHEMATHESIS_VENV (where schemathesis is installed,
# default target/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v psql >/dev/null || { echo "psql is needed (the PostgreSQL client package)" >&2; exit 1; }

VENV=${SCHEMATHESIS_VENV:-target/schemathesis}
if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "== installing schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"
fi

if [ -z "${AEGIS_BIN:-}" ]; then
  cargo build -q -p aegis-http --bin aegis
  AEGIS_BIN=target/debug/aegis
fi
. scripts/bench-lib.sh
# Fuzzing looks for wrong answers, not for load shedding: a machine busy with other work must not
# turn the pool's deliberate 503 (DB_POOL_TIMEOUT_MS, 80 ms by default) into a failure.
export DB_POOL_TIMEOUT_MS=5000
start_aegis 5697 fuzz
PG_PORT=$(grep -o 'managed server on 127.0.0.1:[0-9]*' "$DATA/aegis.log" | head -1 | sed 's/.*://')
export PGPASSWORD
PGPASSWORD=$(cat "$DATA/postgres_password")
DB="postgres://postgres@127.0.0.1:$PG_PORT/aegis"
MASTER=$(cat "$DATA/master_api_key")

# The site the document's examples name, protected so no generated request deletes it, and a
# verified user signed in on it.
read -r TENANT BEARER < <(python3 - "$B" "$MASTER" "$DATA" "$DB" <<'PY'
import glob, json, re, subprocess, sys, time, urllib.request
base, master, data, db = sys.argv[1:5]
EXAMPLE_SITE = "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f"

def call(method, path, body, headers):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())

site = call("POST", "/api/sites", {"name": "Fuzz", "domain": "fuzz.example.com",
    "frontend_url": "http://localhost:3000", "email_from": "noreply@fuzz.example.com",
    "email_from_name": "Fuzz"}, {"X-API-Key": master})
subprocess.run(["psql", "-q", "-d", db, "-c",
    f"UPDATE sites SET uuid = '{EXAMPLE_SITE}', deletion_protected = true WHERE uuid = '{site['uuid']}'"],
    check=True, capture_output=True)
tenant = {"X-Tenant-Api-Key": site["tenant_api_key"]}
password = "fuzzing passphrase 0123"
call("POST", "/api/auth/register", {"site_id": EXAMPLE_SITE, "email": "fuzz@example.com",
    "password": password}, tenant)
token = None
for _ in range(100):
    for path in glob.glob(data + "/outbox/*.eml"):
        m = re.search(r"verify-email\?token=([A-Za-z0-9_-]+)", open(path, errors="replace").read().replace("=\n", ""))
        token = token or (m and m.group(1))
    if token:
        break
    time.sleep(0.1)
call("POST", "/api/auth/verify-email", {"site_id": EXAMPLE_SITE, "token": token}, tenant)
session = call("POST", "/api/auth/login", {"site_id": EXAMPLE_SITE, "email": "fuzz@example.com",
    "password": password}, tenant)
print(site["tenant_api_key"], session["auth_token"]["token"])
PY
)

SEED=${FUZZ_SEED:-$RANDOM$RANDOM}
# One run: every operation but logout, which would revoke the bearer token the others use; then
# logout on its own.
fuzz() {
  local report=$1 max_time=$2
  shift 2
  "$VENV/bin/schemathesis" run "$B/api/openapi.json" \
    --url "$B" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --header "X-API-Key: $MASTER" \
    --header "X-Tenant-Api-Key: $TENANT" \
    --header "Authorization: Bearer $BEARER" \
    --max-examples "${FUZZ_MAX_EXAMPLES:-40}" \
    --max-time "$max_time" \
    --seed "$SEED" \
    --workers 2 \
    --generation-database none \
    --no-color \
    --report ndjson --report-ndjson-path "$report" \
    "$@"
}
cases() {
  python3 - "$1" <<'PY'
import json, sys
cases = 0
for line in open(sys.argv[1]):
    for value in json.loads(line).values():
        if isinstance(value, dict) and "recorder" in value:
            cases += len(value["recorder"].get("cases", {}))
print(cases)
PY
}
echo "== schemathesis against $B (seed $SEED)"
STATUS=0
fuzz "$DATA/all.ndjson" "${FUZZ_MAX_TIME:-120}" --exclude-operation-id logout || STATUS=$?
fuzz "$DATA/logout.ndjson" 20 --include-operation-id logout || STATUS=$?
CASES=$(( $(cases "$DATA/all.ndjson") + $(cases "$DATA/logout.ndjson") ))
echo "== $CASES test cases"
if [ "$STATUS" -ne 0 ]; then
  cp "$DATA/aegis.log" target/fuzz-aegis.log 2>/dev/null || true
  echo "schemathesis found failures (seed $SEED); the server's log is in target/fuzz-aegis.log" >&2
  exit "$STATUS"
fi
if [ "$CASES" -lt "${MIN_CASES:-1000}" ]; then
  echo "only $CASES cases ran; at least ${MIN_CASES:-1000} are required" >&2
  exit 1
fi
