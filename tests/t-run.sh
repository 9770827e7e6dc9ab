#!/usr/bin/env bash
# Script test: `commentary run` end to end on the tiny random model (meaningless words,
# the whole path): H.264 MP4 clips made with gst-launch-1.0 in a temporary folder.
#   - a 4 s 30 fps clip with --seconds 3 --vtt: exactly 3 JSON lines (t_start 0,1,2, t_end
#     1,2,3, a text string, an ms number) and a WebVTT file with one cue per non-empty text;
#   - a 2.2 s clip: 3 chunks, the last one using its 2.0 s frame twice (no frame >= 2.5 s);
#   - 15 fps (slot 1 is the 8/15 s frame), 29.97 fps, 333x241 (padded RGB rows), a
#     file:// URI;
#   - errors, each exit 2 with a clear line: a missing input, a text file named .mp4, an
#     audio-only file, a missing --model, a missing model folder, a bad option.
# Exit 0 pass, 77 skip (the reason on the last line), anything else fail.
set -u
cd "$(dirname "$0")/.."
bin=build/bin/commentary
model=build/models/tiny-random
py=/usr/bin/python3
skip() { echo "$1"; exit 77; }
[ -x "$bin" ] || skip "skip: $bin is not built (run make)"
[ -f "$model/model.safetensors" ] || skip "skip: $model is missing (run make)"
[ -x "$py" ] || skip "skip: $py is missing"
command -v gst-launch-1.0 >/dev/null || skip "skip: gst-launch-1.0 missing (gstreamer1.0-tools)"
for e in videotestsrc x264enc mp4mux avdec_h264 audiotestsrc wavenc; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 || skip "skip: GStreamer element $e is missing"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# clip NAME FRAMES WIDTH HEIGHT FRAMERATE
clip() {
    gst-launch-1.0 -q videotestsrc num-buffers="$2" pattern=ball \
        ! "video/x-raw,width=$3,height=$4,framerate=$5" ! x264enc ! mp4mux \
        ! filesink location="$tmp/$1.mp4" || { bad "cannot make $1.mp4"; exit 1; }
}
clip c4s 120 320 240 30/1
clip c22 66 320 240 30/1
clip c15 45 320 240 15/1
clip c2997 90 320 240 30000/1001
clip odd 60 333 241 30/1

# run NAME ARGS...: run the CLI on the CPU, stdout in $tmp/NAME.out, stderr in $tmp/NAME.err,
# rc in $rc (the default backend, auto, is checked once below)
run() {
    local name=$1
    shift
    timeout 60 "$bin" run "$@" --backend cpu >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
}

# check_json NAME N: NAME.out holds exactly N chunk lines, t_start 0..N-1 and t_end 1..N
check_json() {
    "$py" - "$tmp/$1.out" "$2" <<'EOF' || bad "$1: bad json output (above)"
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
n = int(sys.argv[2])
assert len(lines) == n, f"{len(lines)} lines, want {n}: {lines}"
for i, line in enumerate(lines):
    j = json.loads(line)
    assert set(j) == {"t_start", "t_end", "text", "ms"}, j
    assert j["t_start"] == i and j["t_end"] == i + 1, j
    assert isinstance(j["text"], str), j
    assert isinstance(j["ms"], (int, float)) and not isinstance(j["ms"], bool), j
    assert j["ms"] > 0, j
EOF
}

# check_frames NAME "a b" "c d" ...: --verbose named these frame stream times per chunk
check_frames() {
    local name=$1 i=0
    shift
    for want in "$@"; do
        set -- $want
        grep -qx "commentary run: chunk $i: frames at $1 s and $2 s" "$tmp/$name.err" ||
            bad "$name: chunk $i did not use frames at $1 s and $2 s:" \
                "$(grep "chunk $i:" "$tmp/$name.err")"
        i=$((i + 1))
    done
}

