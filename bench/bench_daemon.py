#!/usr/bin/python3
"""How many concurrent `test:` streams commentaryd sustains in real time on this machine.

For N = 1, 2, 4, 8, ... streams (the model given, default: the one `make run` uses),
start the daemon, let it warm up, then watch every stream for WINDOW seconds over
WebSocket: a stream is real time when no chunk is skipped (no `gap` event, and the
commentary keeps 1-second cadence).  Prints, per N, the chunks and gaps seen and the
median and p99 latency (chunk end -> event sent), then the largest N with no gap.
Figures only: never pass/fail.  Loopback only.
usage: bench_daemon.py [MODEL_DIR] [WINDOW_S] [MAX_N]
"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON = os.path.join(ROOT, "build", "bin", "commentaryd")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


async def watch(url, window, out):
    t_end = time.monotonic() + window
    try:
        async with websockets.connect(url) as ws:
            while time.monotonic() < t_end:
                try:
                    msg = await asyncio.wait_for(ws.recv(), t_end - time.monotonic())
                except asyncio.TimeoutError:
                    break
                out.append(json.loads(msg))
    except Exception as e:  # a refused connection counts as a failed stream
        out.append({"type": "error", "detail": str(e)})


def run(model, n, window):
    port = free_port()
    streams = [{"id": f"s{i}", "source": "test:ball"} for i in range(n)]
    cfg = {"listen": f"127.0.0.1:{port}", "model": model, "backend": "cpu",
           "max_streams": max(16, n), "log_level": "warn", "streams": streams}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    d = subprocess.Popen([DAEMON, "--config", f.name], stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            time.sleep(0.2)
        time.sleep(10)  # warm up: sessions fill their windows
        events = [[] for _ in range(n)]

        async def all_watch():
            await asyncio.gather(*(watch(f"ws://127.0.0.1:{port}/v1/streams/s{i}/events",
                                         window, events[i]) for i in range(n)))
        asyncio.run(all_watch())
    finally:
        d.terminate()
        d.wait(timeout=10)
        os.unlink(f.name)
    com = [e for ev in events for e in ev if e["type"] == "commentary"]
    gaps = sum(int(e["t_end"] - e["t_start"]) for ev in events for e in ev if e["type"] == "gap")
    errors = sum(1 for ev in events for e in ev if e["type"] == "error")
    lat = sorted(e["latency_ms"] for e in com)
    med = lat[len(lat) // 2] if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    expected = n * window
    ok = gaps == 0 and errors == 0 and len(com) >= 0.9 * expected
    return ok, len(com), expected, gaps, med, p99


def main():
    model = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else (
        os.path.join(ROOT, "models", "default") if os.path.exists(
            os.path.join(ROOT, "models", "default", "config.json"))
        else os.path.join(ROOT, "build", "models", "tiny-random"))
    window = float(sys.argv[2]) if len(sys.argv) > 2 else 60
    max_n = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    print(f"bench-daemon: model {model}, {os.cpu_count()} cores, {window:.0f} s per step")
    print(f"{'streams':>8} {'chunks':>8} {'expected':>9} {'skipped_s':>10} {'p50_ms':>8} {'p99_ms':>8}")
    best, n = 0, 1
    while n <= max_n:
        ok, got, exp, gaps, med, p99 = run(model, n, window)
        print(f"{n:8d} {got:8d} {exp:9.0f} {gaps:10d} {med:8.0f} {p99:8.0f}", flush=True)
        if not ok:
            break
        best = n
        n *= 2
    print(f"bench-daemon: {best} concurrent test: streams in real time (no skipped chunk "
          f"over {window:.0f} s)")


if __name__ == "__main__":
    main()
