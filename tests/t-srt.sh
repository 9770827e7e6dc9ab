#!/usr/bin/env bash
# SRT ingest as OBS sends it (tests/srt_test.py says what is checked): an
# srt://…?mode=listener stream fed by gst-launch-1.0 `… ! h264parse config-interval=-1 !
# mpegtsmux alignment=7 ! srtsink` in caller mode.  Loopback only.  Skips (77) with the
# reason when a needed tool is missing.
set -u
cd "$(dirname "$0")/.."
for f in build/bin/commentaryd build/models/tiny-random/model.safetensors; do
    [ -e "$f" ] || { echo "$f missing: run make"; exit 1; }
done
skip() { echo "skip: $*"; exit 77; }
/usr/bin/python3 -c 'import websockets' 2>/dev/null || skip "python3-websockets missing (scripts/install-deps.sh)"
command -v gst-launch-1.0 >/dev/null || skip "gst-launch-1.0 missing (gstreamer1.0-tools)"
for e in srtsink srtsrc x264enc h264parse mpegtsmux tsdemux avdec_h264; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 || skip "GStreamer element $e missing (scripts/install-deps.sh)"
done
exec timeout 240 /usr/bin/python3 tests/srt_test.py
