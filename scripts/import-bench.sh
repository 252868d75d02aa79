#!/usr/bin/env bash
# Import benchmark: how long `aegis users import` takes for USERS users that arrive with existing
# password hashes (kept as they are, never re-hashed), into a site of a release build running in
# local mode; then the export of the same site, and a re-import (every line skipped). The target
# is 100,000 users in 60 s or less on a 2-core machine.
# Usage: scripts/import-bench.sh [users] (default 100000). AEGIS_BIN=path/to/aegis measures
# another build.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${1:-100000}
. scripts/bench-lib.sh
start_aegis 5696 import
KEY=$(cat "$DATA/master_api_key")
curl -sf -X POST $B/api/sites -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d '{"name":"Import","domain":"import.example.com","frontend_url":"http://localhost:3000","email_from":"noreply@import.example.com","email_from_name":"Import"}' >/dev/null
python3 - "$DATA/users.jsonl" "$USERS" <<'PY'
import json, sys
path, count = sys.argv[1], int(sys.argv[2])
# What another identity system exports: bcrypt (cost 12) and Argon2id hashes, alternately.
hashes = ["$2b$12$hdzbIDVP.mEdRc3Xll9MnOmEu2T35yqKa43nWwLX09z/9pwTU3pwK",
          "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Bq2J1x4sYp6Xu7m0kWq8oV0y3Q1cR5lHn2Zt9aJ4dEw"]
with open(path, "w") as f:
    for i in range(count):
        f.write(json.dumps({"email": f"user{i}@import.example.com", "role": "user", "verified": True,
                            "password_hash": hashes[i % 2], "created_at": 1700000000 + i}) + "\n")
PY
# Runs the CLI against the running instance's database; prints the seconds it took.
aegis_cli() {
  local out=$1 t0
  shift
  t0=$(date +%s.%N)
  AEGIS_DATA_DIR=$DATA LOG_LEVEL=WARNING "$AEGIS_BIN" "$@" > "$out" 2>/dev/null || true
  echo "$t0 $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}'
}
echo "== import of $USERS users with existing hashes"
T=$(aegis_cli "$DATA/import.out" users import "$DATA/users.jsonl" --site import.example.com)
echo "import:     $T s   ($(tail -1 "$DATA/import.out"))   target <= 60 s for 100,000"
T=$(aegis_cli /dev/null users export --site import.example.com --output "$DATA/export.jsonl")
echo "export:     $T s   ($(wc -l < "$DATA/export.jsonl") lines)"
T=$(aegis_cli "$DATA/reimport.out" users import "$DATA/export.jsonl" --site import.example.com)
echo "re-import:  $T s   ($(tail -1 "$DATA/reimport.out"))"
