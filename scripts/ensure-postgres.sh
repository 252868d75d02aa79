#!/usr/bin/env bash
# Makes sure the PostgreSQL server programs (initdb, pg_ctl) that the tests and the local run mode
# use are installed. Installs Debian's `postgresql` package when they are missing and we are root
# with apt-get; otherwise says what to install.
set -euo pipefail

have_pg() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    if command -v pg_config >/dev/null 2>&1; then
        local bindir
        bindir=$(pg_config --bindir 2>/dev/null || true)
        [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] && return 0
    fi
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
    return 1
}

if have_pg; then
    exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL server programs not found: installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    have_pg && exit 0
fi

echo "PostgreSQL server programs (initdb, pg_ctl) are needed. Install the PostgreSQL server package:" >&2
echo "  Debian/Ubuntu: sudo apt-get install postgresql" >&2
echo "  Fedora:        sudo dnf install postgresql-server" >&2
echo "  macOS:         brew install postgresql@16" >&2
exit 1
