#!/usr/bin/env bash
# Installs the Debian 12 packages commentaryd needs to build, run and test.
# Idempotent: installs only what is missing, so `make run` can call it every time.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(
  # build
  build-essential pkg-config
  # engine
  libjansson-dev libpcre2-dev libutf8proc-dev libopenblas-dev
  # daemon
  libuv1-dev libwebsockets-dev libwebsockets-evlib-uv libsystemd-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libgstrtspserver-1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-libav gstreamer1.0-nice
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev ffmpeg
  # tests and reference scripts (Debian's Python: /usr/bin/python3)
  xz-utils python3-numpy python3-pil python3-jsonschema python3-websockets
  # the default model's tests: held-out clips rendered through GStreamer's Python
  # bindings; the C-vs-PyTorch logits check (python3-torch, ~40 MB of .debs with its libs)
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 python3-torch
  python3-torchvision  # make default-model: the engine's resize, in the training data
  prometheus  # promtool check metrics
  # WHIP, SRT and web-page tests: a webrtcbin publisher (python3-gi + GstWebRTC/GstSdp
  # typelibs), network namespaces with a veth pair (iproute2; unshare is util-linux),
  # headless Chromium for the overlay and the dashboard
  python3-gi gir1.2-gst-plugins-bad-1.0 iproute2 util-linux chromium
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
