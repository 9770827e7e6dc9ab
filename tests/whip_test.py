#!/usr/bin/python3
"""WHIP ingest end to end (run by tests/t-whip.sh inside a private network namespace).

The daemon runs the tiny random model with a bearer token; tests/whip_publisher.py
publishes like OBS (webrtcbin: sendonly H.264 + Opus, max-bundle, non-trickle, bearer
token).  Checked:
  * missing or wrong token → 401; text/plain → 415; malformed SDP → 400 (several kinds);
    OPTIONS → 204 with Accept-Post; PATCH → 405; DELETE of an unknown session → 404; none
    of them creates a stream, and the daemon keeps serving;
  * an H.264 publisher creates its stream: 201 with Location /v1/whip/ID/SESSION and an
    SDP answer with candidates; the stream goes live, commentary events arrive, the
    latest frame is served as a JPEG; a second publisher on the same stream → 409;
  * DELETE of the session → 200, the stream ends (status ended) and stays listed; a new
    publisher on the same id starts it again;
  * VP8 and VP9 publishers are decoded (live, commentary); a publisher that vanishes
    without a DELETE ends its stream (the stall watchdog) with a reason;
  * whip.allow_create = false (applied by SIGHUP): a new id → 404, a stream configured
    with source whip: still takes a publisher;
  * SIGTERM with a publisher connected exits 0 within 5 s; no GLib criticals in the log.
Everything is bounded: each wait has a timeout, the whole run takes about 90 s.
"""
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_lib import (DAEMON, MODEL, ROOT, check, collect, die_with_parent,  # noqa: E402
                        exit_on_sigterm, failures, free_port, n_commentary, states)
from whip_publisher import WhipPublisher, http  # noqa: E402

TOKEN = "whip-s3cret"


exit_on_sigterm()


