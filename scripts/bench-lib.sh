# Shared by the benchmark scripts (sourced, not run): starts a release build of Aegis in local mode
# on its own data directory and port, with rate limits off, and stops it on exit.
# Usage: start_aegis PORT NAME — sets AEGIS (pid), DATA (data directory) and B (base URL); then
# j and create_site (below) help set up data through the API.
# AEGIS_BIN=path/to/aegis measures another build.
start_aegis() {
  local port=$1 name=$2
  B=http://127.0.0.1:$port
  if [ -z "${AEGIS_BIN:-}" ]; then
    cargo build --release -q
    AEGIS_BIN=target/release/aegis
  fi
  DATA=$(mktemp -d "/tmp/aegis-$name-XXXXXX")
  RATELIMIT_ENABLED=false AEGIS_DATA_DIR=$DATA APP_PORT=$port LOG_LEVEL=WARNING \
    "$AEGIS_BIN" > "$DATA/aegis.log" 2>&1 &
  AEGIS=$!
  trap 'kill -INT $AEGIS 2>/dev/null; wait $AEGIS 2>/dev/null; rm -rf "$DATA"' EXIT
  for _ in $(seq 60); do curl -sf "$B/api/health" >/dev/null && break; sleep 0.5; done
}

# Prints a field of the JSON object on standard input: j '["uuid"]'.
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# Creates a site named NAME on DOMAIN with the master key in KEY, and prints its JSON.
# Usage: create_site NAME DOMAIN
create_site() {
  curl -sf -X POST "$B/api/sites" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$1\",\"domain\":\"$2\",\"frontend_url\":\"http://localhost:3000\",\"email_from\":\"noreply@$2\",\"email_from_name\":\"$1\"}"
}

# The WARN and ERROR lines of the given server logs, counted by message (slow-request and mail
# transport notices left out).
warnings_by_kind() {
  sed 's/\x1b\[[0-9;]*m//g' "$@" 2>/dev/null | grep -E ' (WARN|ERROR) ' | grep -vE 'slow request|MAIL_TRANSPORT' \
    | sed -E 's/^[^ ]+ +//; s/ [a-z_]+=.*//' | sort | uniq -c
}
