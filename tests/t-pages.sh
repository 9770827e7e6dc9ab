#!/usr/bin/env bash
# The web pages in headless Chromium (tests/pages_test.py says what is checked):
# /overlay/ID and / load, show the commentary, reconnect; screenshots land in
# build/screenshots/.  Chromium runs with a fresh profile and its background services off,
# and — where network namespaces are permitted — with the daemon inside a private one
# that has nothing but loopback.  Skips (77) with the reason when a tool is missing.
set -u
cd "$(dirname "$0")/.."
for f in build/bin/commentaryd build/models/tiny-random/model.safetensors; do
    [ -e "$f" ] || { echo "$f missing: run make"; exit 1; }
done
skip() { echo "skip: $*"; exit 77; }
command -v chromium >/dev/null || skip "chromium missing (Debian package chromium; scripts/install-deps.sh)"
/usr/bin/python3 -c 'import websockets' 2>/dev/null || skip "python3-websockets missing (scripts/install-deps.sh)"
if unshare -n true 2>/dev/null; then
    exec timeout 240 unshare -n sh -c 'ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null; exec /usr/bin/python3 tests/pages_test.py'
fi
echo "note: network namespaces are not permitted here: the browser runs on the host's loopback"
exec timeout 240 /usr/bin/python3 tests/pages_test.py
