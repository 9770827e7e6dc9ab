#!/usr/bin/env bash
# Runs every benchmark in build/bench/ and prints its figures with the machine it ran on.
set -u
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GB"
for b in build/bench/*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || echo "$(basename "$b"): failed with exit $?"
done
if [ -x build/bin/commentaryd ] && /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
    echo "== bench-daemon"
    /usr/bin/python3 bench/bench_daemon.py "" "${BENCH_DAEMON_WINDOW:-60}"
fi
