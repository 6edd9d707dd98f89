#!/usr/bin/env bash
# Make sure headless Chromium is installed (Debian's `chromium` package): the HTML
# report's screenshot test uses it. Exit 0 when already present. Quiet unless it fails;
# when it cannot install, the test skips with a clear reason, so this never fails the build.
set -uo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: apt-get not found; the screenshot test will be skipped (install chromium by hand)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "ensure-chromium: not root and no sudo; the screenshot test will be skipped" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "ensure-chromium: apt-get could not install chromium; the screenshot test will be skipped" >&2
fi
exit 0
