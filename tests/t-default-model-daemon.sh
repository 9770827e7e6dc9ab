#!/usr/bin/env bash
# Script test: the whole path with a right answer.  commentaryd runs the shipped config's
# `demo` stream (the bare test: source, which cycles videotestsrc scenes every 4 s at
# whole seconds of stream time) with models/default; a WebSocket subscriber takes the
# first 24 chunks' commentary; the daemon's debug log says which scene the source showed
# (pattern and colours, as set on videotestsrc).  Pass: every text is one the default
# model can say, and >= 90% of chunks name the scene and colours the source showed (the
# direction needs the frames, which the accuracy test checks on clips).  Loopback only.
# Exit 0 pass, 77 skip (the reason on the last line), anything else fail.
set -u
cd "$(dirname "$0")/.."
py=/usr/bin/python3
skip() { echo "$1"; exit 77; }
[ -x build/bin/commentaryd ] || skip "skip: build/bin/commentaryd is not built (run make)"
[ -f models/default/model.safetensors ] || skip "skip: models/default is missing (make default-model)"
"$py" -c 'import websockets' 2>/dev/null || skip "skip: python3-websockets is missing (make deps)"
gst-inspect-1.0 videotestsrc >/dev/null 2>&1 || skip "skip: GStreamer element videotestsrc is missing"

tmp=$(mktemp -d)
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
build/bin/commentaryd --config config/commentaryd.json --model models/default \
    --listen "127.0.0.1:$port" --log-level debug >"$tmp/daemon.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT

timeout 120 "$py" - "$port" "$tmp/daemon.log" <<'EOF'
import asyncio, json, os, re, sys, time
sys.path.insert(0, "tests")
sys.path.insert(0, "scripts/default_model")
import scenes as S  # noqa: E402  the commentary texts (numpy only)
from daemon_lib import collect  # noqa: E402

port, log = sys.argv[1], sys.argv[2]
url = "ws://127.0.0.1:%s/v1/streams/demo/events?since=0" % port
t0 = time.monotonic()
while True:  # until the daemon listens
    evs = asyncio.run(collect(url, lambda e: True, 2))
    if evs or time.monotonic() - t0 > 30:
        break
    time.sleep(0.5)
want = 24
evs = asyncio.run(collect(url, lambda e: sum(x["type"] == "commentary" for x in e) >= want, 90))
got = [e for e in evs if e["type"] == "commentary"][:want]
if len(got) < want:
    print("FAIL: %d commentary events in 90 s, want %d" % (len(got), want))
    print(open(log).read()[-3000:])
    sys.exit(1)
shown = {}
for line in open(log):
    m = re.search(r"test scene (\d+): pattern=(\S+) foreground=(\S+) background=(\S+)", line)
    if m:
        n, p, f, b = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        shown[n] = S.commentary(S.scene(p, f, b), "still").split(",")[0]
texts = set(S.all_texts())
ok = bad = 0
for e in got:
    scene = shown.get(int(e["t_start"] // 4))
    head = e["text"].split(",")[0]
    if e["text"] not in texts:
        bad += 1
        print("not a commentary the model can say: t=%4.1f %r" % (e["t_start"], e["text"]))
    ok += head == scene
    if head != scene:
        print("miss t=%4.1f: source showed %-24r got %r" % (e["t_start"], scene, e["text"]))
print("default model in the daemon on the test source, %d chunks: %d right on scene and "
      "colours; %d scenes shown" % (len(got), ok, len(shown)))
if bad or ok < 0.9 * len(got):
    print("FAIL: want every text valid and >= 90% of chunks right on scene and colours")
    sys.exit(1)
print("PASS")
EOF
