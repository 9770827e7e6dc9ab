#!/usr/bin/python3
"""Whether the whole commentaryd daemon stays flat on a long run under churn.

Starts build/bin/commentaryd (or --daemon BIN) with a few config streams on the built-in
test source, an RTSP stream (tests/helpers/rtsp-server, RTP in TCP) and an SRT listener
stream, lets it settle for --baseline seconds with nothing but one observing subscriber
per stream, then applies churn for --duration seconds:

  * WebSocket subscribers joining and leaving all the time (live, ?since=0 replays,
    ?since=N resumes; clean closes and aborted TCP connections; 404 upgrades);
  * slow readers: raw sockets with a tiny receive buffer that complete the upgrade (live,
    or with ?since=0) and then never read, held 1-5 minutes (the daemon should close them with
    1008 after ws.slow_close_s); at the end of each one's hold the script looks whether
    the daemon still owns a socket to it (/proc/PID/fd against /proc/net/tcp);
  * REST: POST /v1/streams of test: streams, GET, PUT .../query, snapshot.jpg, DELETE,
    and the error answers (409, 400, 404, 401);
  * GET /health, /ready, /metrics, /v1/streams, captions.vtt, snapshot.jpg, the pages;
  * SIGHUP reloads with a changed config (a stream added and removed, a stream's source
    changed, a query changed, ws.queue changed) and now and then an invalid file;
  * a file source (a 10 s H.264 clip) added, run to its `ended`, deleted, re-added;
  * the RTSP server killed and restarted (the daemon reconnects with backoff);
  * the SRT caller stopped (EOS, or SIGKILL: the stall watchdog) and started again;

then stops the churn and lets the daemon quiesce for --quiesce seconds, samples once
more and sends SIGTERM.

Every --interval seconds it prints one line: elapsed time, phase, the daemon's VmRSS,
RssAnon and VmSize (MiB), its open fds (sockets / other), threads, TCP connections the
daemon holds on its port, its CPU use over the interval, streams and subscribers (from
/metrics), the commentary events seen by the observers in the interval with their
latency_ms p50/p99 and the seconds reported as gaps, the slowest /health round trip
(a stalled event loop shows there), and the churn done so far.  Then a summary: RSS
slope per hour after --warmup (least squares), fds/threads at baseline, first churn
sample, end of churn and after quiescing, latency p50/p99 of the first and last 5
minutes of churn, what the churn did, and the daemon's exit on SIGTERM.

--malloc-stats (needs gdb): at the end of the baseline and of the quiesce, when the same
streams and subscribers exist, glibc's malloc_stats() of the daemon (bytes in use vs
bytes malloc holds): in use that grows is a leak, held that grows alone is retention.

--sndbuf BYTES: on loopback the kernel lets a socket's send buffer grow to megabytes (64
KB segments), so a subscriber that never reads takes hours to fill it and the daemon's
slow-subscriber path (drop, `dropped`, close 1008) is never reached in a soak.  With this
option the daemon runs with a small LD_PRELOAD shim (compiled with cc into the temp dir)
that sets SO_SNDBUF on every accepted socket, as a real network path would limit it.

Figures only: never pass/fail.  Loopback only (127.0.0.1).  Modest on CPU: the engine
runs with --threads (default 1), the encoders at 320x180/15 fps.
usage: soak_daemon.py [--duration S] [--interval S] [--warmup S] [--baseline S]
                      [--quiesce S] [--model DIR] [--daemon BIN] [--threads N]
                      [--log FILE] [--no-rtsp] [--no-srt] [--no-file] [--seed N]
                      [--malloc-stats] [--sndbuf BYTES] [--log-level LEVEL]
"""
import argparse
import asyncio
import base64
import http.client
import json
import os
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from daemon_lib import free_port  # noqa: E402
TOKEN = "soak-token"
SNDBUF_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/socket.h>
static void shrink(int fd) {
    const char *e = getenv("SOAK_SNDBUF");
    int v = e ? atoi(e) : 4096;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
}
int accept(int s, struct sockaddr *a, socklen_t *l) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int fd = real(s, a, l);
    shrink(fd);
    return fd;
}
int accept4(int s, struct sockaddr *a, socklen_t *l, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int fd = real(s, a, l, flags);
    shrink(fd);
    return fd;
}
"""
TEST_SOURCES = ["test:ball", "test:smpte", "test:snow", "test:checkers-8", "test:",
                "test:ball?foreground-color=0xffff0000&background-color=0xff0000ff"]


def die_with_parent():
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))]


class Stats:
    """What the churn did (counts by kind), and answers it did not expect."""

    def __init__(self):
        self.n = {}
        self.unexpected = []

    def inc(self, k, by=1):
        self.n[k] = self.n.get(k, 0) + by

    def odd(self, what):
        self.inc("unexpected")
        if len(self.unexpected) < 50:
            self.unexpected.append(f"{time.strftime('%H:%M:%S')} {what}")


class Soak:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.mkdtemp(prefix="commentaryd-soak-")
        self.cfg_path = os.path.join(self.tmp, "commentaryd.json")
        self.st = Stats()
        self.lat = []        # (mono, stream, latency_ms) of every commentary event observed
        self.gaps = []       # (mono, stream, seconds, reason)
        self.health_rtt = [] # (mono, seconds)
        self.samples = []
        self.stop_churn = asyncio.Event()
        self.done = asyncio.Event()
        self.phase = "start"
        self.reload_n = 0
        self.rtsp = self.srt = None
        self.rtsp_port = free_port()
        self.srt_port = free_port(socket.SOCK_DGRAM)
        self.slow_held_after = []  # per slow reader: True if the daemon still held it at the end
        self.prev_cpu = None
        self.mstats = []  # (label, bytes malloc holds, bytes in use, VmRSS MiB)

    # ---- config and daemon ----

    def config(self, variant):
        streams = [{"id": "s0", "source": "test:ball", "query": "What moves?"},
                   {"id": "s1", "source": "test:smpte"},
                   {"id": "s2", "source": "test:", "query": "Describe what happens on screen."},
                   {"id": "r0", "source": "test:snow",
                    "query": "Reload query %d" % (variant % 3)},
                   {"id": "r2", "source": "test:checkers-8" if variant % 2 else "test:smpte"}]
        if variant % 2:  # a config stream that comes and goes with reloads
            streams.append({"id": "r1", "source": "test:ball"})
        if not self.a.no_rtsp:
            streams.append({"id": "rtsp", "source": f"rtspt://127.0.0.1:{self.rtsp_port}/test"})
        if not self.a.no_srt:
            streams.append({"id": "srt", "source": f"srt://127.0.0.1:{self.srt_port}?mode=listener"})
        return {"listen": f"127.0.0.1:{self.port}", "model": self.a.model, "backend": "cpu",
                "threads": self.a.threads, "token": TOKEN, "max_streams": 16, "history": 256,
                "log_level": self.a.log_level,
                "ws": {"queue": 64 if variant % 2 == 0 else 48, "slow_close_s": 10},
                "ingest": {"reconnect_min_s": 0.5, "reconnect_max_s": 4, "latency_ms": 200},
                "streams": streams}

    def write_config(self, cfg):
        tmp = self.cfg_path + ".tmp"
        with open(tmp, "w") as f:
            if isinstance(cfg, str):
                f.write(cfg)
            else:
                json.dump(cfg, f, indent=1)
        os.replace(tmp, self.cfg_path)

    def start_daemon(self):
        self.write_config(self.config(0))
        self.log = open(self.a.log, "w")
        env = dict(os.environ)
        if self.a.sndbuf:
            src, so = os.path.join(self.tmp, "sndbuf.c"), os.path.join(self.tmp, "sndbuf.so")
            with open(src, "w") as f:
                f.write(SNDBUF_SHIM)
            subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl"], check=True)
            env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), so]))
            env["SOAK_SNDBUF"] = str(self.a.sndbuf)
            if "ASAN_OPTIONS" in env:  # the shim comes before libasan in the list
                env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
        self.d = subprocess.Popen([self.a.daemon, "--config", self.cfg_path], stdout=self.log,
                                  stderr=subprocess.STDOUT, preexec_fn=die_with_parent, env=env)
        self.pid = self.d.pid
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            if self.d.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.d.returncode}); see {self.a.log}")
            try:
                with urllib.request.urlopen(self.base + "/ready", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except Exception:
                pass
            time.sleep(0.3)
        raise RuntimeError("the daemon was not ready in 300 s")

    # ---- helpers for the external sources ----

    def start_rtsp(self):
        p = subprocess.Popen([os.path.join(ROOT, "build", "tests", "helpers", "rtsp-server"),
                              str(self.rtsp_port)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent)
        line = p.stdout.readline()
        if "ready" not in line:
            p.kill()
            p.wait()
            self.st.odd(f"rtsp-server did not start: {line!r}")
            return None
        return p

    def start_srt_caller(self):
        desc = ("videotestsrc is-live=true pattern=ball ! "
                "video/x-raw,width=320,height=180,framerate=15/1 ! videoconvert ! "
                "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=300 ! "
                "h264parse config-interval=-1 ! mpegtsmux alignment=7 ! "
                f"srtsink uri=\"srt://127.0.0.1:{self.srt_port}?mode=caller&latency=200&pkt_size=1316\"")
        return subprocess.Popen(["gst-launch-1.0", "-q", "-e"] + desc.split(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)

    @staticmethod
    def stop_proc(p, sig=signal.SIGTERM):
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def make_clip(self):
        clip = os.path.join(self.tmp, "clip.mp4")
        r = subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=300",
                            "pattern=ball", "!", "video/x-raw,width=320,height=180,framerate=30/1",
                            "!", "x264enc", "speed-preset=ultrafast", "!", "mp4mux", "!",
                            "filesink", f"location={clip}"], capture_output=True)
        return clip if r.returncode == 0 else None

    # ---- HTTP ----

    def http(self, method, path, body=None, token=TOKEN, timeout=10):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except Exception as e:  # noqa: BLE001 (a refused/timed out request is a figure)
            return -1, str(e).encode()

    async def ahttp(self, method, path, body=None, token=TOKEN, expect=None, timeout=10):
        st, data = await asyncio.to_thread(self.http, method, path, body, token, timeout)
        self.st.inc(f"http {method}")
        if expect is not None and st not in (expect if isinstance(expect, tuple) else (expect,)):
            self.st.odd(f"{method} {path} -> {st} (want {expect}) {data[:120]!r}")
        return st, data

    def stream_ids(self):
        st, data = self.http("GET", "/v1/streams")
        if st != 200:
            return []
        try:
            return [s["id"] for s in json.loads(data)["streams"]]
        except (ValueError, KeyError):
            return []

    # ---- /proc sampling ----

    def tcp_inodes(self):
        """inode -> (local port, remote port, state) of every IPv4/IPv6 TCP socket."""
        out = {}
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(name) as f:
                    next(f)
                    for line in f:
                        p = line.split()
                        out[p[9]] = (int(p[1].rsplit(":", 1)[1], 16),
                                     int(p[2].rsplit(":", 1)[1], 16), p[3])
            except OSError:
                pass
        return out

    def daemon_sockets(self):
        """(total fds, socket fds, remote ports of the daemon's TCP sockets on its port)."""
        fds, socks, inodes = 0, 0, []
        try:
            for fd in os.listdir(f"/proc/{self.pid}/fd"):
                fds += 1
                try:
                    t = os.readlink(f"/proc/{self.pid}/fd/{fd}")
                except OSError:
                    continue
                if t.startswith("socket:["):
                    socks += 1
                    inodes.append(t[8:-1])
        except OSError:
            return 0, 0, []
        tcp = self.tcp_inodes()
        remote = [tcp[i][1] for i in inodes if i in tcp and tcp[i][0] == self.port and tcp[i][1]]
        return fds, socks, remote

    def proc_status(self):
        st = {}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    st[k] = v.strip()
        except OSError:
            return None
        kb = lambda k: int(st.get(k, "0 kB").split()[0])  # noqa: E731
        with open(f"/proc/{self.pid}/stat") as f:
            p = f.read().rsplit(")", 1)[1].split()
        cpu = (int(p[11]) + int(p[12])) / os.sysconf("SC_CLK_TCK")
        return {"rss": kb("VmRSS") / 1024, "anon": kb("RssAnon") / 1024,
                "vsz": kb("VmSize") / 1024, "threads": int(st.get("Threads", 0)), "cpu": cpu}

    def metrics(self):
        st, data = self.http("GET", "/metrics", token=None)
        m = {}
        if st == 200:
            for line in data.decode().splitlines():
                if line.startswith("#") or " " not in line:
                    continue
                k, v = line.rsplit(" ", 1)
                name = k.split("{")[0]
                try:
                    m[name] = m.get(name, 0) + float(v)
                except ValueError:
                    pass
        return m

    def malloc_stats(self, label):
        """glibc malloc_stats() of the daemon (it prints to its stderr, the log): the
        totals line, as (held, in use) bytes."""
        self.log.flush()
        r = subprocess.run(["gdb", "-p", str(self.pid), "-batch", "-nx", "-ex",
                            "call (void)malloc_stats()"], capture_output=True, text=True)
        time.sleep(0.5)
        try:
            with open(self.a.log) as f:
                tail = f.read().rsplit("Total (incl. mmap):", 1)[1].split("\n")
            held, used = (int(tail[i].split("=")[1]) for i in (1, 2))
        except (OSError, IndexError, ValueError):
            self.st.odd(f"malloc_stats ({label}): gdb rc {r.returncode}")
            return
        self.mstats.append((label, held, used, self.proc_status()["rss"]))

    def sample(self, t_start):
        now = time.monotonic()
        ps = self.proc_status()
        if ps is None:
            return None
        fds, socks, remote = self.daemon_sockets()
        m = self.metrics()
        t_prev = self.samples[-1]["mono"] if self.samples else t_start
        lat = [l for (t, _, l) in self.lat if t_prev < t <= now]
        gap_s = sum(g for (t, _, g, _) in self.gaps if t_prev < t <= now)
        rtt = [r for (t, r) in self.health_rtt if t_prev < t <= now]
        cpu = (ps["cpu"] - self.prev_cpu[1]) / (now - self.prev_cpu[0]) * 100 if self.prev_cpu else 0
        self.prev_cpu = (now, ps["cpu"])
        s = dict(mono=now, t=now - t_start, phase=self.phase, fds=fds, socks=socks,
                 conns=len(remote), streams=int(m.get("commentary_streams", -1)),
                 subs=int(m.get("commentary_subscribers", -1)), n_lat=len(lat),
                 p50=pct(lat, 0.5), p99=pct(lat, 0.99), gap_s=gap_s,
                 health_max=max(rtt) if rtt else float("nan"), cpu_pct=cpu,
                 dropped=int(m.get("commentary_messages_dropped_total", 0)),
                 slow_closed=int(m.get("commentary_slow_subscribers_closed_total", 0)),
                 reconnects=int(m.get("commentary_reconnects_total", 0)), **ps)
        self.samples.append(s)
        n = self.st.n
        print(f"{s['t']:7.0f} {s['phase']:>8} {s['rss']:8.1f} {s['anon']:8.1f} {s['vsz']:8.0f} "
              f"{s['fds']:4d} {s['socks']:4d} {s['threads']:4d} {s['conns']:4d} {s['cpu_pct']:5.0f} "
              f"{s['streams']:3d} {s['subs']:4d} {s['n_lat']:5d} {s['p50']:7.1f} {s['p99']:7.1f} "
              f"{s['gap_s']:5.0f} {s['health_max'] * 1e3:7.1f}  "
              f"ws={n.get('ws open', 0)} slow={n.get('slow open', 0)} "
              f"post={n.get('rest create', 0)} del={n.get('rest delete', 0)} "
              f"hup={self.reload_n} file={n.get('file ended', 0)} "
              f"rtsp={n.get('rtsp restart', 0)} srt={n.get('srt restart', 0)} "
              f"odd={n.get('unexpected', 0)}", flush=True)
        return s

    # ---- actors ----

    async def observer(self, sid):
        """One subscriber per config stream for the whole run: the latency figures."""
        url = f"ws://127.0.0.1:{self.port}/v1/streams/{sid}/events?token={TOKEN}"
        while not self.done.is_set():
            try:
                async with websockets.connect(url, max_size=2**20, open_timeout=10) as ws:
                    while not self.done.is_set():
                        try:
                            msg = await asyncio.wait_for(ws.recv(), 2)
                        except asyncio.TimeoutError:
                            continue
                        e = json.loads(msg)
                        if e["type"] == "commentary":
                            self.lat.append((time.monotonic(), sid, e["latency_ms"]))
                        elif e["type"] == "gap":
                            self.gaps.append((time.monotonic(), sid, e["t_end"] - e["t_start"],
                                              e["reason"]))
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                pass
            await asyncio.sleep(1)

    async def one_subscriber(self, sid):
        kind = self.rng.random()
        q = ""
        if kind < 0.3:
            q = "&since=0"
        elif kind < 0.5:
            q = f"&since={self.rng.randint(1, 400)}"
        url = f"ws://127.0.0.1:{self.port}/v1/streams/{sid}/events?token={TOKEN}{q}"
        hold = self.rng.uniform(1, 30)
        abort = self.rng.random() < 0.3
        try:
            ws = await websockets.connect(url, max_size=2**20, open_timeout=10)
        except websockets.InvalidStatusCode as e:
            self.st.inc(f"ws refused {e.status_code}")
            return
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
            self.st.odd(f"ws connect {sid}: {e!r}")
            return
        self.st.inc("ws open")
        t_end = time.monotonic() + hold
        try:
            while time.monotonic() < t_end and not self.stop_churn.is_set():
                try:
                    await asyncio.wait_for(ws.recv(), max(0.05, t_end - time.monotonic()))
                    self.st.inc("ws events")
                except asyncio.TimeoutError:
                    break
        except websockets.ConnectionClosed:
            self.st.inc("ws closed by daemon")
        if abort:
            ws.transport.abort()
            self.st.inc("ws aborted")
        else:
            try:
                await asyncio.wait_for(ws.close(), 5)
            except (asyncio.TimeoutError, websockets.WebSocketException, OSError):
                pass

    async def sub_churn(self):
        tasks = set()
        while not self.stop_churn.is_set():
            await asyncio.sleep(self.rng.uniform(0.5, 2.5))
            tasks = {t for t in tasks if not t.done()}
            if len(tasks) >= 12:
                continue
            ids = await asyncio.to_thread(self.stream_ids)
            if self.rng.random() < 0.05 or not ids:
                sid = "no-such-stream"
            else:
                sid = self.rng.choice(ids)
            tasks.add(asyncio.create_task(self.one_subscriber(sid)))
        await asyncio.gather(*tasks, return_exceptions=True)

    def slow_reader_open(self, sid, since):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.settimeout(10)
        s.connect(("127.0.0.1", self.port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /v1/streams/{sid}/events?token={TOKEN}{since} HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            c = s.recv(1)
            if not c:
                break
            head += c
        if not head.startswith(b"HTTP/1.1 101"):
            s.close()
            return None, head[:40]
        return s, head[:40]

    async def slow_reader(self, sid, hold):
        since = "&since=0" if self.rng.random() < 0.5 else ""
        kind = "since=0" if since else "live"
        try:
            s, head = await asyncio.to_thread(self.slow_reader_open, sid, since)
        except OSError as e:
            self.st.odd(f"slow reader connect: {e!r}")
            return
        if s is None:
            self.st.inc("slow refused")
            return
        self.st.inc("slow open")
        lport = s.getsockname()[1]
        t_end = time.monotonic() + hold
        while time.monotonic() < t_end and not self.stop_churn.is_set():
            await asyncio.sleep(1)
        # does the daemon still own a socket to this client?  (it should have closed it)
        _, _, remote = await asyncio.to_thread(self.daemon_sockets)
        held = lport in remote
        self.slow_held_after.append((kind, hold, held))
        self.st.inc("slow held by daemon at end" if held else "slow gone at end")
        if self.rng.random() < 0.5:  # a reset rather than a FIN
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()

    async def slow_churn(self):
        tasks = set()
        while not self.stop_churn.is_set():
            tasks = {t for t in tasks if not t.done()}
            if len(tasks) < 3:
                ids = await asyncio.to_thread(self.stream_ids)
                ids = [i for i in ids if i in ("s0", "s1", "s2", "r0")] or ids
                if ids:
                    tasks.add(asyncio.create_task(
                        self.slow_reader(self.rng.choice(ids), self.rng.uniform(60, 300))))
            await asyncio.sleep(self.rng.uniform(10, 30))
        await asyncio.gather(*tasks, return_exceptions=True)

    async def rest_stream(self, n):
        sid = f"churn-{n}"
        src = self.rng.choice(TEST_SOURCES)
        st, _ = await self.ahttp("POST", "/v1/streams", {"id": sid, "source": src,
                                                         "query": "What is on screen?"},
                                 expect=(201, 429))
        if st != 201:
            return
        self.st.inc("rest create")
        life = time.monotonic() + self.rng.uniform(15, 45)
        while time.monotonic() < life and not self.stop_churn.is_set():
            await asyncio.sleep(self.rng.uniform(2, 6))
            r = self.rng.random()
            if r < 0.3:
                await self.ahttp("GET", f"/v1/streams/{sid}", expect=200)
            elif r < 0.5:
                await self.ahttp("PUT", f"/v1/streams/{sid}/query",
                                 {"query": f"Query {self.rng.randint(0, 999)}"}, expect=200)
            elif r < 0.6:
                await self.ahttp("PATCH", f"/v1/streams/{sid}", {"query": "Patched"}, expect=200)
            elif r < 0.8:
                await self.ahttp("GET", f"/v1/streams/{sid}/snapshot.jpg", expect=(200, 404))
            else:
                await self.ahttp("GET", f"/v1/streams/{sid}/captions.vtt", expect=200)
        await self.ahttp("DELETE", f"/v1/streams/{sid}", expect=204)
        self.st.inc("rest delete")

    async def rest_churn(self):
        tasks, n = set(), 0
        while not self.stop_churn.is_set():
            tasks = {t for t in tasks if not t.done()}
            if len(tasks) < 2:
                n += 1
                tasks.add(asyncio.create_task(self.rest_stream(n)))
            await asyncio.sleep(self.rng.uniform(3, 10))
            # the error answers
            r = self.rng.random()
            if r < 0.2:
                await self.ahttp("POST", "/v1/streams", {"id": "s0", "source": "test:ball"},
                                 expect=409)
            elif r < 0.35:
                await self.ahttp("POST", "/v1/streams", {"id": "bad", "source": "nope://x"},
                                 expect=400)
            elif r < 0.45:
                await self.ahttp("POST", "/v1/streams", {"id": "bad", "source": "test:nopattern"},
                                 expect=400)
            elif r < 0.55:
                await self.ahttp("GET", "/v1/streams/nope", expect=404)
            elif r < 0.65:
                await self.ahttp("DELETE", "/v1/streams/nope", expect=404)
            elif r < 0.75:
                await self.ahttp("GET", "/v1/streams", token="wrong", expect=401)
            elif r < 0.8:
                await self.ahttp("POST", "/v1/streams", {"id": 5}, expect=400)
        await asyncio.gather(*tasks, return_exceptions=True)

    def keepalive_gets(self, paths):
        """Several requests on one HTTP/1.1 connection (lws keep-alive)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for p in paths:
                c.request("GET", p, headers={"Authorization": "Bearer " + TOKEN})
                r = c.getresponse()
                r.read()
                self.st.inc("http keepalive")
        except (OSError, http.client.HTTPException) as e:
            self.st.odd(f"keep-alive GET: {e!r}")
        finally:
            c.close()

    async def poller(self):
        while not self.stop_churn.is_set():
            await asyncio.sleep(self.rng.uniform(0.5, 2))
            ids = await asyncio.to_thread(self.stream_ids) or ["s0"]
            sid = self.rng.choice(ids)
            r = self.rng.random()
            if r < 0.15:
                await self.ahttp("GET", "/metrics", token=None, expect=200)
            elif r < 0.25:
                await self.ahttp("GET", "/ready", token=None, expect=200)
            elif r < 0.45:
                await self.ahttp("GET", f"/v1/streams/{sid}/captions.vtt", expect=(200, 404))
            elif r < 0.6:
                await self.ahttp("GET", f"/v1/streams/{sid}/snapshot.jpg", expect=(200, 404))
            elif r < 0.7:
                await self.ahttp("GET", "/v1/streams", expect=200)
            elif r < 0.8:
                await self.ahttp("GET", self.rng.choice(["/", "/overlay/s0", "/web/nope"]),
                                 token=None, expect=(200, 404))
            else:
                await asyncio.to_thread(self.keepalive_gets,
                                        ["/health", "/metrics", f"/v1/streams/{sid}",
                                         f"/v1/streams/{sid}/captions.vtt"])

    async def health_probe(self):
        """/health every 2 s for the whole run: its round trip shows loop stalls."""
        while not self.done.is_set():
            t0 = time.monotonic()
            st, _ = await asyncio.to_thread(self.http, "GET", "/health", None, None, 30)
            self.health_rtt.append((time.monotonic(), time.monotonic() - t0))
            if st != 200:
                self.st.odd(f"/health -> {st}")
            await asyncio.sleep(2)

    async def reloader(self):
        while not self.stop_churn.is_set():
            try:
                await asyncio.wait_for(self.stop_churn.wait(), self.rng.uniform(40, 80))
                break
            except asyncio.TimeoutError:
                pass
            self.reload_n += 1
            if self.reload_n % 7 == 0:  # an invalid file: the old config stays
                self.write_config('{"listen": "127.0.0.1:%d", "nosuchkey": 1' % self.port)
                self.st.inc("reload invalid")
            else:
                self.write_config(self.config(self.reload_n))
            self.d.send_signal(signal.SIGHUP)
        self.write_config(self.config(0))  # quiesce with the starting config
        self.d.send_signal(signal.SIGHUP)

    async def file_churn(self, clip):
        while not self.stop_churn.is_set():
            st, body = await self.ahttp("POST", "/v1/streams", {"id": "file", "source": clip},
                                        expect=(201, 429))
            if st == 201:
                self.st.inc("file added")
                t0 = time.monotonic()
                state = None
                while time.monotonic() - t0 < 90 and not self.stop_churn.is_set():
                    await asyncio.sleep(2)
                    st, data = await self.ahttp("GET", "/v1/streams/file", expect=200)
                    if st == 200:
                        state = json.loads(data)["state"]
                        if state == "ended":
                            break
                if state == "ended":
                    self.st.inc("file ended")
                elif not self.stop_churn.is_set():
                    self.st.odd(f"file stream not ended after 90 s (state {state})")
                await self.ahttp("DELETE", "/v1/streams/file", expect=204)
            try:
                await asyncio.wait_for(self.stop_churn.wait(), self.rng.uniform(15, 40))
            except asyncio.TimeoutError:
                pass

    async def rtsp_flapper(self):
        while not self.stop_churn.is_set():
            try:
                await asyncio.wait_for(self.stop_churn.wait(), self.rng.uniform(90, 180))
                break
            except asyncio.TimeoutError:
                pass
            self.stop_proc(self.rtsp)
            self.st.inc("rtsp stop")
            await asyncio.sleep(self.rng.uniform(5, 30))  # failed reconnects meanwhile
            self.rtsp = await asyncio.to_thread(self.start_rtsp)
            self.st.inc("rtsp restart")

    async def srt_flapper(self):
        while not self.stop_churn.is_set():
            try:
                await asyncio.wait_for(self.stop_churn.wait(), self.rng.uniform(45, 120))
                break
            except asyncio.TimeoutError:
                pass
            # EOS (OBS's Stop Streaming) or a caller that vanishes (the stall watchdog)
            sig = signal.SIGINT if self.rng.random() < 0.6 else signal.SIGKILL
            self.stop_proc(self.srt, sig)
            self.st.inc("srt stop " + ("eos" if sig == signal.SIGINT else "kill"))
            await asyncio.sleep(self.rng.uniform(3, 20))
            self.srt = self.start_srt_caller()
            self.st.inc("srt restart")

    # ---- the run ----

    async def run(self):
        a = self.a
        clip = None if a.no_file else self.make_clip()
        if not a.no_rtsp:
            self.rtsp = self.start_rtsp()
        if not a.no_srt:
            self.srt = self.start_srt_caller()
        ready_s = self.start_daemon()
        print(f"soak-daemon: {a.daemon} pid {self.pid}, model {a.model}, {os.cpu_count()} cores, "
              f"ready in {ready_s:.1f} s; port {self.port}; log {a.log}")
        print(f"soak-daemon: baseline {a.baseline:.0f} s, churn {a.duration:.0f} s, quiesce "
              f"{a.quiesce:.0f} s, a sample every {a.interval:.0f} s; warm-up for the slope "
              f"{a.warmup:.0f} s of churn")
        print(f"{'t_s':>7} {'phase':>8} {'rss_MiB':>8} {'anon':>8} {'vsz':>8} {'fds':>4} "
              f"{'sock':>4} {'thr':>4} {'conn':>4} {'cpu%':>5} {'str':>3} {'subs':>4} "
              f"{'n_ev':>5} {'p50_ms':>7} {'p99_ms':>7} {'gap_s':>5} {'hlth_ms':>7}  churn so far",
              flush=True)
        t_start = time.monotonic()
        config_ids = [s["id"] for s in self.config(0)["streams"]]
        bg = [asyncio.create_task(self.observer(i)) for i in config_ids]
        bg.append(asyncio.create_task(self.health_probe()))

        async def sample_until(t_end):
            while time.monotonic() < t_end:
                await asyncio.sleep(min(a.interval, max(0.1, t_end - time.monotonic())))
                if self.d.poll() is not None:
                    raise RuntimeError(f"the daemon exited ({self.d.returncode}); see {a.log}")
                await asyncio.to_thread(self.sample, t_start)

        self.phase = "baseline"
        await sample_until(time.monotonic() + a.baseline)
        if a.malloc_stats:
            await asyncio.to_thread(self.malloc_stats, "end of baseline")
        self.phase = "churn"
        self.churn_t0 = time.monotonic()
        churn = [asyncio.create_task(c) for c in
                 (self.sub_churn(), self.slow_churn(), self.rest_churn(), self.poller(),
                  self.reloader())]
        if clip:
            churn.append(asyncio.create_task(self.file_churn(clip)))
        if not a.no_rtsp:
            churn.append(asyncio.create_task(self.rtsp_flapper()))
        if not a.no_srt:
            churn.append(asyncio.create_task(self.srt_flapper()))
        await sample_until(self.churn_t0 + a.duration)
        self.churn_t1 = time.monotonic()
        self.stop_churn.set()
        await asyncio.gather(*churn, return_exceptions=True)
        # the external sources up again for the quiesce, as at baseline
        if not a.no_rtsp and (not self.rtsp or self.rtsp.poll() is not None):
            self.rtsp = self.start_rtsp()
        if not a.no_srt and (not self.srt or self.srt.poll() is not None):
            self.srt = self.start_srt_caller()
        self.phase = "quiesce"
        await sample_until(time.monotonic() + a.quiesce)
        if a.malloc_stats:
            await asyncio.to_thread(self.malloc_stats, "end of quiesce")
        self.done.set()
        await asyncio.gather(*bg, return_exceptions=True)
        # SIGTERM: exit status and time
        t0 = time.monotonic()
        self.d.send_signal(signal.SIGTERM)
        try:
            rc = self.d.wait(timeout=120)
        except subprocess.TimeoutExpired:
            rc = None
            self.d.kill()
            self.d.wait()
        self.exit = (rc, time.monotonic() - t0)
        self.stop_proc(self.rtsp)
        self.stop_proc(self.srt, signal.SIGINT)
        self.summary()

    def summary(self):
        a, S = self.a, self.samples
        print("\nsoak-daemon summary")
        churn = [s for s in S if s["phase"] == "churn"]
        base = [s for s in S if s["phase"] == "baseline"]
        qui = [s for s in S if s["phase"] == "quiesce"]
        after = [s for s in churn if s["mono"] - self.churn_t0 >= a.warmup]

        def slope(key, pts):
            if len(pts) < 3:
                return float("nan")
            xs = [p["mono"] / 3600 for p in pts]
            ys = [p[key] for p in pts]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            sxx = sum((x - mx) ** 2 for x in xs)
            return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")

        span = (after[-1]["mono"] - after[0]["mono"]) / 60 if len(after) > 1 else 0
        print(f"  RSS slope after {a.warmup:.0f} s of churn ({len(after)} samples over "
              f"{span:.0f} min): VmRSS {slope('rss', after):+.1f} MiB/h, RssAnon "
              f"{slope('anon', after):+.1f} MiB/h, VmSize {slope('vsz', after):+.1f} MiB/h")
        if after:
            print(f"  VmRSS after warm-up: first {after[0]['rss']:.1f}, min "
                  f"{min(s['rss'] for s in after):.1f}, max {max(s['rss'] for s in after):.1f}, "
                  f"last {after[-1]['rss']:.1f} MiB")
        print(f"  slope of fds {slope('fds', after):+.2f}/h, threads {slope('threads', after):+.2f}/h "
              f"(after warm-up)")

        def row(name, s):
            if not s:
                return
            print(f"  {name:<22} rss {s['rss']:7.1f} MiB  fds {s['fds']:4d} (sockets {s['socks']:3d})"
                  f"  threads {s['threads']:4d}  daemon-held conns {s['conns']:3d}  streams "
                  f"{s['streams']:3d}  subscribers {s['subs']:3d}")
        row("baseline (last)", base[-1] if base else None)
        row("churn (first sample)", churn[0] if churn else None)
        row("churn (last sample)", churn[-1] if churn else None)
        row("quiesced (last)", qui[-1] if qui else None)
        w = 300
        first = [l for (t, _, l) in self.lat if self.churn_t0 <= t < self.churn_t0 + w]
        last = [l for (t, _, l) in self.lat if self.churn_t1 - w <= t < self.churn_t1]
        basel = [l for (t, _, l) in self.lat if t < self.churn_t0]
        print(f"  latency_ms baseline     p50 {pct(basel, .5):7.1f}  p99 {pct(basel, .99):7.1f}"
              f"  max {max(basel, default=float('nan')):7.1f}  (n={len(basel)})")
        print(f"  latency_ms first 5 min  p50 {pct(first, .5):7.1f}  p99 {pct(first, .99):7.1f}"
              f"  max {max(first, default=float('nan')):7.1f}  (n={len(first)})")
        print(f"  latency_ms last 5 min   p50 {pct(last, .5):7.1f}  p99 {pct(last, .99):7.1f}"
              f"  max {max(last, default=float('nan')):7.1f}  (n={len(last)})")
        rt = [r for (t, r) in self.health_rtt if self.churn_t0 <= t < self.churn_t1]
        print(f"  /health round trip during churn: p50 {pct(rt, .5) * 1e3:.1f} ms, p99 "
              f"{pct(rt, .99) * 1e3:.1f} ms, max {max(rt, default=float('nan')) * 1e3:.1f} ms")
        reasons = {}
        for (_, _, g, why) in self.gaps:
            reasons[why] = reasons.get(why, 0) + g
        print(f"  gap seconds seen by the observers: {reasons or 'none'}")
        for kind in ("live", "since=0"):
            sr = [(h, held) for (k, h, held) in self.slow_held_after if k == kind]
            held = [h for (h, x) in sr if x]
            print(f"  slow readers ({kind}): {len(sr)} finished their hold of 60-300 s; the daemon "
                  f"still had a socket to {len(held)} of them then (their holds "
                  f"{min(held, default=0):.0f}..{max(held, default=0):.0f} s; it drops one only "
                  f"once its queue is full, then slow_close_s = 10 s)")
        if S:
            print(f"  daemon counters at the end: messages dropped {S[-1]['dropped']}, slow "
                  f"subscribers closed {S[-1]['slow_closed']}, reconnects {S[-1]['reconnects']}")
        print("  churn: " + ", ".join(f"{k} {v}" for k, v in sorted(self.st.n.items())))
        for u in self.st.unexpected:
            print("  unexpected: " + u)
        for (label, held, used, rss) in self.mstats:
            print(f"  malloc at the {label:<16}: in use {used / 2**20:7.1f} MiB, held "
                  f"{held / 2**20:7.1f} MiB (VmRSS {rss:.1f} MiB)")
        rc, secs = self.exit
        print(f"  SIGTERM: exit status {rc} after {secs:.1f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=2700, help="churn seconds (default 2700)")
    p.add_argument("--interval", type=float, default=30, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=300,
                   help="churn seconds left out of the RSS slope (default 300)")
    p.add_argument("--baseline", type=float, default=90, help="seconds before the churn")
    p.add_argument("--quiesce", type=float, default=90, help="seconds after the churn")
    p.add_argument("--model", default=None)
    p.add_argument("--daemon", default=os.path.join(ROOT, "build", "bin", "commentaryd"))
    p.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    p.add_argument("--log", default=os.path.join(ROOT, "build", "soak-daemon.log"))
    p.add_argument("--no-rtsp", action="store_true")
    p.add_argument("--no-srt", action="store_true")
    p.add_argument("--no-file", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-level", default="info", help="the daemon's log_level (default info)")
    p.add_argument("--malloc-stats", action="store_true",
                   help="glibc malloc_stats() at the end of baseline and quiesce (gdb)")
    p.add_argument("--sndbuf", type=int, default=0,
                   help="SO_SNDBUF of the daemon's accepted sockets (LD_PRELOAD shim)")
    a = p.parse_args()
    if a.model is None:
        a.model = os.path.join(ROOT, "models", "default") if os.path.exists(
            os.path.join(ROOT, "models", "default", "config.json")) else os.path.join(
            ROOT, "build", "models", "tiny-random")
    os.makedirs(os.path.dirname(os.path.abspath(a.log)), exist_ok=True)
    s = Soak(a)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    try:
        asyncio.run(s.run())
    finally:
        for proc in (getattr(s, "d", None), s.rtsp, s.srt):
            if proc and proc.poll() is None:
                proc.kill()


if __name__ == "__main__":
    main()
