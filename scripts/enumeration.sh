#!/usr/bin/env bash
# Account-enumeration timing benchmark: does answering take longer when an address has an account?
# Starts a release build of Aegis in local mode on its own data directory and port, with rate
# limits off, and creates:
#   - a verified user with an Argon2id hash at the default costs;
#   - a user adopted from the original service, with a bcrypt hash at cost 12 (its default);
#   - an invited user who has not set a password yet.
# Then, interleaving the cases so drift hits all alike, it times sequential requests over one
# keep-alive connection and prints the median of each case and the slowest-to-fastest ratio per
# route (the target is within 10 %):
#   1. request-password-reset: an address with an account vs one without;
#   2. login with a wrong password: Argon2id account, bcrypt account, account without a password,
#      unknown address;
#   3. register: an address with an account vs a new one, with a password and without.
# Usage: scripts/enumeration.sh [samples]. AEGIS_BIN=path/to/aegis measures another build.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES=${1:-31}
command -v psql >/dev/null || { echo "psql is needed (apt-get install postgresql-client)" >&2; exit 1; }
. scripts/bench-lib.sh
start_aegis 5698 enum
PG_PORT=$(grep -o 'managed server on 127.0.0.1:[0-9]*' "$DATA/aegis.log" | head -1 | sed 's/.*://')
export PGPASSWORD
PGPASSWORD=$(cat "$DATA/postgres_password")
DB="postgres://postgres@127.0.0.1:$PG_PORT/aegis"

python3 - "$B" "$(cat "$DATA/master_api_key")" "$DATA" "$DB" "$SAMPLES" <<'PY'
import glob, http.client, json, re, statistics, subprocess, sys, time
base, master, data, db, samples = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
host, port = base.replace("http://", "").split(":")
conn = http.client.HTTPConnection(host, int(port))

def call(method, path, body=None, headers=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    started = time.perf_counter()
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = conn.getresponse()
    payload = r.read()
    return r.status, payload, time.perf_counter() - started

def sql(statement):
    subprocess.run(["psql", "-q", "-d", db, "-c", statement], check=True, capture_output=True)

status, site, _ = call("POST", "/api/sites", {"name": "Enum", "domain": "enum.example.com",
    "frontend_url": "http://localhost:3000", "email_from": "noreply@enum.example.com",
    "email_from_name": "Enum", "allow_self_registration": True}, {"X-API-Key": master})
site = json.loads(site)
sid, tenant = site["uuid"], {"X-Tenant-Api-Key": site["tenant_api_key"]}
for email in ["argon@example.com", "legacy@example.com"]:
    assert call("POST", "/api/auth/register", {"site_id": sid, "email": email,
        "password": "right-password"}, tenant)[0] == 201
assert call("POST", "/api/auth/invite-user", {"site_id": sid, "email": "invited@example.com"}, tenant)[0] == 201
time.sleep(2)
for path in glob.glob(data + "/outbox/*.eml"):
    text = open(path, errors="replace").read().replace("=\n", "")
    m = re.search(r"verify-email\?token=([A-Za-z0-9_-]+)", text)
    if m and "invited@" not in text:
        call("POST", "/api/auth/verify-email", {"site_id": sid, "token": m.group(1)}, tenant)
# bcrypt at cost 12 of "right-password", as the original service stored it.
legacy = "$2b$12$hdzbIDVP.mEdRc3Xll9MnOmEu2T35yqKa43nWwLX09z/9pwTU3pwK"
sql(f"UPDATE users SET password_hash = '{legacy}' WHERE email = 'legacy@example.com'")

def bench(route, cases):
    times = {name: [] for name, _ in cases}
    for i in range(samples + 1):
        for name, make in cases:
            status, body, took = call("POST", route, make(i), tenant)
            if i > 0:  # the first round warms up
                times[name].append(took * 1000)
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = max(medians.values()) / min(medians.values())
    print(f"{route}")
    for name, m in medians.items():
        print(f"  {name:<34} median {m:8.2f} ms")
    print(f"  slowest / fastest                  {ratio:8.3f}")

bench("/api/auth/request-password-reset", [
    ("address with an account", lambda i: {"site_id": sid, "email": "argon@example.com"}),
    ("address without an account", lambda i: {"site_id": sid, "email": "nobody@example.com"}),
])
# The first failed check against the bcrypt account teaches the service its cost only if the
# startup calibration has not; the warm-up round covers both.
bench("/api/auth/login", [
    ("wrong password, Argon2id account", lambda i: {"site_id": sid, "email": "argon@example.com", "password": "wrong"}),
    ("wrong password, bcrypt-12 account", lambda i: {"site_id": sid, "email": "legacy@example.com", "password": "wrong"}),
    ("account without a password", lambda i: {"site_id": sid, "email": "invited@example.com", "password": "wrong"}),
    ("unknown address", lambda i: {"site_id": sid, "email": "nobody@example.com", "password": "wrong"}),
])
bench("/api/auth/register", [
    ("address with an account", lambda i: {"site_id": sid, "email": "argon@example.com", "password": "new-password"}),
    ("new address", lambda i: {"site_id": sid, "email": f"new{i}@example.com", "password": "new-password"}),
])
bench("/api/auth/register", [
    ("address with an account, no password", lambda i: {"site_id": sid, "email": "argon@example.com"}),
    ("new address, no password", lambda i: {"site_id": sid, "email": f"bare{i}@example.com"}),
])
PY
