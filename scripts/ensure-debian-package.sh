#!/usr/bin/env bash
# ensure-debian-package.sh PACKAGE COMMAND... : install Debian's PACKAGE (quietly)
# unless every COMMAND is already on PATH. Exit 0 when they are there at the
# end, 1 otherwise (the tests that need them then skip with a clear reason).
# Used by `make test` for chromium (the report's screenshot test) and prometheus
# (promtool and the server, for the alert tests).
set -uo pipefail
package=$1; shift

present() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || return 1; done; }
present "$@" && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure: apt-get not found; install '$package' by hand" >&2; exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "ensure: not root and no sudo; install '$package' by hand" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "$package"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "ensure: apt-get could not install '$package'" >&2; exit 1
fi
# a package may start a system service (prometheus does); tests run their own on free ports
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$package" >/dev/null 2>&1 || true; fi
present "$@"
