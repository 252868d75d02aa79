#!/usr/bin/env bash
# aegis-domain must not depend on I/O crates: no database, HTTP, async runtime or mail client.
set -euo pipefail
forbidden='^(diesel|diesel-async|diesel_migrations|deadpool|tokio|tokio-postgres|actix-[a-z-]+|lettre|reqwest|hyper) v'
found=$(cargo tree -p aegis-domain -e normal --prefix none | grep -E "$forbidden" | sort -u || true)
if [ -n "$found" ]; then
    echo "aegis-domain depends on I/O crates:" >&2
    echo "$found" >&2
    exit 1
fi
echo "aegis-domain: no I/O dependencies"
