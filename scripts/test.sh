#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (redis-server and redis-tools, for the load generator and RESP compatibility tests),
# then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server and redis-tools" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
exec cargo test --profile ci "$@"
