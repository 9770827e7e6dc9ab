"""http_conformance_test.py — the daemon's HTTP and WebSocket answers against the specs
(RFC 9110/9112 for HTTP, RFC 6455 for WebSocket, proto/schema for the events), on raw
sockets so nothing in a client library hides a framing error.  Loopback only.
"""
import asyncio
import glob
import json
import os
import socket
import subprocess
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_lib import DAEMON, ROOT, check, die_with_parent, exit_on_sigterm, failures, free_port  # noqa: E402


def raw(port, data, wait=1.5, first=False):
    """Send bytes, read until EOF or `wait` seconds of the whole exchange (or, with first,
    until one whole response is in)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.2)
    s.sendall(data.encode() if isinstance(data, str) else data)
    out, t0 = b"", time.monotonic()
    while time.monotonic() - t0 < wait:
        try:
            b = s.recv(1 << 16)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
        if len(out) > 1 << 20 or (first and responses(out)[0]):
            break
    s.close()
    return out


def responses(blob):
    """Split a byte stream of HTTP/1.1 responses (all with Content-Length or none)."""
    out = []
    while blob.startswith(b"HTTP/1."):
        head, _, rest = blob.partition(b"\r\n\r\n")
        lines = head.decode("latin1").split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        n = int(hdrs.get("content-length", "0"))
        if len(rest) < n:
            break
        out.append((int(lines[0].split()[1]), hdrs, rest[:n]))
        blob = rest[n:]
    return out, blob


def req(method, path, body=None, headers=""):
    b = body.encode() if isinstance(body, str) else (body or b"")
    cl = f"Content-Length: {len(b)}\r\n" if body is not None else ""
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}{cl}\r\n".encode() + b


async def ws_events(port, query, n, origin=None):
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/streams/demo/events{query}",
                                  origin=origin) as ws:
        return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]


async def main():
    exit_on_sigterm()
    port = free_port()
    cfg = {"listen": f"127.0.0.1:{port}", "model": os.path.join(ROOT, "models", "default"),
           "backend": "cpu", "threads": 1, "history": 16, "ws": {"ping_s": 2},
           "streams": [{"id": "demo", "source": "test:"}]}
    cfg_path = os.path.join(ROOT, "build", "test-logs", "http-conformance.json")
    os.makedirs(os.path.dirname(cfg_path), exist_ok=True)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    log = open(os.path.join(ROOT, "build", "test-logs", "http-conformance.log"), "w")
    d = subprocess.Popen([DAEMON, "--config", cfg_path], stdout=log, stderr=subprocess.STDOUT,
                         preexec_fn=die_with_parent)
    try:
        for _ in range(100):
            try:
                if b" 200 " in raw(port, req("GET", "/ready"), 0.3)[:20]:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        await asyncio.sleep(20)  # history wraps (16 events)

        # pipelining (RFC 9112 §9.3.2): a POST with a body and a GET in one segment
        body = '{"id":"pipe","source":"test:"}'
        blob = raw(port, req("POST", "/v1/streams", body, "Content-Type: application/json\r\n")
                   + req("GET", "/health"), 2)
        rs, rest = responses(blob)
        check([r[0] for r in rs] == [201, 200] and not rest,
              f"pipelined POST + GET: one answer each ({[r[0] for r in rs]}, {len(blob)} bytes)")
        raw(port, req("DELETE", "/v1/streams/pipe"), 0.5)

        # HEAD (RFC 9110 §9.3.2): GET's headers, no content
        blob = raw(port, req("HEAD", "/health") + req("HEAD", "/v1/streams/demo/captions.vtt")
                   + req("GET", "/ready"))
        check(blob.count(b"HTTP/1.1 200") == 3 and b'{"status"' not in blob and b"WEBVTT" not in blob,
              f"HEAD answers 200 without a body ({blob[:60]!r}…)")

        # 405 with Allow (RFC 9110 §15.5.6) for every resource that exists
        for method, path in [("POST", "/health"), ("PUT", "/v1/streams"), ("POST", "/v1/streams/demo"),
                             ("PUT", "/v1/streams/demo/captions.vtt"), ("GET", "/v1/streams/demo/query"),
                             ("POST", "/"), ("GET", "/v1/whip/x")]:
            rs, _ = responses(raw(port, req(method, path, "" if method != "GET" else None), 1))
            ok = rs and rs[0][0] == 405 and "allow" in rs[0][1]
            check(ok, f"{method} {path} → 405 with Allow ({rs[0][0] if rs else None}, "
                      f"{rs[0][1].get('allow') if rs else None})")

        # 204 carries no Content-Length (RFC 9110 §8.6)
        raw(port, req("POST", "/v1/streams", '{"id":"gone","source":"test:"}',
                      "Content-Type: application/json\r\n"), 0.5)
        rs, _ = responses(raw(port, req("DELETE", "/v1/streams/gone"), 0.5))
        check(rs and rs[0][0] == 204 and "content-length" not in rs[0][1],
              f"DELETE → 204 without Content-Length ({rs[0][1] if rs else None})")

        # 426 names the protocol (RFC 9110 §15.5.22)
        rs, _ = responses(raw(port, req("GET", "/v1/streams/demo/events"), 0.5))
        check(rs and rs[0][0] == 426 and rs[0][1].get("upgrade", "").lower() == "websocket",
              "GET …/events without Upgrade → 426 with Upgrade: websocket")

        # a PUT/PATCH with an empty body and a chunked body are answered at once
        for method, path in [("PUT", "/v1/streams/demo/query"), ("PATCH", "/v1/streams/demo")]:
            t0 = time.monotonic()
            rs, _ = responses(raw(port, req(method, path, ""), 3, first=True))
            check(rs and rs[0][0] == 400, f"{method} with Content-Length: 0 → 400 at once "
                  f"({rs[0][0] if rs else 'no answer'}, {time.monotonic() - t0:.1f} s)")
        rs, _ = responses(raw(port, b"POST /v1/streams HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                              b"chunked\r\n\r\n1e\r\n{\"id\":\"chunk\",\"source\":\"test:\"}\r\n0\r\n\r\n", 3))
        check(rs and rs[0][0] in (201, 411), f"chunked POST is answered ({rs[0][0] if rs else 'no answer'})")

        # an ambiguous length (RFC 9112 §6.3): 400 and the connection closed, never a second
        # request made of the body's bytes
        body = '{"id":"smug","source":"test:"}'
        for cl in [f"Content-Length: 5\r\nContent-Length: {len(body)}", "Content-Length: 5, 5",
                   "Content-Length: +5"]:
            t0 = time.monotonic()
            blob = raw(port, f"POST /v1/streams HTTP/1.1\r\nHost: x\r\n{cl}\r\n\r\n{body}"
                       "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 3)
            rs, rest = responses(blob)
            check([r[0] for r in rs] == [400] and not rest and time.monotonic() - t0 < 2.5,
                  f"{cl!r} → 400, then closed ({[r[0] for r in rs]}, {rest[:40]!r})")
        raw(port, req("DELETE", "/v1/streams/smug"), 0.5)
        # spaces around the number are not part of it (RFC 9110 §5.5); a POST without any
        # length is 411 and closed, so what follows is never read as its body
        blob = raw(port, f"POST /v1/streams HTTP/1.1\r\nHost: x\r\nContent-Length:\t{len(body)} \r\n"
                   f"\r\n{body}GET /health HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 2)
        rs, _ = responses(blob)
        check([r[0] for r in rs] == [201, 200], f"Content-Length with spaces around it is served "
              f"({[r[0] for r in rs]})")
        raw(port, req("DELETE", "/v1/streams/smug"), 0.5)
        blob = raw(port, f"POST /v1/streams HTTP/1.1\r\nHost: x\r\n\r\n{body}"
                   "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 2)
        rs, rest = responses(blob)
        check([r[0] for r in rs] == [411] and not rest, f"POST without a length → 411, then closed "
              f"({[r[0] for r in rs]})")

        # pings (ws.ping_s 2): a subscriber that answers them stays; one that never does is
        # dropped once 2 s more pass without a pong
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /v1/streams/demo/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        s.settimeout(0.2)
        blob, t0, closed_at = b"", time.monotonic(), None
        while time.monotonic() - t0 < 8 and closed_at is None:
            try:
                b = s.recv(1 << 16)
            except socket.timeout:
                continue
            except ConnectionResetError:
                b = b""
            if not b:
                closed_at = time.monotonic() - t0
            blob += b
        s.close()
        pinged = b"\x89\x00" in blob  # an empty PING frame from the server
        check(pinged and closed_at is not None and 3 < closed_at < 6,
              f"a subscriber that never pongs is pinged, then dropped at ~4 s "
              f"(pinged {pinged}, closed at {closed_at})")
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/streams/demo/events") as ws:
            t0, n = time.monotonic(), 0
            try:
                while time.monotonic() - t0 < 7:
                    await asyncio.wait_for(ws.recv(), 3)
                    n += 1
                ok = True
            except (websockets.ConnectionClosed, asyncio.TimeoutError) as e:
                ok = repr(e)
            check(ok is True and n >= 4, f"a subscriber that pongs stays past 3 pings ({ok}, {n} events)")

        # an error about a path that is not UTF-8 is still a JSON error
        rs, _ = responses(raw(port, req("GET", "/%ff%fe"), 1))
        check(rs and rs[0][0] == 404 and rs[0][1].get("content-type") == "application/json",
              f"GET /%ff%fe → 404 JSON ({rs[0][0] if rs else None} {rs[0][1].get('content-type') if rs else ''})")

        # cross-origin browser requests (no token): refused
        rs, _ = responses(raw(port, req("POST", "/v1/streams", '{"id":"csrf","source":"test:"}',
                                        "Origin: https://evil.example\r\nContent-Type: text/plain\r\n"), 1))
        check(rs and rs[0][0] == 403, f"cross-origin text/plain POST → 403 ({rs[0][0] if rs else None})")
        raw(port, req("DELETE", "/v1/streams/csrf"), 0.5)
        try:
            await ws_events(port, "", 1, origin="https://evil.example")
            check(False, "cross-origin WebSocket refused (accepted)")
        except websockets.InvalidStatusCode as e:
            check(e.status_code == 403, f"cross-origin WebSocket refused ({e.status_code})")

        # events: every one valid against proto/schema; resumed_from only when honoured
        try:
            from jsonschema import Draft202012Validator
            schemas = {os.path.basename(p)[:-12]: json.load(open(p))
                       for p in glob.glob(os.path.join(ROOT, "proto", "schema", "*.schema.json"))}
        except ImportError:
            schemas = None
        evs = await ws_events(port, "?since=0", 4)
        hello = evs[0]
        if schemas:
            bad = [(e["type"], x.message) for e in evs
                   for x in Draft202012Validator(schemas[e["type"]]).iter_errors(e)]
            check(not bad, f"events valid against proto/schema ({bad[:2]})")
        check(hello["history_first_seq"] > 1 and "resumed_from" not in hello,
              f"?since=0 after the history wrapped: no resumed_from ({hello})")
        hello = (await ws_events(port, "?since=999999", 1))[0]
        check("resumed_from" not in hello, f"?since= beyond last_seq: no resumed_from ({hello})")
        last = hello["last_seq"]
        hello = (await ws_events(port, f"?since={last - 1}", 1))[0]
        check(hello.get("resumed_from") == last - 1, f"?since=last-1: resumed_from ({hello})")
    finally:
        d.terminate()
        try:
            d.wait(10)
        except subprocess.TimeoutExpired:
            d.kill()
    print(f"http conformance: {len(failures)} failed")
    sys.exit(1 if failures else 0)


asyncio.run(main())
