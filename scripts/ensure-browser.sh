#!/bin/sh
# The browser tests (tests/test_console_browser.py) drive Debian's headless Chromium through
# chromedriver. On CI (CI=true, root) this installs both once from apt; elsewhere it only says
# how, and those tests skip. Idempotent and quiet.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "${CI:-}" != "true" ]; then
    echo "note: chromium and chromium-driver are not installed, so the browser tests skip;" \
         "install them with: apt-get install chromium chromium-driver" >&2
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "error: the browser tests need chromium and chromium-driver; install them" \
         "(apt-get install chromium chromium-driver) or run as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
