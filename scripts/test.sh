#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (redis-server and redis-tools, for the load generator and RESP compatibility tests;
# chromium, for the report page; redis-py in a virtual environment under target/, for the
# client library test), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium renders the report page headless (src/loadgen/page_tests.rs).
NEED=""
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
    NEED="redis-server redis-tools"
command -v chromium >/dev/null || NEED="$NEED chromium"
if [ -n "$NEED" ]; then
    echo "installing:$NEED" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $NEED >/dev/null
fi
# redis-py, for the test that drives the node through a real client library with its
# default settings (tests/clients/redis_py_check.py, tests/clients/redis_py_pubsub.py).
PY=target/pyclients/bin/python
if ! "$PY" -c "import redis" 2>/dev/null; then
    echo "installing redis-py into target/pyclients" >&2
    python3 -m venv target/pyclients
    "$PY" -m pip install -q "redis==8.1.0"
fi
# The emulated-network tests (tests/net_*.rs) need root and /dev/net/tun, nothing to
# install (no iproute2: namespaces and TUN devices are set up with system calls); without
# them they fail, saying so.
[ "$(id -u)" -eq 0 ] && [ -c /dev/net/tun ] ||
    echo "note: tests/net_*.rs will fail: they need root and /dev/net/tun" >&2
exec cargo test --profile ci "$@"
