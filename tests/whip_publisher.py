#!/usr/bin/python3
"""A WHIP publisher that behaves like OBS Studio's WebRTC output, for the tests.

GStreamer's webrtcbin (python3-gi, gir1.2-gst-plugins-bad-1.0): one sendonly video
transceiver (H.264 constrained-baseline pt 96 by default, or VP8 / VP9) and one sendonly
Opus audio transceiver (pt 111), max-bundle; the offer is POSTed once ICE gathering is
complete (no trickle) with `Authorization: Bearer TOKEN`; the answer of the 201 is set as
the remote description; stop() DELETEs the session's Location like OBS does when you
press "Stop Streaming" (or leaves without a word with delete=False).

Used by tests/whip_test.py only inside a private network namespace (libnice gathers
nothing on loopback interfaces; tests/t-whip.sh gives the namespace a veth with
127.0.0.2).  No GLib main loop: promises are waited on from this (the caller's) thread,
never inside a webrtcbin callback.  PyGObject pitfalls met here: a promise's reply (and
the boxed session description in it) must stay referenced while it is used, and the
"ice-agent" property is not touched (a reference is lost through the binding).

    python3 tests/whip_publisher.py http://127.0.0.1:8080/v1/whip/studio TOKEN 20
"""
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

Gst.init(None)
# libnice's UPnP (on by default) warns about every SSDP packet it cannot send in the
# test's namespace; the daemon turns UPnP off, this client cannot reach the property
GLib.log_set_handler("gssdp-client", GLib.LogLevelFlags.LEVEL_WARNING, lambda *a: None)

VIDEO = {
    "H264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=1000 ! "
            "video/x-h264,profile=constrained-baseline ! "
            "rtph264pay config-interval=-1 pt=96 aggregate-mode=zero-latency ! "
            "application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000",
    "VP8": "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 target-bitrate=1000000 ! "
           "rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96,"
           "clock-rate=90000",
    "VP9": "vp9enc deadline=1 cpu-used=8 keyframe-max-dist=30 target-bitrate=1000000 ! "
           "rtpvp9pay pt=98 ! application/x-rtp,media=video,encoding-name=VP9,payload=98,"
           "clock-rate=90000",
}


def http(method, url, token=None, body=None, ctype=None, timeout=20):
    """(status, headers, body bytes) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class WhipPublisher:
    def __init__(self, endpoint, token, codec="H264", pattern="ball"):
        self.endpoint, self.token, self.codec = endpoint, token, codec
        self.location = None
        self.answer = None
        self.status = None
        desc = (
            f"webrtcbin name=wb bundle-policy=max-bundle "
            f"videotestsrc is-live=true pattern={pattern} ! "
            f"video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! queue ! "
            f"{VIDEO[codec]} ! wb. "
            f"audiotestsrc is-live=true wave=ticks ! audioconvert ! audioresample ! "
            f"opusenc ! rtpopuspay pt=111 ! "
            f"application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! wb.")
        self.pipe = Gst.parse_launch(desc)
        self.wb = self.pipe.get_by_name("wb")

    def _wait(self, promise, what):
        res = promise.wait()
        if res != Gst.PromiseResult.REPLIED:
            raise RuntimeError(f"{what}: promise {res}")
        return promise.get_reply()

    def offer(self, timeout=10):
        """Starts the pipeline and returns the complete (non-trickle) SDP offer."""
        self.pipe.set_state(Gst.State.PLAYING)
        i = 0
        while True:  # OBS sends only: both transceivers sendonly
            t = self.wb.emit("get-transceiver", i)
            if t is None:
                break
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            i += 1
        p1 = Gst.Promise.new()
        self.wb.emit("create-offer", None, p1)
        reply = self._wait(p1, "create-offer")
        offer = reply.get_value("offer")
        if offer is None or offer.sdp is None:
            raise RuntimeError("create-offer gave no offer")
        p2 = Gst.Promise.new()
        self.wb.emit("set-local-description", offer, p2)
        self._wait(p2, "set-local-description")
        t0 = time.monotonic()
        while (self.wb.get_property("ice-gathering-state") !=
               GstWebRTC.WebRTCICEGatheringState.COMPLETE):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("ICE gathering did not complete")
            time.sleep(0.02)
        desc = self.wb.get_property("local-description")
        return desc.sdp.as_text()

    def publish(self):
        """POSTs the offer; on 201 sets the answer.  Returns the HTTP status."""
        sdp = self.offer()
        self.status, headers, body = http("POST", self.endpoint, self.token, sdp.encode(),
                                          "application/sdp")
        self.headers = headers
        if self.status != 201:
            self.body = body.decode(errors="replace")
            return self.status
        self.location = urllib.parse.urljoin(self.endpoint, headers.get("Location", ""))
        self.answer = body.decode()
        ok, msg = GstSdp.SDPMessage.new_from_text(self.answer)
        if ok != GstSdp.SDPResult.OK:
            raise RuntimeError("the answer is not SDP")
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        p = Gst.Promise.new()
        self.wb.emit("set-remote-description", answer, p)
        self._wait(p, "set-remote-description")
        return self.status

    def connected(self):
        return (self.wb.get_property("connection-state") ==
                GstWebRTC.WebRTCPeerConnectionState.CONNECTED)

    def stop(self, delete=True):
        """Leaves: DELETE the session (like OBS), then stop sending.  Returns the status
        of the DELETE (None without one)."""
        st = None
        if delete and self.location:
            st = http("DELETE", self.location, self.token)[0]
        self.pipe.set_state(Gst.State.NULL)
        return st


if __name__ == "__main__":
    url, token = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    pub = WhipPublisher(url, token)
    print("POST", pub.publish(), pub.location, flush=True)
    time.sleep(seconds)
    print("DELETE", pub.stop(), flush=True)
