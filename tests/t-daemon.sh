#!/usr/bin/env bash
# Integration test of the daemon: RTSP in, WebSocket out, metrics, reconnects, bad
# requests, SIGTERM (tests/daemon_test.py says what is checked).  Loopback only.
set -u
cd "$(dirname "$0")/.."
for f in build/bin/commentaryd build/tests/helpers/rtsp-server build/models/tiny-random/model.safetensors; do
    [ -e "$f" ] || { echo "$f missing: run make"; exit 1; }
done
/usr/bin/python3 -c 'import websockets' 2>/dev/null || { echo "python3-websockets missing (scripts/install-deps.sh)"; exit 77; }
command -v promtool >/dev/null || { echo "promtool missing (Debian package prometheus)"; exit 77; }
exec timeout 400 /usr/bin/python3 tests/daemon_test.py
