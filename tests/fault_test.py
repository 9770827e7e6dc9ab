#!/usr/bin/python3
"""What a device fault does to the daemon, on the CPU backend's failpoint
(VLM_CPU_FAULT_AFTER=N: the op after the first N fails, and every op, copy and sync
after it, as a CUDA backend fails after an error mid-stream).  Run by tests/t-fault.sh;
loopback only.

Mid-stream: commentary flows until the fault; then /ready answers 503 naming the
engine failure, the daemon reports STOPPING=1 and a STATUS= naming the failure to
systemd, closes its subscribers with 1001, logs why and exits 1 (the unit's
Restart=on-failure restarts it).  During the warm-up chunk: a load failure, exit 1,
/ready never 200.
"""
import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websockets

from daemon_lib import DAEMON, MODEL, ROOT, check, die_with_parent, exit_on_sigterm, failures, free_port


def ready(port):
    """(status, body) of GET /ready, or None while nothing answers (an answer the exiting
    daemon cut off counts as none)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        try:
            return e.code, e.read().decode()
        except (OSError, http.client.HTTPException):
            return None
    except (OSError, http.client.HTTPException):
        return None


def start(tmp, name, fault_after):
    port = free_port()
    cfg = {
        "listen": f"127.0.0.1:{port}", "model": MODEL, "backend": "cpu", "threads": 1,
        "log_level": "info",
        "policy": {"vision_window": 4, "text_rounds": 4, "prev_sink": 32, "prev_window": 32,
                   "max_new_tokens": 4},
        "streams": [{"id": "demo", "source": "test:", "query": "What is happening?"}],
    }
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(os.path.join(tmp, f"{name}.sock"))
    notify.setblocking(False)
    os.makedirs(os.path.join(ROOT, "build", "test-logs"), exist_ok=True)
    log_path = os.path.join(ROOT, "build", "test-logs", f"fault-{name}.log")
    env = dict(os.environ, VLM_CPU_FAULT_AFTER=str(fault_after),
               NOTIFY_SOCKET=os.path.join(tmp, f"{name}.sock"))
    d = subprocess.Popen([DAEMON, "--config", path], stdout=open(log_path, "w"),
                         stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)
    return d, port, notify, log_path


def notes(sock):
    got = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except BlockingIOError:
            return got


async def mid_stream(tmp):
    # ~200 ops a chunk with the tiny model and these windows (the warm-up chunk takes
    # ~200 too): the fault comes about 6 chunks in.  /ready is polled every 20 ms through
    # the 200 ms the daemon keeps serving after the fault (stop_timer in main.c)
    d, port, notify, log_path = start(tmp, "mid", 1500)
    try:
        t0 = time.monotonic()
        r = None
        while time.monotonic() - t0 < 60 and d.poll() is None:
            r = ready(port)
            if r and r[0] == 200:
                break
            await asyncio.sleep(0.1)
        check(r is not None and r[0] == 200, "mid-stream: /ready turns 200 before the fault")
        answers = []

        async def poll_ready():  # what /ready says until nothing answers
            while d.poll() is None:
                a = await asyncio.get_running_loop().run_in_executor(None, ready, port)
                if a:
                    answers.append(a)
                await asyncio.sleep(0.02)
        poller = asyncio.create_task(poll_ready())
        events, close = [], None
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/v1/streams/demo/events") as ws:
                while time.monotonic() - t0 < 90:
                    events.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        except websockets.ConnectionClosed as e:
            close = e.rcvd.code if e.rcvd else None
        except (OSError, asyncio.TimeoutError) as e:
            print(f"     ws: {e!r}", flush=True)
        n = sum(1 for e in events if e["type"] == "commentary")
        check(n >= 2, f"mid-stream: {n} commentary events before the fault")
        check(close == 1001, f"mid-stream: subscribers closed with 1001 (got {close})")
        try:  # waited for off the event loop: the poller goes on meanwhile
            rc = await asyncio.get_running_loop().run_in_executor(None, d.wait, 20)
        except subprocess.TimeoutExpired:
            rc = None
        await poller
        check(rc == 1, f"mid-stream: the daemon exits 1 for systemd to restart it (got {rc})")
        failed = [b for s, b in answers if s == 503]
        print(f"     /ready answers after warm-up: {len(answers) - len(failed)} x 200, then "
              f"{len(failed)} x 503", flush=True)
        check(failed and "engine failed" in failed[-1],
              f"mid-stream: /ready answers 503 naming the engine failure ({failed[-1:]})")
        log = open(log_path).read()
        check("engine failed, stopping" in log and "injected fault" in log,
              "mid-stream: the log says the engine failed and why")
        sent = notes(notify)
        check(any("STOPPING=1" in s for s in sent), "mid-stream: sd_notify STOPPING=1")
        check(any("STATUS=engine failed" in s and "injected fault" in s for s in sent),
              "mid-stream: sd_notify STATUS= names the engine failure")
    finally:
        if d.poll() is None:
            d.kill()


async def warm_up():
    tmp = tempfile.mkdtemp(prefix="commentaryd-fault-")
    d, port, notify, log_path = start(tmp, "warm", 20)
    try:
        seen = set()
        t0 = time.monotonic()
        while d.poll() is None and time.monotonic() - t0 < 30:
            r = ready(port)
            if r:
                seen.add(r[0])
            await asyncio.sleep(0.05)
        rc = d.poll()
        check(rc == 1, f"warm-up: a fault while loading exits 1 (got {rc})")
        check(200 not in seen, f"warm-up: /ready never 200 (saw {sorted(seen)})")
        log = open(log_path).read()
        check("injected fault" in log, "warm-up: the log names the fault")
        sent = notes(notify)
        check(any("STATUS=model failed to load" in s and "injected fault" in s for s in sent),
              "warm-up: sd_notify STATUS= names the failed load")
    finally:
        if d.poll() is None:
            d.kill()


async def main():
    exit_on_sigterm()
    tmp = tempfile.mkdtemp(prefix="commentaryd-fault-")
    await mid_stream(tmp)
    await warm_up()
    print(f"{len(failures)} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
