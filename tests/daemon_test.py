#!/usr/bin/python3
"""Integration test of commentaryd (run by tests/t-daemon.sh; Debian's python3 with
python3-websockets).  Everything runs on 127.0.0.1 with bounded loops and timeouts.

A local RTSP server (build/tests/helpers/rtsp-server) feeds the daemon, which runs the
tiny random model; the test subscribes over WebSocket and checks: at least 5 commentary
events at about 1-second cadence with consecutive seq and 1-second spans; /metrics passes
`promtool check metrics`; killing and restarting the RTSP server gives a reconnect and
the events resume; a subscriber that never reads does not delay a fast one; bad requests
(unknown stream 404, malformed JSON 400, missing or wrong token 401, an oversized WS
message) are answered and the daemon keeps serving; resume with ?since=; WebVTT; REST
add/change/remove; a file stream's commentary for every chunk, then `ended` last; SIGHUP
applying a config stream's new query; SIGTERM exits 0 with close 1001 sent to
subscribers.
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
from http.server import HTTPServer, SimpleHTTPRequestHandler

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON = os.path.join(ROOT, "build", "bin", "commentaryd")
RTSP = os.path.join(ROOT, "build", "tests", "helpers", "rtsp-server")
MODEL = os.path.join(ROOT, "build", "models", "tiny-random")
TOKEN = "s3cret-token"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, path, body=None, token=TOKEN, port=None, raw=None, headers=None):
    url = f"http://127.0.0.1:{port}{path}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def start_rtsp(port):
    p = subprocess.Popen([RTSP, str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    line = p.stdout.readline()
    if "ready" not in line:
        raise RuntimeError(f"rtsp-server did not start: {line!r}")
    return p


async def collect(url, n, timeout, want=lambda ev: ev["type"] == "commentary"):
    """Events (with arrival time) until n of them satisfy want, or timeout."""
    got, t0 = [], time.monotonic()
    async with websockets.connect(url, max_size=2**20) as ws:
        while sum(1 for _, e in got if want(e)) < n and time.monotonic() - t0 < timeout:
            try:
                msg = await asyncio.wait_for(ws.recv(), timeout=max(0.1, timeout - (time.monotonic() - t0)))
            except asyncio.TimeoutError:
                break
            got.append((time.monotonic(), json.loads(msg)))
    return got


async def wait_for(port, path, timeout):
    """GET path until it answers 200 or timeout s pass: the last status (None: no answer)."""
    t0, st = time.monotonic(), None
    while time.monotonic() - t0 < timeout:
        try:
            st = http("GET", path, port=port)[0]
            if st == 200:
                break
        except OSError:
            pass
        await asyncio.sleep(0.1)
    return st


async def config_query_too_long(tmp, cfg):
    """A config stream whose query is too long: streams start once the model is loaded,
    and this one ends at once with why; the daemon and its other streams go on."""
    port = free_port()
    path = os.path.join(tmp, "wordy.json")
    with open(path, "w") as f:
        json.dump(dict(cfg, listen=f"127.0.0.1:{port}",
                       streams=[{"id": "wordy", "source": "test:", "query": ("word " * 300).strip()},
                                {"id": "ok", "source": "test:"}]), f)
    with open(os.path.join(ROOT, "build", "test-logs", "daemon-wordy.log"), "w") as log:
        d = subprocess.Popen([DAEMON, "--config", path], stdout=log, stderr=subprocess.STDOUT)
        try:
            await wait_for(port, "/ready", 60)
            ev = await collect(f"ws://127.0.0.1:{port}/v1/streams/wordy/events?token={TOKEN}&since=0",
                               1, 60, want=lambda e: e["type"] == "status")
            st = [e for _, e in ev if e["type"] == "status"]
            check(st and st[0]["state"] == "ended" and
                  st[0].get("detail") == "query is 300 tokens, more than 256",
                  f"a config stream with a 300-token query ends, saying why ({st[:1]})")
            ok = await collect(f"ws://127.0.0.1:{port}/v1/streams/ok/events?token={TOKEN}", 1, 30)
            check(any(e["type"] == "commentary" for _, e in ok), "the daemon's other stream runs")
        finally:
            d.terminate()
            d.wait(timeout=10)


async def main():
    port, rport = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="commentaryd-test-")
    cfg = {
        "listen": f"127.0.0.1:{port}", "model": MODEL, "backend": "cpu", "threads": 1,
        "token": TOKEN, "log_level": "info", "history": 64,
        "policy": {"vision_window": 4, "text_rounds": 4, "prev_sink": 32, "prev_window": 32,
                   "max_new_tokens": 4},
        "ws": {"queue": 8, "slow_close_s": 5, "max_message_bytes": 1024},
        "ingest": {"reconnect_min_s": 0.5, "reconnect_max_s": 2, "latency_ms": 100},
        "streams": [{"id": "cam", "source": f"rtsp://127.0.0.1:{rport}/test",
                     "query": "What is happening?"}],
    }
    cfg_path = os.path.join(tmp, "commentaryd.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    check(subprocess.run([DAEMON, "--config", cfg_path, "--check-config"],
                         capture_output=True).returncode == 0, "--check-config accepts the test config")
    r = subprocess.run([DAEMON, "--model", os.path.join(tmp, "no-model"), "--set",
                        "listen=127.0.0.1:0", "--backend", "cpu"], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 1 and "no-model: not a model directory (No such file or directory)"
          in r.stderr, f"a missing model directory: exit 1 naming it ({r.returncode})")
    # a taken port: exit 1 naming the cause, never "listening" (lws alone reported the
    # configured port as bound and the daemon ran, or aborted, on nothing)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    r = subprocess.run([DAEMON, "--config", cfg_path, "--set",
                        f"listen=127.0.0.1:{taken.getsockname()[1]}"],
                       capture_output=True, text=True, timeout=30)
    taken.close()
    check(r.returncode == 1 and "Address already in use" in r.stderr and "listening" not in r.stderr,
          f"a port in use: exit 1 naming it ({r.returncode}: {r.stderr.strip()[-90:]})")
    lport = free_port()
    ld = subprocess.Popen([DAEMON, "--model", os.path.join(ROOT, "models", "default"), "--backend",
                           "cpu", "--listen", f"localhost:{lport}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    st = None
    for _ in range(50):
        time.sleep(0.1)
        try:
            st = http("GET", "/health", token=None, port=lport)[0]
            break
        except OSError:
            pass
    ld.terminate()
    ld.wait(10)
    check(st == 200, f"listen on a host name (localhost) serves there ({st})")
    many = json.dumps([{"id": f"s{i}", "source": "test:", "query": f"What happens in scene {i}?"}
                       for i in range(14)])
    r = subprocess.run([DAEMON, "--set", f"streams={many}", "--print-config"], capture_output=True,
                       text=True)
    check(r.returncode == 0 and len(json.loads(r.stdout)["streams"]) == 14,
          f"--set takes a {len(many)}-byte value whole ({r.returncode}: {r.stderr.strip()[:80]})")
    bad_path = os.path.join(tmp, "bad-source.json")
    with open(bad_path, "w") as f:
        json.dump(dict(cfg, streams=[{"id": "x", "source": "bogus://h/x"}]), f)
    r = subprocess.run([DAEMON, "--config", bad_path, "--check-config"], capture_output=True, text=True)
    check(r.returncode == 2 and "unsupported scheme 'bogus'" in r.stderr,
          f"--check-config refuses a bad stream source ({r.returncode}: {r.stderr.strip()[:80]})")
    await config_query_too_long(tmp, cfg)
    rtsp = start_rtsp(rport)
    log = open(os.path.join(ROOT, "build", "test-logs", "daemon.log"), "w")
    # systemd's notify protocol: a datagram socket the daemon reports to
    notify_path = os.path.join(tmp, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.setblocking(False)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="2000000")
    d = subprocess.Popen([DAEMON, "--config", cfg_path], stdout=log, stderr=subprocess.STDOUT,
                         env=env)
    notes = []

    def drain_notify():
        while True:
            try:
                notes.append(notify.recv(4096).decode())
            except BlockingIOError:
                return
    # read it as systemd would, all along: a full datagram queue blocks the sender
    asyncio.get_running_loop().add_reader(notify.fileno(), drain_notify)
    try:
        # /health at once, /ready once warm
        t0 = time.monotonic()
        check(await wait_for(port, "/health", 20) == 200, "/health answers 200")
        check(await wait_for(port, "/ready", 120) == 200,
              f"/ready turns 200 (took {time.monotonic() - t0:.1f} s)")
        await asyncio.sleep(2.5)
        drain_notify()
        check(any("READY=1" in n for n in notes), "sd_notify READY=1 once ready")
        check(any(n.startswith("STATUS=") for n in notes), f"sd_notify STATUS= lines {notes[:2]}")
        check(any("WATCHDOG=1" in n for n in notes), "sd_notify WATCHDOG=1 under WATCHDOG_USEC")

        ws_url = f"ws://127.0.0.1:{port}/v1/streams/cam/events?token={TOKEN}"
        # a subscriber that never reads, alongside
        slow = socket.create_connection(("127.0.0.1", port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall((f"GET /v1/streams/cam/events?token={TOKEN} HTTP/1.1\r\nHost: x\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())

        events = await collect(ws_url, 6, 60)
        com = [(t, e) for t, e in events if e["type"] == "commentary"]
        check(events and events[0][1]["type"] == "hello", "the first event is hello")
        check(len(com) >= 5, f"at least 5 commentary events ({len(com)})")
        seqs = [e["seq"] for _, e in events if "seq" in e]
        check(seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False,
              f"seq consecutive over all events {seqs}")
        check(all(e["t_end"] - e["t_start"] == 1 for _, e in com), "1-second spans")
        check(all(e["t_start"] == int(e["t_start"]) for _, e in com), "chunks on whole seconds")
        gaps = [com[i + 1][0] - com[i][0] for i in range(len(com) - 1)]
        med = sorted(gaps)[len(gaps) // 2] if gaps else 0
        check(0.6 <= med <= 1.4, f"about 1-second cadence (median {med:.2f} s)")
        check(all(isinstance(e["text"], str) and e["latency_ms"] >= 0 for _, e in com),
              "text and latency present")

        # metrics
        st, metrics = http("GET", "/metrics", port=port, token=None)
        check(st == 200 and "commentary_chunks_processed_total{stream=\"cam\"}" in metrics,
              "/metrics has per-stream counters")
        mp = os.path.join(tmp, "metrics.txt")
        with open(mp, "w") as f:
            f.write(metrics)
        pc = subprocess.run(["promtool", "check", "metrics"], stdin=open(mp), capture_output=True,
                            text=True)
        check(pc.returncode == 0, "promtool check metrics passes " + (pc.stdout + pc.stderr).strip()[:300])

        # resume with ?since=
        last = seqs[-1]
        again = await collect(ws_url + f"&since={last - 2}", 1, 1.5, want=lambda e: False)
        rs = [e["seq"] for _, e in again if "seq" in e]
        check(again and again[0][1].get("resumed_from") == last - 2 and rs[:2] == [last - 1, last],
              f"?since={last - 2} replays from {last - 1} ({rs[:3]})")

        # bad requests
        check(http("GET", "/v1/streams/nope", port=port)[0] == 404, "unknown stream is 404")
        check(http("POST", "/v1/streams", raw=b"{not json", port=port)[0] == 400, "malformed JSON is 400")
        check(http("POST", "/v1/streams", body={"id": "bad id", "source": "test:"}, port=port)[0] == 400,
              "bad stream id is 400")
        check(http("POST", "/v1/streams", body={"id": "x", "source": "gopher://h"}, port=port)[0] == 400,
              "unsupported source scheme is 400")
        check(http("GET", "/v1/streams", token=None, port=port)[0] == 401, "missing token is 401")
        check(http("GET", "/v1/streams", token="wrong", port=port)[0] == 401, "wrong token is 401")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/streams",
                                     headers={"Authorization": f"bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            check(r.status == 200, "the auth scheme in any case (bearer) is accepted")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall((f"GET /v1/streams/cam/events?token={TOKEN}&since=abc HTTP/1.1\r\n"
                       "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            answer = b""
            while b"}}" not in answer:
                part = c.recv(4096)
                if not part:
                    break
                answer += part
        answer = answer.decode(errors="replace")
        check(answer.startswith("HTTP/1.1 400") and "since" in answer,
              f"since=abc is 400 naming since ({answer.splitlines()[-1:]})")
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/v1/streams/cam/events") as ws:
                await ws.recv()
            check(False, "WS without token refused")
        except Exception as e:
            check("401" in str(e), f"WS without token refused: {e}")
        try:
            async with websockets.connect(ws_url) as ws:
                await ws.recv()
                await ws.send("x" * 5000)
                await asyncio.wait_for(ws.recv(), 5)
                await asyncio.wait_for(ws.recv(), 5)
            check(False, "oversized WS message closes the connection")
        except websockets.ConnectionClosed as e:
            check(e.code == 1009, f"oversized WS message closes with 1009 ({e.code})")
        check(http("GET", "/health", port=port)[0] == 200, "still serving after bad requests")

        # REST: add, change query, captions, remove
        st, body = http("POST", "/v1/streams", body={"id": "pattern", "source": "test:smpte",
                                                     "query": "Colours?"}, port=port)
        check(st == 201 and json.loads(body)["id"] == "pattern", f"POST /v1/streams 201 ({st})")
        check(http("POST", "/v1/streams", body={"id": "pattern", "source": "test:"}, port=port)[0] == 409,
              "duplicate id is 409")
        # with a token set, the token decides: another origin that holds it may POST
        st, _ = http("POST", "/v1/streams", body={"id": "pattern", "source": "test:"}, port=port,
                     headers={"Origin": "https://dashboard.example"})
        check(st == 409, f"a cross-origin POST with the token is served ({st})")
        st, body = http("PUT", "/v1/streams/pattern/query", body={"query": "Which bars?"}, port=port)
        check(st == 200 and json.loads(body)["query"] == "Which bars?", "PUT query 200")
        # texts the engine would refuse are refused here, naming the limit
        st, body = http("PUT", "/v1/streams/pattern/query", body={"query": ("word " * 300).strip()}, port=port)
        check(st == 400 and "query is 300 tokens, more than 256" in body and
              json.loads(http("GET", "/v1/streams/pattern", port=port)[1])["query"] == "Which bars?",
              f"PUT of a 300-token query: 400, the old query stays ({st} {body[:90]})")
        st, body = http("POST", "/v1/streams", body={"id": "wordy", "source": "test:",
                                                     "query": ("word " * 300).strip()}, port=port)
        check(st == 400 and "query is 300 tokens" in body, f"POST a 300-token query: 400 ({st})")
        st, body = http("POST", "/v1/streams", body={"id": "wordy", "source": "test:",
                                                     "previous_text": ("word " * 5000).strip()}, port=port)
        check(st == 400 and "previous_text is 5000 tokens, more than 4096" in body,
              f"POST a 5000-token previous_text: 400 ({st} {body[:90]})")
        pe = await collect(f"ws://127.0.0.1:{port}/v1/streams/pattern/events?token={TOKEN}", 2, 30)
        check(sum(1 for _, e in pe if e["type"] == "commentary") >= 2, "added stream comments")
        st, listing = http("GET", "/v1/streams", port=port)
        check(st == 200 and {s["id"] for s in json.loads(listing)["streams"]} == {"cam", "pattern"},
              "GET /v1/streams lists both")
        st, vtt = http("GET", "/v1/streams/cam/captions.vtt", port=port)
        check(st == 200 and vtt.startswith("WEBVTT") and " --> " in vtt, "captions.vtt is WebVTT")
        check(http("DELETE", "/v1/streams/pattern", port=port)[0] == 204, "DELETE 204")
        st, body = http("POST", "/v1/streams", body={"id": "locked",
                                                     "source": "rtsp://viewer:s3cr3t@127.0.0.1:9/x"},
                        port=port)
        shown = json.loads(body).get("source") if st == 201 else None
        check(shown == "rtsp://viewer:***@127.0.0.1:9/x",
              f"a source's password is masked in the listing ({st}, {shown})")
        check(http("DELETE", "/v1/streams/locked", port=port)[0] == 204, "DELETE it")
        # an HTTP source answering 404: GStreamer's error quotes the URL, password and all
        web = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        wport = web.server_address[1]
        st, _ = http("POST", "/v1/streams", body={
            "id": "web", "source": f"http://viewer:s3cr3t@127.0.0.1:{wport}/nope.mp4"}, port=port)
        we = await collect(f"ws://127.0.0.1:{port}/v1/streams/web/events?token={TOKEN}&since=0",
                           1, 20, want=lambda e: e["type"] == "status" and e["state"] == "ended")
        ended = [e for _, e in we if e["type"] == "status" and e["state"] == "ended"]
        check(st == 201 and ended and "s3cr3t" not in ended[-1].get("detail", "x")
              and "viewer:***@" in ended[-1].get("detail", ""),
              f"an error quoting the source masks its password ({ended[-1:]})")
        http("DELETE", "/v1/streams/web", port=port)
        web.shutdown()
        with open(os.path.join(ROOT, "build", "test-logs", "daemon.log")) as f:
            check("s3cr3t" not in f.read(), "the password never reaches the log")
        check(http("GET", "/v1/streams/pattern", port=port)[0] == 404, "deleted stream is gone")

        # a file: every chunk's commentary, then `ended`, last (it waits for the engine)
        clip = os.path.join(tmp, "clip.mp4")
        made = subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=120",
                               "pattern=ball", "!", "video/x-raw,width=320,height=240,framerate=30/1",
                               "!", "x264enc", "!", "mp4mux", "!", "filesink", f"location={clip}"],
                              capture_output=True).returncode == 0
        check(made, "a 4 s H.264 clip made with gst-launch-1.0")
        for src, why in [(clip + ".missing", "No such file or directory"), (tmp, "is a directory"),
                         ("file://" + clip + ".missing", "No such file or directory")]:
            st, body = http("POST", "/v1/streams", body={"id": "nofile", "source": src}, port=port)
            check(st == 400 and why in body, f"POST of a file that cannot be read: 400 ({st} {body[:120]})")
        st, _ = http("POST", "/v1/streams", body={"id": "clip", "source": clip}, port=port)
        check(st == 201, f"POST a file stream 201 ({st})")
        fe = await collect(f"ws://127.0.0.1:{port}/v1/streams/clip/events?token={TOKEN}&since=0", 1,
                           60, want=lambda e: e["type"] == "status" and e["state"] == "ended")
        spans = [e["t_start"] for _, e in fe if e["type"] == "commentary"]
        check(spans == [0.0, 1.0, 2.0, 3.0], f"the file's 4 chunks commented ({spans})")
        check(fe and fe[-1][1]["type"] == "status" and fe[-1][1]["state"] == "ended",
              f"ended comes last ({[e['type'] + '/' + e.get('state', '') for _, e in fe[-3:]]})")
        check(http("DELETE", "/v1/streams/clip", port=port)[0] == 204, "DELETE the file stream")

        # reconnect: kill the RTSP server, restart it, events resume
        rtsp.kill()
        rtsp.wait()
        states = await collect(ws_url, 1, 20, want=lambda e: e["type"] == "status" and e["state"] == "reconnecting")
        rec = [e for _, e in states if e["type"] == "status" and e["state"] == "reconnecting"]
        check(rec and rec[0].get("retry_in_s", -1) >= 0, f"reconnecting status with retry_in_s ({rec[:1]})")
        rtsp = start_rtsp(rport)
        back = await collect(ws_url, 2, 40)
        check(any(e["type"] == "status" and e["state"] == "live" for _, e in back) and
              sum(1 for _, e in back if e["type"] == "commentary") >= 2, "live again and events resume")
        st, metrics = http("GET", "/metrics", port=port, token=None)
        rc = [l for l in metrics.splitlines() if l.startswith('commentary_reconnects_total{stream="cam"}')]
        check(rc and float(rc[0].split()[-1]) >= 1, f"reconnect counted ({rc})")

        # SIGHUP with a config stream's query changed: the running stream takes it
        cfg["streams"][0]["query"] = "What moves?"
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        d.send_signal(signal.SIGHUP)
        q = None
        for _ in range(50):
            await asyncio.sleep(0.1)
            st, body = http("GET", "/v1/streams/cam", port=port)
            q = json.loads(body).get("query") if st == 200 else None
            if q == "What moves?":
                break
        check(q == "What moves?", f"a reload applies a config stream's new query ({q!r})")
        more = await collect(ws_url, 1, 20)
        check(any(e["type"] == "commentary" for _, e in more), "the stream goes on after the reload")
        # a query set over REST stays through a reload that changes another stream
        http("PUT", "/v1/streams/cam/query", body={"query": "Set over REST"}, port=port)
        cfg["streams"].append({"id": "extra", "source": "test:"})
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        d.send_signal(signal.SIGHUP)
        ids = set()
        for _ in range(50):
            await asyncio.sleep(0.1)
            ids = {x["id"] for x in json.loads(http("GET", "/v1/streams", port=port)[1])["streams"]}
            if "extra" in ids:
                break
        q = json.loads(http("GET", "/v1/streams/cam", port=port)[1]).get("query")
        check("extra" in ids and q == "Set over REST",
              f"a reload adding a stream keeps another's REST query ({sorted(ids)}, {q!r})")

        # a reload that changes the token closes subscribers (1008 "token changed"); the
        # old token is refused from then on, the new one served
        async with websockets.connect(ws_url) as ws:
            await ws.recv()
            cfg["token"] = "n3w-token"
            with open(cfg_path, "w") as f:
                json.dump(cfg, f)
            d.send_signal(signal.SIGHUP)
            closed = None
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 6)
            except websockets.ConnectionClosed as e:
                closed = (e.code, e.reason)
            except asyncio.TimeoutError:
                pass
            check(closed == (1008, "token changed"), f"a token change closes subscribers ({closed})")
        check(http("GET", "/v1/streams", port=port)[0] == 401 and
              http("GET", "/v1/streams", token="n3w-token", port=port)[0] == 200,
              "after the reload the old token is 401, the new one 200")
        cfg["token"] = TOKEN
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        d.send_signal(signal.SIGHUP)
        for _ in range(50):
            await asyncio.sleep(0.1)
            if http("GET", "/v1/streams", port=port)[0] == 200:
                break

        # SIGTERM: subscribers get 1001, exit 0 within 5 s
        async with websockets.connect(ws_url) as ws:
            await ws.recv()
            d.send_signal(signal.SIGTERM)
            t1 = time.monotonic()
            code = None
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 6)
            except websockets.ConnectionClosed as e:
                code = e.code
            except asyncio.TimeoutError:
                pass
            check(code == 1001, f"SIGTERM closes subscribers with 1001 ({code})")
        try:
            rc = d.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None  # a hang: keep the threads' stacks for whoever debugs it
            subprocess.run(["gdb", "-p", str(d.pid), "-batch", "-ex", "thread apply all bt 15"],
                           stdout=log, stderr=subprocess.STDOUT, timeout=60)
        drain_notify()
        check(any("STOPPING=1" in n for n in notes), "sd_notify STOPPING=1 on SIGTERM")
        check(rc == 0 and time.monotonic() - t1 < 5, f"SIGTERM exits 0 within 5 s (rc {rc}, "
              f"{time.monotonic() - t1:.1f} s)")
        slow.close()
    finally:
        if d.poll() is None:
            d.kill()
        rtsp.kill()
        log.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
