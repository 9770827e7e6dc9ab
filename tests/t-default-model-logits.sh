#!/usr/bin/env bash
# Script test: the C engine and the PyTorch implementation the default model was trained
# with (scripts/default_model/vlm.py, session.py) compute the same thing on
# models/default, or, until it is made, on the same architecture with make.py's seeded
# initial weights (make.py --init-only).  reference.py replays a 10-chunk stream (drawn ball and solid scenes,
# policy V=T=3, S=4, W=6, M=12, so every eviction step runs) through the PyTorch model
# with the engine's KV-cache semantics and writes a stream fixture; `commentary check`
# replays it through the C session and compares every array: pixel values, vision
# embeddings (1e-4), retained ids/roles/rounds after eviction, positions, every logits
# row (1e-3), greedy tokens.  Then the C tokenizer must give the Python tokenizer's ids.
# Exit 0 pass, 77 skip (the reason on the last line), anything else fail.
set -u
cd "$(dirname "$0")/.."
bin=build/bin/commentary
model=models/default
py=/usr/bin/python3
skip() { echo "$1"; exit 77; }
[ -x "$bin" ] || skip "skip: $bin is not built (run make)"
"$py" -c 'import torch, numpy' 2>/dev/null ||
    skip "skip: python3-torch is not installed (apt-get install python3-torch, or make deps)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -f "$model/model.safetensors" ]; then
    "$py" -c 'import torchvision' 2>/dev/null ||
        skip "skip: $model is missing and python3-torchvision is not installed (make deps)"
    model=$tmp/init
    "$py" scripts/default_model/make.py --init-only "$model" >"$tmp/init.log" 2>&1 ||
        { echo "FAIL: make.py --init-only:"; cat "$tmp/init.log"; exit 1; }
    echo "$model: models/default is not made yet; the untrained architecture instead"
fi
"$py" scripts/default_model/reference.py "$model" "$tmp/fix" --chunks 10 ||
    { echo "FAIL: reference.py"; exit 1; }
ln -s "$(cd "$model" && pwd)" "$tmp/fix/model"
fail=0
if "$bin" check "$tmp/fix" --weights model >"$tmp/check.out" 2>&1; then
    echo "check: $(tail -n 1 "$tmp/check.out")"
else
    echo "FAIL: commentary check:"; grep -v PASS "$tmp/check.out" | head -40; fail=1
fi
awk '/_logits\[/ { if ($2 > m) m = $2 } END { printf "logits max abs error C vs PyTorch: %.3g\n", m }' \
    "$tmp/check.out"
awk '/_video_embeds/ { if ($2 > m) m = $2 } END { printf "vision embeddings max abs error: %.3g\n", m }' \
    "$tmp/check.out"

"$py" - "$tmp/fix/tokenize.json" "$tmp/strings.jsonl" <<'EOF'
import json, sys
with open(sys.argv[2], "w") as f:
    for e in json.load(open(sys.argv[1])):
        f.write(json.dumps(e["text"]) + "\n")
EOF
"$bin" tokenize --tokenizer "$model/tokenizer.json" <"$tmp/strings.jsonl" >"$tmp/c-ids.jsonl" ||
    { echo "FAIL: commentary tokenize"; fail=1; }
"$py" - "$tmp/fix/tokenize.json" "$tmp/c-ids.jsonl" <<'EOF' || fail=1
import json, sys
want = json.load(open(sys.argv[1]))
got = [json.loads(l) for l in open(sys.argv[2])]
bad = [(w["text"], w["ids"], g) for w, g in zip(want, got) if w["ids"] != g]
for t, w, g in bad:
    print("FAIL: tokenize %r: python %s, C %s" % (t, w, g))
if len(got) != len(want):
    print("FAIL: %d tokenizer results, want %d" % (len(got), len(want)))
    sys.exit(1)
print("tokenizer: %d strings, C == python" % len(want) if not bad else "tokenizer differs")
sys.exit(1 if bad else 0)
EOF
exit $fail
