// dashboard.js — the dashboard at / : streams, latest frames, live commentary, forms.
//
// Everything goes through the public API: GET /v1/streams every 2 s (state, latency,
// chunks), GET /v1/streams/ID/snapshot.jpg for each stream's latest frame, one
// WS /v1/streams/ID/events per stream for its commentary (?since= on reconnects),
// POST /v1/streams to add one, PUT /v1/streams/ID/query to change its query and
// DELETE /v1/streams/ID to remove it.  With a token set on the daemon, the page asks for
// it once (or takes ?token=) and keeps it in localStorage.  Text from the daemon is only
// ever set with textContent.
(function () {
  "use strict";
  const LINES = 5; // commentary lines kept per stream
  const params = new URLSearchParams(location.search);
  let token = params.get("token") || localStorage.getItem("commentaryd.token") || "";
  const cards = new Map(); // id -> {el, ws, lastSeq, delay, timer, snapTimer}
  const $ = (sel, el) => (el || document).querySelector(sel);

  function api(method, path, body) {
    const headers = {};
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(async (r) => {
        if (r.status === 401) askToken();
        const text = await r.text();
        let data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
        if (!r.ok) throw new Error((data && data.error && data.error.message) || r.status + " " + r.statusText);
        return data;
      });
  }

  function askToken() {
    $("#token-form").hidden = false;
  }
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("#token").value.trim();
    localStorage.setItem("commentaryd.token", token);
    $("#token-form").hidden = true;
    for (const c of cards.values()) closeCard(c);
    cards.clear();
    $("#streams").textContent = "";
    refresh();
  });

  function withToken(url) {
    return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
  }

  // ---- one card per stream ----

  function newCard(id) {
    const el = $("#card").content.firstElementChild.cloneNode(true);
    el.dataset.stream = id;
    $(".id", el).textContent = id;
    $(".overlay", el).href = withToken("/overlay/" + encodeURIComponent(id));
    const c = { id, el, ws: null, lastSeq: 0, delay: 500, timer: 0, snapTimer: 0, gone: false };
    $(".query-form", el).addEventListener("submit", (e) => {
      e.preventDefault();
      const q = $(".query-form input", el).value;
      api("PUT", "/v1/streams/" + encodeURIComponent(id) + "/query", { query: q })
        .then((info) => {
          delete $(".query-form input", el).dataset.touched;
          update(c, info);
          note(c, "query set");
        })
        .catch((err) => note(c, err.message, true));
    });
    $(".remove", el).addEventListener("click", () => {
      if (!confirm("Remove stream " + id + "?")) return;
      api("DELETE", "/v1/streams/" + encodeURIComponent(id)).then(refresh).catch((err) => note(c, err.message, true));
    });
    const img = $(".snapshot", el);
    img.addEventListener("load", () => $(".frame", el).classList.add("has-frame"));
    document.getElementById("streams").appendChild(el);
    subscribe(c);
    snapshot(c);
    return c;
  }

  function note(c, text, error) {
    let n = $(".note", c.el);
    if (!n) {
      n = document.createElement("div");
      n.className = "note";
      $(".info", c.el).appendChild(n);
    }
    n.textContent = text;
    n.classList.toggle("error", !!error);
    clearTimeout(n.timer);
    n.timer = setTimeout(() => n.remove(), 4000);
  }

  function update(c, s) {
    c.info = s;
    const st = $(".state", c.el);
    st.textContent = s.state;
    st.className = "state badge " + s.state;
    $(".source", c.el).textContent = s.source;
    $(".latency", c.el).textContent = typeof s.latency_ms_p50 === "number" ? Math.round(s.latency_ms_p50) + " ms" : "–";
    $(".chunks", c.el).textContent = s.chunks;
    $(".seq", c.el).textContent = s.last_seq;
    const q = $(".query-form input", c.el);
    if (document.activeElement !== q && !q.dataset.touched) q.value = s.query || "";
  }

  // the latest frame every 2 s; a new Image so that the shown one never flickers
  function snapshot(c) {
    if (c.gone) return;
    const next = new Image();
    next.onload = () => {
      const img = $(".snapshot", c.el);
      img.src = next.src;
      c.snapTimer = setTimeout(() => snapshot(c), 2000);
    };
    next.onerror = () => { c.snapTimer = setTimeout(() => snapshot(c), 2000); };
    next.src = withToken("/v1/streams/" + encodeURIComponent(c.id) + "/snapshot.jpg?t=" + Date.now());
  }

  function addLine(c, ev) {
    const li = document.createElement("li");
    li.className = "line";
    li.dataset.seq = String(ev.seq);
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = Math.floor(ev.t_start / 60) + ":" + String(Math.floor(ev.t_start % 60)).padStart(2, "0");
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = ev.text.trim();
    li.append(t, text);
    const list = $(".commentary", c.el);
    list.appendChild(li);
    while (list.children.length > LINES) list.removeChild(list.firstChild);
  }

  function subscribe(c) {
    if (c.gone) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = withToken(scheme + "//" + location.host + "/v1/streams/" + encodeURIComponent(c.id) +
      "/events?since=" + c.lastSeq);
    const ws = new WebSocket(url);
    c.ws = ws;
    ws.onopen = () => { c.delay = 500; };
    ws.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      if (ev.type === "hello") {
        if (typeof ev.last_seq === "number" && ev.last_seq < c.lastSeq) c.lastSeq = 0;
        return;
      }
      if (typeof ev.seq === "number") {
        if (ev.seq <= c.lastSeq) return;
        c.lastSeq = ev.seq;
        $(".seq", c.el).textContent = ev.seq;
      }
      if (ev.type === "commentary" && typeof ev.text === "string" && ev.text.trim()) {
        addLine(c, ev);
        $(".latency", c.el).dataset.last = Math.round(ev.latency_ms);
      } else if (ev.type === "status") {
        const st = $(".state", c.el);
        st.textContent = ev.state;
        st.className = "state badge " + ev.state;
      }
    };
    ws.onclose = () => {
      if (c.gone) return;
      c.timer = setTimeout(() => subscribe(c), c.delay);
      c.delay = Math.min(c.delay * 2, 10000);
    };
  }

  function closeCard(c) {
    c.gone = true;
    clearTimeout(c.timer);
    clearTimeout(c.snapTimer);
    if (c.ws) c.ws.close();
    c.el.remove();
  }

  // ---- the list ----

  function refresh() {
    return api("GET", "/v1/streams").then((list) => {
      const seen = new Set();
      for (const s of list.streams) {
        seen.add(s.id);
        let c = cards.get(s.id);
        if (!c) {
          c = newCard(s.id);
          cards.set(s.id, c);
        }
        update(c, s);
      }
      for (const [id, c] of cards) {
        if (!seen.has(id)) {
          closeCard(c);
          cards.delete(id);
        }
      }
      $("#empty").hidden = cards.size > 0;
    }).catch(() => { /* shown by the 401 form or the ready badge */ });
  }

  function ready() {
    fetch("/ready").then((r) => r.json()).then((j) => {
      const b = $("#ready");
      b.textContent = j.ready ? "ready" : "loading: " + (j.reason || "");
      b.className = "badge " + (j.ready ? "ready" : "loading");
    }).catch(() => {
      const b = $("#ready");
      b.textContent = "unreachable";
      b.className = "badge ended";
    });
  }

  $("#add-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = e.target;
    const field = (name) => f.elements.namedItem(name).value;
    const body = { id: field("id").trim(), source: field("source").trim() };
    if (field("query").trim()) body.query = field("query");
    const out = $("#add-result");
    api("POST", "/v1/streams", body).then((s) => {
      out.textContent = "added " + s.id;
      out.className = "";
      f.reset();
      refresh();
    }).catch((err) => {
      out.textContent = err.message;
      out.className = "error";
    });
  });
  document.addEventListener("input", (e) => {
    if (e.target.closest(".query-form")) e.target.dataset.touched = "1";
  });

  ready();
  refresh();
  setInterval(refresh, 2000);
  setInterval(ready, 5000);
})();
