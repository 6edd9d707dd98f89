#!/usr/bin/env bash
# Make sure promtool and the Prometheus server are installed (Debian's `prometheus`
# package provides both). The alert-rule tests use them. Exit 0 when already present.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-prometheus: apt-get not found; install Prometheus (promtool + server) by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "ensure-prometheus: not root and no sudo; install the 'prometheus' package by hand" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --no-install-recommends: only the server and promtool, not node-exporter and friends.
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends prometheus; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "ensure-prometheus: apt-get could not install prometheus" >&2
    exit 1
fi
# The package may start a system service; the tests run their own server on a free port.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1
