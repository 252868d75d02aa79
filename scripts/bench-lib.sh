# Shared by the benchmark scripts (sourced, not run): starts a release build of Aegis in local mode
# on its own data directory and port, with rate limits off, and stops it on exit.
# Usage: start_aegis PORT NAME — sets AEGIS (pid), DATA (data directory) and B (base URL).
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
