#!/usr/bin/env bash
# WHIP ingest end to end (tests/whip_test.py says what is checked): the daemon and a
# webrtcbin publisher that behaves like OBS, both inside a private network namespace
# (`unshare -n`) with a veth pair: libnice never gathers on loopback interfaces, and
# WebRTC must never touch the host's interfaces (docs/PLATFORM.md).  Skips (77) with the
# reason when namespaces or a needed package are missing.
set -u
cd "$(dirname "$0")/.."
for f in build/bin/commentaryd build/models/tiny-random/model.safetensors; do
    [ -e "$f" ] || { echo "$f missing: run make"; exit 1; }
done
skip() { echo "skip: $*"; exit 77; }
/usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstWebRTC", "1.0"); gi.require_version("GstSdp", "1.0"); from gi.repository import Gst, GstWebRTC, GstSdp' 2>/dev/null ||
    skip "python3-gi or gir1.2-gst-plugins-bad-1.0 missing (scripts/install-deps.sh)"
/usr/bin/python3 -c 'import websockets' 2>/dev/null || skip "python3-websockets missing (scripts/install-deps.sh)"
for e in webrtcbin nicesrc x264enc vp8enc vp9enc opusenc rtph264pay avdec_h264; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 || skip "GStreamer element $e missing (scripts/install-deps.sh)"
done
command -v ip >/dev/null || skip "ip missing (Debian package iproute2)"
unshare -n true 2>/dev/null || skip "network namespaces are not permitted here (unshare -n failed); WebRTC is only tested inside one"
exec timeout 300 unshare -n sh -c '
    ip link set lo up && ip link add v0 type veth peer name v1 &&
        ip addr add 127.0.0.2/32 dev v0 && ip link set v0 up && ip link set v1 up ||
        { echo "skip: cannot make a veth pair in the namespace"; exit 77; }
    exec /usr/bin/python3 tests/whip_test.py'
