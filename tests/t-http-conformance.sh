#!/usr/bin/env bash
# The daemon's HTTP and WebSocket answers against RFC 9110/9112/6455 and proto/schema
# (tests/http_conformance_test.py says what is checked).  Loopback only.
set -u
cd "$(dirname "$0")/.."
[ -e build/bin/commentaryd ] || { echo "build/bin/commentaryd missing: run make"; exit 1; }
/usr/bin/python3 -c 'import websockets' 2>/dev/null || { echo "python3-websockets missing (scripts/install-deps.sh)"; exit 77; }
exec timeout 120 /usr/bin/python3 tests/http_conformance_test.py
