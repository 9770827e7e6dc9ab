// overlay.js — the caption overlay of /overlay/ID (OBS Browser Source).
//
// Query parameters: token (when the daemon has one), size (font size in px, 8..200,
// default 36), position (top | middle | bottom, default bottom), lines (lines shown at
// most, 1..20, default 2), align (left | center | right), color and bg (CSS colours of
// the text and of its box), font (a CSS font family), hold (seconds a line stays, 0 =
// until newer lines push it out).
//
// Subscribes to WS /v1/streams/ID/events: the first time with ?since=0 (the history
// replays, so the latest lines show at once), then, after any close, again with
// ?since=LAST_SEQ (capped exponential backoff: a stream that does not exist yet is
// waited for).  Only commentary with text is shown; every line is a .line element with
// data-seq, its text set with textContent (never parsed as HTML).
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const token = params.get("token") || "";

  function num(key, dflt, lo, hi) {
    const v = parseFloat(params.get(key));
    return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt;
  }
  function oneOf(key, allowed, dflt) {
    const v = params.get(key);
    return allowed.includes(v) ? v : dflt;
  }
  function cssValue(prop, key) {
    const v = params.get(key);
    return v && window.CSS && CSS.supports(prop, v) ? v : null;
  }

  const opt = {
    size: num("size", 36, 8, 200),
    lines: Math.round(num("lines", 2, 1, 20)),
    position: oneOf("position", ["top", "middle", "bottom"], "bottom"),
    align: oneOf("align", ["left", "center", "right"], "center"),
    hold: num("hold", 0, 0, 3600),
  };
  const root = document.documentElement.style;
  root.setProperty("--size", opt.size + "px");
  root.setProperty("--align", { left: "flex-start", center: "center", right: "flex-end" }[opt.align]);
  const color = cssValue("color", "color");
  if (color) root.setProperty("--color", color);
  const bg = cssValue("background-color", "bg");
  if (bg) root.setProperty("--bg", bg);
  const font = cssValue("font-family", "font");
  if (font) root.setProperty("--font", font);

  const box = document.getElementById("captions");
  box.className = opt.position;
  box.style.textAlign = opt.align;

  let lastSeq = 0;
  let delay = 500;

  function show(ev) {
    const line = document.createElement("div");
    line.className = "line";
    line.dataset.seq = String(ev.seq);
    line.textContent = ev.text.trim();
    box.appendChild(line);
    while (box.children.length > opt.lines) box.removeChild(box.firstChild);
    if (opt.hold > 0) {
      setTimeout(() => {
        line.classList.add("gone");
        setTimeout(() => line.remove(), 600);
      }, opt.hold * 1000);
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = scheme + "//" + location.host + "/v1/streams/" + encodeURIComponent(id) +
      "/events?since=" + lastSeq;
    if (token) url += "&token=" + encodeURIComponent(token);
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      setTimeout(connect, delay);
      return;
    }
    ws.onopen = () => {
      delay = 500;
      document.body.dataset.state = "open";
    };
    ws.onmessage = (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      if (ev.type === "hello") {
        if (typeof ev.last_seq === "number" && ev.last_seq < lastSeq) lastSeq = 0; // a new stream
        return;
      }
      if (typeof ev.seq === "number") {
        if (ev.seq <= lastSeq) return;
        lastSeq = ev.seq;
      }
      if (ev.type === "commentary" && typeof ev.text === "string" && ev.text.trim()) show(ev);
    };
    ws.onclose = () => {
      document.body.dataset.state = "closed";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  if (!id) {
    box.textContent = "usage: /overlay/STREAM_ID";
    return;
  }
  connect();
})();
