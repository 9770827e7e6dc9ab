"""daemon_lib.py — what the daemon's Python test drivers (srt_test, whip_test,
pages_test) share: paths, ok/FAIL reporting, free ports, child processes that die with
the driver, and WebSocket event collection.  Loopback only.
"""
import asyncio
import json
import os
import signal
import socket
import sys
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON = os.environ.get("COMMENTARYD_BIN") or os.path.join(ROOT, "build", "bin", "commentaryd")
MODEL = os.path.join(ROOT, "build", "models", "tiny-random")
failures = []  # what check() saw fail, in order


def exit_on_sigterm():
    """`timeout` sends SIGTERM: leave through the finally blocks that stop the children."""
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(124))


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when this process dies (a test timeout must not
    leave a daemon or a browser behind)."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def collect(url, until, timeout):
    """Events of a WS subscription until until(events) holds or timeout."""
    got, t0 = [], time.monotonic()
    try:
        async with websockets.connect(url, max_size=2**20) as ws:
            while not until(got) and time.monotonic() - t0 < timeout:
                try:
                    msg = await asyncio.wait_for(ws.recv(), max(0.1, timeout - (time.monotonic() - t0)))
                except asyncio.TimeoutError:
                    break
                got.append(json.loads(msg))
    except (OSError, websockets.WebSocketException) as e:
        print(f"     ws {url}: {e}", flush=True)
    return got


def n_commentary(evs):
    return sum(1 for e in evs if e["type"] == "commentary")


def states(evs):
    return [e["state"] for e in evs if e["type"] == "status"]
