#!/usr/bin/python3
"""The web pages in a real browser (run by tests/t-pages.sh): headless Chromium, driven
over the DevTools protocol with a few lines of Python (python3-websockets) — no puppeteer.

The daemon runs the tiny random model on the built-in test source (stream `demo`) with a
bearer token.  Checked:
  * /overlay/demo?token=…&size=40&lines=3: the page is transparent, uses the style
    parameters, and shows the latest commentary — each caption line's text is exactly the
    text of the commentary event with its seq; when the stream goes away and comes back
    (DELETE + POST of the same id) the page reconnects by itself, with ?since= (the
    daemon's debug log), and shows the new stream's commentary;
  * / without the token asks for it; with it, the dashboard lists `demo` as live with its
    latency, its latest frame (snapshot.jpg loaded) and its live commentary (again equal
    to the events); the add form creates a stream over POST /v1/streams, the query form
    changes a stream's query over PUT;
  * no JavaScript exception on either page.
Screenshots: build/screenshots/overlay.png, dashboard.png.  Chromium runs with a fresh
profile and every background service off; t-pages.sh runs all of it in a private network
namespace where it can.  Bounded: about 60 s.
"""
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_lib import (DAEMON, MODEL, ROOT, check, die_with_parent,  # noqa: E402
                        exit_on_sigterm, failures, free_port)

SHOTS = os.path.join(ROOT, "build", "screenshots")
TOKEN = "pages-s3cret"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--disable-extensions", "--disable-default-apps", "--mute-audio",
                  "--no-default-browser-check", "--metrics-recording-only",
                  "--disable-features=Translate,OptimizationHints,MediaRouter",
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                  "--window-size=1280,720"]


def http(method, url, body=None, token=TOKEN):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class CDP:
    """The DevTools protocol over one WebSocket: sequential calls, events kept."""

    def __init__(self, ws):
        self.ws, self.n, self.events = ws, 0, []

    async def call(self, method, params=None, session=None, timeout=20):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        t0 = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise TimeoutError(method)
            m = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if m.get("id") == self.n:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)


