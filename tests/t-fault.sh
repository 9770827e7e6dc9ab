#!/usr/bin/env bash
# A device fault mid-stream and during the warm-up, on the CPU backend's failpoint
# (tests/fault_test.py says what is checked).  Loopback only.
set -u
cd "$(dirname "$0")/.."
for f in build/bin/commentaryd build/models/tiny-random/model.safetensors; do
    [ -e "$f" ] || { echo "$f missing: run make"; exit 1; }
done
/usr/bin/python3 -c 'import websockets' 2>/dev/null || { echo "python3-websockets missing (scripts/install-deps.sh)"; exit 77; }
exec timeout 300 /usr/bin/python3 tests/fault_test.py
