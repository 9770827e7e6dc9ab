#!/usr/bin/env bash
# Golden test: `commentary check` replays the transformers streaming sessions (eviction,
# moved commentary with reused K/V, contiguous positions) chunk by chunk: the four
# vendored fixtures (bf16 weights, which hold the same values as the f32 ones), and every
# fixture in ../shared/fixtures/stream with both weight files when that folder exists.
set -u
cd "$(dirname "$0")/.."
bin=build/bin/commentary
fail=0
run() {
    if "$bin" check "$@" >build/test-logs/check-stream.out 2>&1; then
        echo "ok   $* ($(tail -n 1 build/test-logs/check-stream.out))"
    else
        echo "FAIL $*"; grep -v PASS build/test-logs/check-stream.out | head -40; fail=1
    fi
}
for f in tests/fixtures/stream/*/; do run "${f%/}" --weights model-bf16; done
shared=${COMMENTARY_SHARED:-../shared/fixtures}
if [ -d "$shared/stream" ]; then
    for f in "$shared"/stream/*/; do
        run "${f%/}" --weights model
        run "${f%/}" --weights model-bf16
    done
else
    echo "note: $shared not present; checked the vendored fixtures only"
fi
exit $fail
