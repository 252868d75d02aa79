#!/usr/bin/env bash
# Makes sure Chromium and its WebDriver (chromedriver), which the hosted pages' browser test
# drives, are installed. Installs Debian's `chromium` and `chromium-driver` packages when they are
# missing and we are root with apt-get; otherwise says what to install. The browser test skips,
# saying so, when they are absent.
set -euo pipefail

have_chromium() {
    command -v chromedriver >/dev/null 2>&1 || return 1
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || return 1
}

if have_chromium; then
    exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Chromium or chromedriver not found: installing Debian's chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
    have_chromium && exit 0
fi

echo "Chromium and chromedriver are needed for the browser test of the hosted pages:" >&2
echo "  Debian: sudo apt-get install chromium chromium-driver" >&2
echo "  Ubuntu: the chromium snap, or Google Chrome with a matching chromedriver" >&2
exit 1