# 1. --seconds 3 on a 4 s clip, with a VTT file
run main --model "$model" --input "$tmp/c4s.mp4" --seconds 3 --vtt "$tmp/out.vtt" --verbose
[ "$rc" = 0 ] || bad "main: exit $rc: $(cat "$tmp/main.err")"
check_json main 3
check_frames main "0.000000 0.500000" "1.000000 1.500000" "2.000000 2.500000"
"$py" - "$tmp/main.out" "$tmp/out.vtt" <<'EOF' || bad "main: bad vtt (above)"
import json, re, sys
chunks = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
vtt = open(sys.argv[2], encoding="utf-8").read()
assert vtt.startswith("WEBVTT\n\n"), repr(vtt[:40])
def ts(i):
    return "%02d:%02d:%02d.000" % (i // 3600, i // 60 % 60, i % 60)
want = "WEBVTT\n\n"
for c in chunks:
    text = c["text"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\r", " ").replace("\n", " ")
    if text.strip():
        want += f"{ts(c['t_start'])} --> {ts(c['t_end'])}\n{text}\n\n"
assert vtt == want, f"vtt:\n{vtt}\nwant:\n{want}"
cues = re.findall(r"^(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)$", vtt, re.M)
assert len(cues) == sum(1 for c in chunks if c["text"].strip()), cues
EOF

# 2. 2.2 s: chunk 2 has a frame at 2.0 s but none at or after 2.5 s -> that frame twice
run c22 --model "$model" --input "$tmp/c22.mp4" --verbose
[ "$rc" = 0 ] || bad "c22: exit $rc: $(cat "$tmp/c22.err")"
check_json c22 3
check_frames c22 "0.000000 0.500000" "1.000000 1.500000" "2.000000 2.000000"

# 3. 15 fps: 7/15 s < 0.5 <= 8/15 s
run c15 --model "$model" --input "$tmp/c15.mp4" --verbose
[ "$rc" = 0 ] || bad "c15: exit $rc: $(cat "$tmp/c15.err")"
check_json c15 3
check_frames c15 "0.000000 0.533333" "1.000000 1.533333" "2.000000 2.533333"

# 4. 29.97 fps: frame 15 is 0.5005 s, frame 30 is 1.001 s, frame 45 is 1.5015 s
run c2997 --model "$model" --input "$tmp/c2997.mp4" --verbose
[ "$rc" = 0 ] || bad "c2997: exit $rc: $(cat "$tmp/c2997.err")"
check_json c2997 3
check_frames c2997 "0.000000 0.500500" "1.001000 1.501500" "2.002000 2.502500"

# 5. 333x241: not a multiple of 28 and RGB rows padded to 1000 bytes
run odd --model "$model" --input "$tmp/odd.mp4"
[ "$rc" = 0 ] || bad "odd: exit $rc: $(cat "$tmp/odd.err")"
check_json odd 2

# 6. a file:// URI, --query and --previous-text with quotes
run uri --model "$model" --input "file://$tmp/c22.mp4" --seconds 1 --query 'say "hi" <now>' \
    --previous-text 'previously: a "goal"'
[ "$rc" = 0 ] || bad "uri: exit $rc: $(cat "$tmp/uri.err")"
check_json uri 1

# 7. errors: exit 2, one clear line naming the input
expect_err() {  # NAME PATTERN: exit 2 and stderr matches PATTERN, stdout empty
    [ "$rc" = 2 ] || bad "$1: exit $rc, want 2: $(cat "$tmp/$1.err")"
    grep -q -- "$2" "$tmp/$1.err" || bad "$1: stderr does not match '$2': $(cat "$tmp/$1.err")"
    [ -s "$tmp/$1.out" ] && bad "$1: printed on stdout: $(cat "$tmp/$1.out")"
    echo "ok   $1: $(head -n 1 "$tmp/$1.err")"
}
run missing --model "$model" --input "$tmp/nope.mp4"
expect_err missing "$tmp/nope.mp4: cannot open: No such file"
echo "this is not a video" >"$tmp/text.mp4"
run text --model "$model" --input "$tmp/text.mp4"
expect_err text "$tmp/text.mp4: Could not determine type of stream"
gst-launch-1.0 -q audiotestsrc num-buffers=20 ! wavenc ! filesink location="$tmp/a.wav"
run audio --model "$model" --input "$tmp/a.wav"
expect_err audio "$tmp/a.wav: no video stream"
run nomodelarg --input "$tmp/c22.mp4"
expect_err nomodelarg "--model is required"
run nomodel --model "$tmp/no-model" --input "$tmp/c22.mp4"
expect_err nomodel "model $tmp/no-model: No such file"
run badopt --model "$model" --input "$tmp/c22.mp4" --frobnicate
expect_err badopt "unexpected argument '--frobnicate'"
run badsec --model "$model" --input "$tmp/c22.mp4" --seconds 0
expect_err badsec "--seconds wants"
# the model directory: a missing one and a file named as one say so
run nomodel --model "$tmp/no-model" --input "$tmp/c22.mp4"
expect_err nomodel "no-model: No such file or directory"
run filemodel --model "$tmp/c22.mp4" --input "$tmp/c22.mp4"
expect_err filemodel "c22.mp4: not a directory"
# an optional model file that exists but cannot be read is an error, not a default
for f in generation_config.json preprocessor_config.json; do
    rm -rf "$tmp/m-$f" && cp -r "$model" "$tmp/m-$f"
    rm "$tmp/m-$f/$f" && ln -s "$f" "$tmp/m-$f/$f"  # a link to itself: ELOOP, not ENOENT
    run "loop-$f" --model "$tmp/m-$f" --input "$tmp/c22.mp4"
    expect_err "loop-$f" "$f: cannot open: Too many levels of symbolic links"
done
# texts longer than a session takes: refused before any video is read, naming the limit
words() { python3 -c "import sys; print(' '.join(['word'] * int(sys.argv[1])))" "$1"; }
run longquery --model "$model" --input "$tmp/c22.mp4" --query "$(words 300)"
expect_err longquery "^commentary run: query is 300 tokens, more than 256$"
run longprev --model "$model" --input "$tmp/c22.mp4" --previous-text "$(words 5000)"
expect_err longprev "^commentary run: previous_text is 5000 tokens, more than 4096$"
# the default backend is auto: the GPU when one is usable, else the CPU with a warning
timeout 60 "$bin" run --model "$model" --input "$tmp/c22.mp4" --seconds 1 >"$tmp/auto.out" \
    2>"$tmp/auto.err"
rc=$?
if [ $rc = 0 ] && { [ ! -s "$tmp/auto.err" ] ||
        grep -qx "commentary: warning: backend auto: no usable CUDA device .*; using the cpu" "$tmp/auto.err"; }; then
    echo "ok   default backend auto: exit 0$( [ -s "$tmp/auto.err" ] && echo ', the CPU with a warning')"
else
    bad "default backend auto: exit $rc, stderr: $(head -c 300 "$tmp/auto.err")"
fi

# help is asked for, not a mistake: usage on stdout, exit 0
for cmd in "" run check tokenize detokenize; do
    if "$bin" $cmd --help >"$tmp/help.out" 2>"$tmp/help.err" && grep -q "^usage: commentary" "$tmp/help.out"; then
        echo "ok   commentary${cmd:+ $cmd} --help: usage, exit 0"
    else
        bad "commentary${cmd:+ $cmd} --help: exit $? or no usage on stdout"
    fi
done

[ "$fail" = 0 ] && echo "commentary run: all checks passed"
exit $fail
