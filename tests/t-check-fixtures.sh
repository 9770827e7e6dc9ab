#!/usr/bin/env bash
# Golden test: `commentary check` on the vendored transformers fixtures (f32 weights),
# and on every fixture in ../shared/fixtures/qwen25vl with f32 and bf16 weights when that
# folder is present.  Also proves the check can fail: a fixture whose reference logits
# were perturbed must be reported as FAIL with exit status 1.
set -u
cd "$(dirname "$0")/.."
bin=build/bin/commentary
fail=0
run() {
    if "$bin" check "$@" >build/test-logs/check.out 2>&1; then
        echo "ok   $* ($(tail -n 1 build/test-logs/check.out))"
    else
        echo "FAIL $*"; cat build/test-logs/check.out; fail=1
    fi
}
for f in tests/fixtures/qwen25vl/*/; do run "${f%/}"; done
shared=${COMMENTARY_SHARED:-../shared/fixtures}
if [ -d "$shared/qwen25vl" ]; then
    for f in "$shared"/qwen25vl/*/; do
        run "${f%/}" --weights model
        run "${f%/}" --weights model-bf16
    done
else
    echo "note: $shared not present; checked the vendored fixtures only"
fi

# the check must be able to fail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r tests/fixtures/qwen25vl/base-s0 "$tmp/f"
chmod -R u+w "$tmp/f"
/usr/bin/python3 - "$tmp/f/ref/logits.bin" <<'PY'
import sys, struct
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
v = struct.unpack_from('<f', b, 400)[0]
struct.pack_into('<f', b, 400, v + 0.01)
open(p, 'wb').write(b)
PY
"$bin" check "$tmp/f" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q '^logits .*FAIL' "$tmp/out"; then
    echo "ok   perturbed logits are caught (exit 1)"
else
    echo "FAIL perturbed logits not caught (exit $rc)"; cat "$tmp/out"; fail=1
fi
# a reference file cut short, one missing, a shape no file can have: failures, not skips
cp -r tests/fixtures/qwen25vl/base-s0 "$tmp/g"
chmod -R u+w "$tmp/g"
truncate -s 100 "$tmp/g/ref/logits.bin"
rm "$tmp/g/ref/final_norm.bin"
"$bin" check "$tmp/g" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q '^logits .*FAIL (.*fewer bytes' "$tmp/out" &&
   grep -q '^final_norm .*FAIL (.*cannot open' "$tmp/out"; then
    echo "ok   short and missing reference files fail (exit 1)"
else
    echo "FAIL short or missing reference files not caught (exit $rc)"; cat "$tmp/out"; fail=1
fi
cp -r tests/fixtures/qwen25vl/base-s0 "$tmp/h"
chmod -R u+w "$tmp/h"
/usr/bin/python3 - "$tmp/h/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["arrays"]["logits"]["shape"] = [4611686018427387904 + 16]
json.dump(m, open(sys.argv[1], "w"))
PY
"$bin" check "$tmp/h" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q '^logits .*FAIL (manifest shape' "$tmp/out"; then
    echo "ok   an impossible manifest shape fails (exit 1), no crash"
else
    echo "FAIL impossible manifest shape (exit $rc)"; tail -3 "$tmp/out"; fail=1
fi
"$bin" check "$tmp/does-not-exist" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 2 ]; then echo "ok   missing fixture is exit 2: $(head -n1 "$tmp/out")"; else echo "FAIL missing fixture exit $rc"; fail=1; fi
exit $fail
