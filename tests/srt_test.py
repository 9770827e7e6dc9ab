#!/usr/bin/python3
"""SRT ingest as OBS sends it (run by tests/t-srt.sh).  Loopback only (127.0.0.1).

The daemon listens with an `srt://127.0.0.1:PORT?mode=listener` stream (the tiny random
model, a bearer token); the publisher is what OBS's SRT output sends: H.264 and AAC in
MPEG-TS, `h264parse config-interval=-1 ! mpegtsmux alignment=7 ! srtsink` in caller
mode, latency and pkt_size in the URI (gst-launch-1.0).  Checked: the stream goes live and
commentary events arrive; the latest frame is a JPEG; when the caller stops (EOS, like
OBS's "Stop Streaming") the stream reports reconnecting ("the caller left") and listens
again; a second caller, 3 s later, is picked up and commentary resumes, the seconds
between being a gap "no frames from the source"; a stream added over REST (as
the dashboard's form does) takes a caller too, and when that caller is killed the status
says the connection was lost (not that the caller left); a caller behind a relay that loses one
data packet in 25 for good shows as video breaks (in /metrics and a warning) while the
commentary goes on, where the clean callers show none; when that relay then passes
nothing for 4.5 s, the lost seconds are reported as gaps while it lasts.  Bounded: about
60 s.
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_lib import (DAEMON, MODEL, ROOT, check, collect, die_with_parent,  # noqa: E402
                        exit_on_sigterm, failures, free_port, n_commentary, states)

TOKEN = "srt-s3cret"


def http(method, url, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if body:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def obs_caller(port, audio, latency=200):
    """gst-launch-1.0 sending like OBS's SRT output; stop it with SIGINT (-e: EOS)."""
    aac = ("audiotestsrc is-live=true wave=ticks ! audioconvert ! audioresample ! "
           "avenc_aac ! aacparse ! mux. ") if audio else ""
    desc = ("videotestsrc is-live=true pattern=ball ! "
            "video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! "
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=1500 ! "
            "h264parse config-interval=-1 ! mpegtsmux name=mux alignment=7 ! "
            f"srtsink uri=\"srt://127.0.0.1:{port}?mode=caller&latency={latency}&pkt_size=1316\" "
            + aac)
    return subprocess.Popen(["gst-launch-1.0", "-q", "-e"] + desc.split(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class LossyRelay(threading.Thread):
    """UDP between an SRT caller (sending to 127.0.0.1:port) and a listener (127.0.0.1:
    target) that drops every data packet whose sequence number is 7 modulo 25, its
    retransmissions too: a loss SRT cannot repair, as on a bad link past the latency; with
    blackout set, nothing at all."""

    def __init__(self, port, target):
        super().__init__(daemon=True)
        self.down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.down.bind(("127.0.0.1", port))
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect(("127.0.0.1", target))
        self.caller, self.dropped, self.running, self.blackout = None, 0, True, False

    def run(self):
        import select
        while self.running:
            for sock in select.select([self.down, self.up], [], [], 0.2)[0]:
                data, addr = sock.recvfrom(65536)
                if self.blackout:  # nothing gets through, either way
                    continue
                if sock is self.down:
                    self.caller = addr
                    head = int.from_bytes(data[:4], "big") if len(data) >= 4 else 1 << 31
                    if not head >> 31 and head % 25 == 7:  # a data packet (F bit 0), its seq
                        self.dropped += 1
                        continue
                    self.up.send(data)
                elif self.caller:
                    self.down.sendto(data, self.caller)


exit_on_sigterm()


async def main():
    audio = subprocess.run(["gst-inspect-1.0", "avenc_aac"], capture_output=True).returncode == 0
    port, sport, sport2 = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    base = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="commentaryd-srt-")
    cfg = {
        "listen": f"127.0.0.1:{port}", "model": MODEL, "backend": "cpu", "threads": 1,
        "token": TOKEN, "history": 64,
        "policy": {"vision_window": 4, "text_rounds": 4, "prev_sink": 32, "prev_window": 32,
                   "max_new_tokens": 4},
        "ingest": {"reconnect_min_s": 0.5, "reconnect_max_s": 2, "latency_ms": 200},
        "streams": [{"id": "obs", "source": f"srt://127.0.0.1:{sport}?mode=listener"}],
    }
    cfg_path = os.path.join(tmp, "commentaryd.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    log_path = os.path.join(ROOT, "build", "test-logs", "srt-daemon.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = open(log_path, "w")
    d = subprocess.Popen([DAEMON, "--config", cfg_path], stdout=log, stderr=subprocess.STDOUT,
                         preexec_fn=die_with_parent)
    callers = []
    ws = f"ws://127.0.0.1:{port}/v1/streams/%s/events?since=0&token={TOKEN}"
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            try:
                if http("GET", base + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.2)
        if not check(http("GET", base + "/ready")[0] == 200, "the daemon is ready"):
            return 1
        print(f"     publisher: H.264{' + AAC' if audio else ''} in MPEG-TS (alignment=7)")

        callers.append(obs_caller(sport, audio))
        evs = await collect(ws % "obs", lambda e: n_commentary(e) >= 3, 40)
        check("live" in states(evs), f"the SRT listener stream goes live ({states(evs)})")
        check(n_commentary(evs) >= 3, f"commentary events from the SRT caller ({n_commentary(evs)})")
        st, hdrs, jpg = http("GET", base + "/v1/streams/obs/snapshot.jpg")
        check(st == 200 and jpg[:2] == b"\xff\xd8", f"snapshot.jpg ({st}, {len(jpg)} bytes)")

        # the caller stops (EOS), the listener waits for the next one
        n0 = n_commentary(evs)
        stop(callers[-1])
        evs = await collect(ws % "obs", lambda e: states(e)[-1:] == ["reconnecting"], 20)
        rec = [e for e in evs if e["type"] == "status" and e["state"] == "reconnecting"]
        check(bool(rec), f"the caller left: reconnecting ({rec[-1:]})")
        await asyncio.sleep(3)  # seconds without a caller: a hole in the stream
        callers.append(obs_caller(sport, audio))
        evs = await collect(ws % "obs", lambda e: n_commentary(e) >= n0 + 2, 40)
        check(states(evs)[-1:] == ["live"] and n_commentary(evs) >= n0 + 2,
              f"a second caller is picked up and commentary resumes ({states(evs)[-3:]}, "
              f"{n_commentary(evs) - n0} more)")
        gaps = [e for e in evs if e["type"] == "gap"]
        check(gaps and gaps[-1]["reason"] == "no frames from the source",
              f"the seconds without a caller are a gap from the source ({gaps[-1:]})")
        stop(callers[-1])

        # a stream added over REST, as the dashboard's form does
        st, _, body = http("POST", base + "/v1/streams",
                           {"id": "studio", "source": f"srt://127.0.0.1:{sport2}?mode=listener",
                            "query": "What is on screen?"})
        check(st == 201, f"POST /v1/streams with an srt:// listener → 201 ({st} {body[:100]!r})")
        callers.append(obs_caller(sport2, audio))
        evs = await collect(ws % "studio", lambda e: n_commentary(e) >= 2, 40)
        check("live" in states(evs) and n_commentary(evs) >= 2,
              f"the REST-added SRT stream comments ({n_commentary(evs)})")
        # a caller that vanishes without a word (SIGKILL: SRT times out after 5 s) is a lost
        # connection, not a caller that left
        callers[-1].kill()
        evs = await collect(ws % "studio", lambda e: states(e)[-1:] == ["reconnecting"], 20)
        rec = [e for e in evs if e["type"] == "status" and e["state"] == "reconnecting"]
        check(rec and rec[-1]["detail"].startswith("the connection to the caller was lost"),
              f"a caller killed: the connection was lost ({rec[-1:]})")

        # video lost in transit for good: counted, logged, and the commentary goes on
        sport3, rport = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
        relay = LossyRelay(rport, sport3)
        relay.start()
        st, _, body = http("POST", base + "/v1/streams",
                           {"id": "lossy", "source": f"srt://127.0.0.1:{sport3}?mode=listener"})
        callers.append(obs_caller(rport, audio, latency=60))
        evs = await collect(ws % "lossy", lambda e: n_commentary(e) >= 4, 40)
        # then nothing gets through for 5 s, the connection staying up (under SRT's 5 s
        # idle timeout): the lost seconds are reported while it lasts, the stream live
        last = max(e["t_end"] for e in evs if e["type"] == "commentary")
        relay.blackout = True
        t_black = time.monotonic()
        seen = await collect(ws % "lossy", lambda e: any(
            x["type"] == "gap" and x["t_start"] >= last for x in e), 4.5)
        during = time.monotonic() - t_black
        relay.blackout = False
        gaps = [x for x in seen if x["type"] == "gap" and x["t_start"] >= last]
        check(gaps and during < 4.5 and gaps[0]["reason"] == "no frames from the source" and
              states(seen)[-1:] == ["live"],
              f"an outage is reported as it lasts: a gap {during:.1f} s in, the stream live "
              f"({gaps[:1]}, {states(seen)[-1:]})")
        stop(callers[-1])
        relay.running = False
        metrics = http("GET", base + "/metrics")[2].decode()
        breaks = {ln.split('"')[1]: float(ln.split()[-1]) for ln in metrics.splitlines()
                  if ln.startswith("commentary_video_breaks_total{")}
        check(n_commentary(evs) >= 4 and breaks.get("lossy", 0) >= 1,
              f"packets lost for good: video breaks counted, commentary goes on ({breaks}, "
              f"{relay.dropped} packets dropped, {n_commentary(evs)} commentary events)")
        check(breaks.get("obs") == 0 and breaks.get("studio") == 0,
              f"clean callers: no video breaks ({breaks})")
        with open(log_path) as f:
            lines = [ln for ln in f if "ingest[lossy] video data lost in transit" in ln]
        check(bool(lines), f"the loss is logged ({lines[:1]})")

        d.send_signal(signal.SIGTERM)
        check(d.wait(timeout=10) == 0, "SIGTERM exits 0")
    finally:
        for p in callers:
            if p.poll() is None:
                p.kill()
                p.wait()
        if d.poll() is None:
            d.kill()
            d.wait()
        log.close()
    return 1 if failures else 0


if __name__ == "__main__":
    rc = asyncio.run(main())
    print(f"srt: {len(failures)} failed" + (": " + "; ".join(failures) if failures else ""))
    sys.exit(rc)