async def main():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="commentaryd-whip-")
    cfg = {
        "listen": f"127.0.0.1:{port}", "model": MODEL, "backend": "cpu", "threads": 1,
        "token": TOKEN, "log_level": "info", "history": 64,
        "policy": {"vision_window": 4, "text_rounds": 4, "prev_sink": 32, "prev_window": 32,
                   "max_new_tokens": 4},
        "whip": {"allow_create": True},
        "streams": [{"id": "waiting", "source": "whip:"}],
    }
    cfg_path = os.path.join(tmp, "commentaryd.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    log_path = os.path.join(ROOT, "build", "test-logs", "whip-daemon.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = open(log_path, "w")
    d = subprocess.Popen([DAEMON, "--config", cfg_path], stdout=log, stderr=subprocess.STDOUT,
                         preexec_fn=die_with_parent)
    pubs = []

    def api(method, path, token=TOKEN, body=None, ctype=None):
        return http(method, base + path, token, body, ctype, timeout=20)

    def ws_url(sid):
        return f"ws://127.0.0.1:{port}/v1/streams/{sid}/events?since=0&token={TOKEN}"

    def publish(sid, codec="H264"):
        p = WhipPublisher(f"{base}/v1/whip/{sid}", TOKEN, codec)
        pubs.append(p)
        st = p.publish()
        return p, st

    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            try:
                if api("GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.2)
        if not check(api("GET", "/ready")[0] == 200, "the daemon is ready"):
            return 1

        # ---- refused requests: nothing is created, the daemon keeps serving
        probe = WhipPublisher(f"{base}/v1/whip/x", TOKEN)
        pubs.append(probe)
        offer = probe.offer()
        st, hdrs, _ = api("POST", "/v1/whip/studio", None, offer.encode(), "application/sdp")
        check(st == 401 and "Bearer" in (hdrs.get("WWW-Authenticate") or ""),
              f"missing token → 401 with WWW-Authenticate ({st})")
        st = api("POST", "/v1/whip/studio", "wrong", offer.encode(), "application/sdp")[0]
        check(st == 401, f"wrong token → 401 ({st})")
        st = api("POST", "/v1/whip/studio", body=offer.encode(), ctype="text/plain")[0]
        check(st == 415, f"Content-Type text/plain → 415 ({st})")
        bad = {
            "not SDP": b"hello, world",
            "v=0 then garbage": b"v=0\r\nthis is not sdp\r\n",
            "binary": b"v=0\r\n\x00\x01\x02\xff",
            "no ICE credentials": re.sub(r"a=ice-(ufrag|pwd):[^\r\n]*\r\n", "", offer).encode(),
            "audio only": re.sub(r"m=video[\s\S]*?(?=m=audio)", "", offer).encode(),
            "empty": b"",
        }
        for what, body in bad.items():
            st, _, b = api("POST", "/v1/whip/studio", body=body, ctype="application/sdp")
            check(st == 400, f"malformed SDP ({what}) → 400 ({st} {b[:120]!r})")
        check(api("GET", "/health")[0] == 200, "the daemon keeps serving after malformed offers")
        check(api("GET", "/v1/streams/studio")[0] == 404, "refused offers created no stream")
        st, hdrs, _ = api("OPTIONS", "/v1/whip/studio", None)
        check(st == 204 and "application/sdp" in (hdrs.get("Accept-Post") or ""),
              f"OPTIONS → 204 with Accept-Post ({st})")
        check(api("PATCH", "/v1/whip/studio/0123456789abcdef", body=b"a=end-of-candidates",
                  ctype="application/trickle-ice-sdpfrag")[0] == 405, "PATCH (trickle) → 405")
        check(api("DELETE", "/v1/whip/studio/0123456789abcdef")[0] == 404,
              "DELETE of an unknown session → 404")
        check(api("GET", "/v1/whip/studio")[0] == 405, "GET /v1/whip/ID → 405")
        check(api("POST", "/v1/whip/bad%20id", body=offer.encode(), ctype="application/sdp")[0]
              in (400, 404), "a bad stream id is refused")

        # ---- an offer shaped like OBS's own (libdatachannel: audio m-line first, session-level
        # ICE credentials and fingerprint, a=group:LS): webrtcbin answers it line for line
        obs = open(os.path.join(ROOT, "tests", "fixtures", "whip", "obs-offer.sdp"), "rb").read()
        st, hdrs, body = api("POST", "/v1/whip/obsshape", body=obs, ctype="application/sdp")
        ans = body.decode(errors="replace")
        check(st == 201, f"OBS-shaped offer → 201 ({st} {ans[:160]})")
        ia, iv = ans.find("m=audio 9 "), ans.find("m=video 9 ")
        check(0 <= ia < iv and "a=mid:0" in ans and "a=mid:1" in ans and
              ans.count("a=recvonly") == 2 and "a=rtpmap:96 H264/90000" in ans and
              "packetization-mode=1" in ans and re.search(r"a=rtpmap:111 opus/48000/2", ans, re.I),
              "the answer follows the offer: audio then video, mids 0 and 1, recvonly, H.264 96 "
              "packetization-mode=1, Opus 111")
        if st == 201:
            check(api("DELETE", hdrs.get("Location"))[0] == 200, "OBS-shaped session: DELETE → 200")

        # ---- H.264 like OBS: the stream is created, goes live, comments
        pub, st = publish("studio")
        check(st == 201, f"H.264 publisher: POST → 201 ({st} {getattr(pub, 'body', '')[:200]})")
        loc = pub.headers.get("Location") or ""
        check(re.fullmatch(r"/v1/whip/studio/[0-9a-f]{16}", loc) is not None, f"Location {loc}")
        check((pub.headers.get("Content-Type") or "").startswith("application/sdp"),
              "the answer is application/sdp")
        ans = pub.answer or ""
        check("a=candidate:" in ans and "a=recvonly" in ans and "m=audio 9 " in ans,
              "the answer carries candidates (no trickle), recvonly video and the audio m-line")
        evs = await collect(ws_url("studio"), lambda e: n_commentary(e) >= 3, 45)
        check("live" in states(evs), f"the WHIP stream goes live ({states(evs)})")
        check(n_commentary(evs) >= 3, f"commentary events from the WHIP stream ({n_commentary(evs)})")
        st, _, body = api("GET", "/v1/streams/studio")
        info = json.loads(body) if st == 200 else {}
        check(info.get("state") == "live" and info.get("source") == "whip:",
              f"GET /v1/streams/studio: live, source whip: ({info.get('state')})")
        st, hdrs, jpg = api("GET", "/v1/streams/studio/snapshot.jpg")
        check(st == 200 and hdrs.get("Content-Type") == "image/jpeg" and jpg[:2] == b"\xff\xd8",
              f"snapshot.jpg is the latest frame as a JPEG ({st}, {len(jpg)} bytes)")
        check(pub.connected(), "the publisher's peer connection is connected")
        other, st = publish("studio")
        check(st == 409, f"a second publisher on the same stream → 409 ({st})")
        other.stop()

        # ---- DELETE ends the stream; a new publisher starts it again
        check(pub.stop() == 200, "DELETE of the session → 200")
        evs = await collect(ws_url("studio"), lambda e: "ended" in states(e), 10)
        check("ended" in states(evs), f"the stream ends with status ended ({states(evs)[-3:]})")
        st, _, body = api("GET", "/v1/streams/studio")
        check(st == 200 and json.loads(body)["state"] == "ended", "the ended stream stays listed")
        check(api("DELETE", loc)[0] == 404, "the deleted session is gone (404)")
        n_before = n_commentary(evs)
        pub, st = publish("studio")
        check(st == 201, f"a new publisher on the ended stream → 201 ({st})")
        evs = await collect(ws_url("studio"), lambda e: n_commentary(e) >= n_before + 2, 30)
        check(states(evs)[-2:] == ["connecting", "live"] or states(evs)[-1:] == ["live"],
              f"live again ({states(evs)[-3:]})")
        check(n_commentary(evs) >= n_before + 2, "commentary resumes")
        check(pub.stop() == 200, "DELETE again → 200")

        # ---- VP8, VP9; a publisher that vanishes
        for codec, sid in (("VP8", "vp8"), ("VP9", "vp9")):
            pub, st = publish(sid, codec)
            check(st == 201, f"{codec} publisher: POST → 201 ({st})")
            evs = await collect(ws_url(sid), lambda e: n_commentary(e) >= 2, 30)
            check("live" in states(evs) and n_commentary(evs) >= 2,
                  f"{codec} is decoded: live, {n_commentary(evs)} commentary events")
            if codec == "VP8":
                check(pub.stop() == 200, "VP8: DELETE → 200")
            else:
                t1 = time.monotonic()
                pub.stop(delete=False)  # gone without a word
                evs = await collect(ws_url(sid), lambda e: "ended" in states(e), 25)
                ended = [e for e in evs if e["type"] == "status" and e["state"] == "ended"]
                check(bool(ended) and ended[-1].get("detail"),
                      f"a publisher that vanishes ends its stream with a reason in "
                      f"{time.monotonic() - t1:.0f} s ({ended[-1:]})")

        # ---- by SIGHUP: whip.allow_create = false (only existing whip: streams take offers),
        # a STUN server, a UDP port range (the answer's candidates use it)
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes STUN, never answers
        silent.bind(("127.0.0.1", 0))
        cfg["whip"] = {"allow_create": False,
                       "stun_server": f"stun://127.0.0.1:{silent.getsockname()[1]}",
                       "port_min": 41000, "port_max": 41100}
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        d.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        pub, st = publish("newcomer")
        check(st == 404 and "allow_create" in pub.body, f"allow_create false: a new id → 404 ({st})")
        pub.stop()
        st, _, body = api("GET", "/v1/streams/waiting")
        check(st == 200 and json.loads(body)["state"] == "connecting",
              "a configured whip: stream waits for its publisher (connecting)")
        t1 = time.monotonic()
        pub, st = publish("waiting")
        took = time.monotonic() - t1
        check(st == 201, f"allow_create false: the configured whip: stream takes a publisher ({st})")
        ports = [int(p) for p in re.findall(r"a=candidate:\S+ 1 UDP \d+ \S+ (\d+) typ host", pub.answer or "")]
        check(bool(ports) and all(41000 <= p <= 41100 for p in ports),
              f"whip.port_min/port_max (reloaded) bound the answer's UDP candidates {ports}")
        # (libnice asks STUN/TURN servers only from non-loopback addresses, so the server is
        # never queried in this namespace; the setting must not stop the answer either)
        check(took < 9, f"with whip.stun_server set, the answer still comes ({took:.1f} s)")
        silent.close()
        evs = await collect(ws_url("waiting"), lambda e: n_commentary(e) >= 1, 30)
        check("live" in states(evs) and n_commentary(evs) >= 1, "the configured stream comments")

        # ---- SIGTERM with a publisher connected
        t1 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=15)
        check(rc == 0 and time.monotonic() - t1 < 5,
              f"SIGTERM with a publisher connected exits 0 within 5 s (rc {rc}, "
              f"{time.monotonic() - t1:.1f} s)")
        pub.stop(delete=False)
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
        for p in pubs:
            p.stop(delete=False)
        log.close()
    text = open(log_path).read()
    bad_lines = [line for line in text.splitlines() if "CRITICAL" in line or "assertion" in line]
    check(not bad_lines, f"no GLib criticals in the daemon's log {bad_lines[:3]}")
    check("upnp" not in text.lower() and "ssdp" not in text.lower(), "no UPnP/SSDP in the daemon's log")
    return 1 if failures else 0


if __name__ == "__main__":
    rc = asyncio.run(main())
    print(f"whip: {len(failures)} failed" + (": " + "; ".join(failures) if failures else ""))
    sys.exit(rc)