class Page:
    def __init__(self, cdp, session):
        self.cdp, self.s = cdp, session

    async def go(self, url):
        await self.cdp.call("Page.navigate", {"url": url}, self.s)

    async def js(self, expr):
        r = await self.cdp.call("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                                self.s)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails'].get('text')}")
        return r.get("result", {}).get("value")

    async def wait(self, expr, timeout, what):
        """Polls expr until it is truthy; returns its last value."""
        t0, v = time.monotonic(), None
        while time.monotonic() - t0 < timeout:
            try:
                v = await self.js(expr)
            except RuntimeError:
                v = None
            if v:
                return v
            await asyncio.sleep(0.25)
        print(f"     timed out waiting for {what}: {v!r}", flush=True)
        return v

    async def shot(self, name):
        r = await self.cdp.call("Page.captureScreenshot", {"format": "png"}, self.s)
        path = os.path.join(SHOTS, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        return path

    def exceptions(self):
        return [e["params"]["exceptionDetails"].get("exception", {}).get("description")
                or e["params"]["exceptionDetails"].get("text")
                for e in self.cdp.events
                if e.get("method") == "Runtime.exceptionThrown" and e.get("sessionId") == self.s]


async def events_by_seq(port, sid):
    """The stream's history: {seq: event} of its commentary (WS ?since=0)."""
    got = {}
    url = f"ws://127.0.0.1:{port}/v1/streams/{sid}/events?since=0&token={TOKEN}"
    async with websockets.connect(url, max_size=2**20) as ws:
        while True:
            try:
                ev = json.loads(await asyncio.wait_for(ws.recv(), 0.7))
            except asyncio.TimeoutError:
                break
            if ev["type"] == "commentary":
                got[ev["seq"]] = ev
    return got


LINES_JS = ("JSON.stringify([...document.querySelectorAll(%r)].map(e => ({seq: +e.dataset.seq, "
            "text: (e.querySelector('.text') || e).textContent})))")


async def lines_match(page, port, sid, selector):
    """The page's commentary lines, and whether each equals its event's text."""
    lines = json.loads(await page.js(LINES_JS % selector) or "[]")
    evs = await events_by_seq(port, sid)
    ok = bool(lines) and all(l["seq"] in evs and evs[l["seq"]]["text"].strip() == l["text"]
                             for l in lines)
    return lines, ok


exit_on_sigterm()


async def main():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    os.makedirs(SHOTS, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="commentaryd-pages-")
    cfg = {
        "listen": f"127.0.0.1:{port}", "model": MODEL, "backend": "cpu", "threads": 1,
        "token": TOKEN, "log_level": "debug", "history": 64,
        "policy": {"vision_window": 4, "text_rounds": 4, "prev_sink": 32, "prev_window": 32,
                   "max_new_tokens": 6},
        "streams": [{"id": "demo", "source": "test:", "query": "Describe what happens on screen."}],
    }
    cfg_path = os.path.join(tmp, "commentaryd.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    log_path = os.path.join(ROOT, "build", "test-logs", "pages-daemon.log")
    log = open(log_path, "w")
    d = subprocess.Popen([DAEMON, "--config", cfg_path], stdout=log, stderr=subprocess.STDOUT,
                         preexec_fn=die_with_parent)
    profile = os.path.join(tmp, "chromium-profile")
    br = None
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
        st, page_html = http("GET", base + "/overlay/demo", token=None)
        check(st == 200 and b"overlay.js" in page_html, "GET /overlay/demo serves the page without a token")
        st, page_html = http("GET", base + "/", token=None)
        check(st == 200 and b"dashboard.js" in page_html, "GET / serves the dashboard")

        br = subprocess.Popen([chromium] + CHROMIUM_FLAGS + [f"--user-data-dir={profile}",
                                                             "about:blank"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "chromium.log"), "w"),
                              preexec_fn=die_with_parent)
        port_file = os.path.join(profile, "DevToolsActivePort")
        t0 = time.monotonic()
        while not os.path.exists(port_file) and time.monotonic() - t0 < 30 and br.poll() is None:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
        if not check(os.path.exists(port_file), "Chromium started (DevToolsActivePort)"):
            print(open(os.path.join(tmp, "chromium.log")).read()[-2000:])
            return 1
        dport, dpath = open(port_file).read().split()[:2]
        async with websockets.connect(f"ws://127.0.0.1:{dport}{dpath}", max_size=2**26) as ws:
            cdp = CDP(ws)

            async def new_page(transparent=False):
                t = await cdp.call("Target.createTarget", {"url": "about:blank"})
                s = (await cdp.call("Target.attachToTarget",
                                    {"targetId": t["targetId"], "flatten": True}))["sessionId"]
                await cdp.call("Runtime.enable", {}, s)
                await cdp.call("Page.enable", {}, s)
                await cdp.call("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": 720, "deviceScaleFactor": 1,
                                "mobile": False}, s)
                if transparent:  # as OBS composites it: see-through where the page is
                    await cdp.call("Emulation.setDefaultBackgroundColorOverride",
                                   {"color": {"r": 0, "g": 0, "b": 0, "a": 0}}, s)
                return Page(cdp, s)

            # ---- the overlay
            ov = await new_page(transparent=True)
            await ov.go(f"{base}/overlay/demo?token={TOKEN}&size=40&lines=3&position=bottom")
            n = await ov.wait("document.querySelectorAll('#captions .line').length", 40,
                              "overlay captions")
            check(bool(n), f"the overlay shows commentary ({n} lines)")
            await asyncio.sleep(2.5)  # a few more lines: the cap of 3 must hold
            lines, ok = await lines_match(ov, port, "demo", "#captions .line")
            check(ok, f"each caption is the text of its commentary event {lines}")
            check(0 < len(lines) <= 3, f"at most lines=3 lines ({len(lines)})")
            style = json.loads(await ov.js(
                "JSON.stringify({bg: getComputedStyle(document.body).backgroundColor, "
                "html: getComputedStyle(document.documentElement).backgroundColor, "
                "size: getComputedStyle(document.getElementById('captions')).fontSize, "
                "pos: document.getElementById('captions').className, "
                "bottom: document.getElementById('captions').getBoundingClientRect().bottom})"))
            check(style["bg"] == "rgba(0, 0, 0, 0)" and style["html"] == "rgba(0, 0, 0, 0)",
                  f"transparent background ({style['bg']}, {style['html']})")
            check(style["size"] == "40px", f"size=40 sets the font size ({style['size']})")
            check(style["pos"] == "bottom" and 620 < style["bottom"] <= 720,
                  f"position=bottom puts the captions at the bottom ({style['bottom']:.0f} px)")
            path = await ov.shot("overlay.png")
            check(os.path.getsize(path) > 1000, f"screenshot {os.path.relpath(path, ROOT)}")

            # the stream goes away and comes back: the overlay reconnects by itself
            await ov.js("document.querySelectorAll('#captions .line').forEach(e => e.dataset.old = 1); true")
            check(http("DELETE", base + "/v1/streams/demo")[0] == 204, "DELETE /v1/streams/demo")
            await asyncio.sleep(1.5)
            st, _ = http("POST", base + "/v1/streams",
                         {"id": "demo", "source": "test:smpte", "query": "Which colours?"})
            check(st == 201, f"the same id again ({st})")
            fresh = await ov.wait("document.querySelectorAll('#captions .line:not([data-old])').length",
                                  40, "captions of the new stream")
            lines, ok = await lines_match(ov, port, "demo", "#captions .line:not([data-old])")
            check(bool(fresh) and ok, f"the overlay reconnected by itself and shows the new "
                  f"stream's commentary {lines}")
            text = open(log_path).read()
            resumes = [int(m) for m in re.findall(r"ws\[demo\] subscriber joined \(since (\d+)\)", text)]
            check(any(s > 0 for s in resumes), f"its reconnects resume with ?since= ({resumes[-4:]})")
            check(not ov.exceptions(), f"no JavaScript exception on the overlay {ov.exceptions()[:2]}")

            # ---- the dashboard: first without the token, then with it
            db = await new_page()
            await db.go(f"{base}/")
            asked = await db.wait("!document.getElementById('token-form').hidden", 15, "the token form")
            check(bool(asked), "without the token the dashboard asks for it")
            await db.js("document.getElementById('token').value = %s; "
                        "document.getElementById('token-form').requestSubmit(); true" % json.dumps(TOKEN))
            card = "[data-stream=\"demo\"]"
            live = await db.wait(f"(document.querySelector('{card} .state') || {{}}).textContent === 'live' "
                                 f"&& document.querySelectorAll('{card} .line').length >= 2", 40,
                                 "the demo card live with commentary")
            check(bool(live), "the dashboard lists demo as live with commentary")
            snap = await db.wait(f"document.querySelector('{card} .snapshot').naturalWidth", 20,
                                 "the snapshot")
            check(bool(snap), f"the latest frame is shown (snapshot.jpg, {snap} px wide)")
            lat = await db.wait(f"/^[0-9]+ ms$/.test(document.querySelector('{card} .latency').textContent)"
                                f" && document.querySelector('{card} .latency').textContent", 20, "latency")
            check(bool(lat), f"the latency p50 is shown ({lat})")
            lines, ok = await lines_match(db, port, "demo", f"{card} .line")
            check(ok, f"the dashboard's commentary is the stream's {lines[-2:]}")

            # the add form (POST /v1/streams) and the query form (PUT …/query)
            await db.js("const f = document.getElementById('add-form');"
                        "f.elements.namedItem('id').value = 'cam2';"
                        "f.elements.namedItem('source').value = 'test:snow';"
                        "f.elements.namedItem('query').value = 'Is it noisy?';"
                        "f.requestSubmit(); true")
            added = await db.wait("!!document.querySelector('[data-stream=\"cam2\"]')", 15, "the cam2 card")
            st, body = http("GET", base + "/v1/streams/cam2")
            check(bool(added) and st == 200 and json.loads(body)["query"] == "Is it noisy?",
                  f"the add form creates a stream ({st})")
            await db.js(f"const q = document.querySelector('{card} .query-form');"
                        "q.elements.namedItem('query').value = 'What moves?';"
                        "q.requestSubmit(); true")
            t0 = time.monotonic()
            q = None
            while time.monotonic() - t0 < 10:
                q = json.loads(http("GET", base + "/v1/streams/demo")[1]).get("query")
                if q == "What moves?":
                    break
                await asyncio.sleep(0.25)
            check(q == "What moves?", f"the query form changes the query ({q!r})")
            await db.wait("document.querySelectorAll('[data-stream=\"cam2\"] .line').length", 20,
                          "cam2 commentary")
            path = await db.shot("dashboard.png")
            check(os.path.getsize(path) > 1000, f"screenshot {os.path.relpath(path, ROOT)}")
            check(not db.exceptions(), f"no JavaScript exception on the dashboard {db.exceptions()[:2]}")
            await cdp.call("Browser.close")
        d.send_signal(signal.SIGTERM)
        check(d.wait(timeout=10) == 0, "the daemon exits 0")
    finally:
        if br is not None:
            try:
                br.wait(timeout=5)
            except subprocess.TimeoutExpired:
                br.kill()
                br.wait()
        if d.poll() is None:
            d.kill()
            d.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    rc = asyncio.run(main())
    print(f"pages: {len(failures)} failed" + (": " + "; ".join(failures) if failures else ""))
    sys.exit(rc)
