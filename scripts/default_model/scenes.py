"""scenes.py — GStreamer videotestsrc scenes, their exact commentary, and renderers.

What the default model must say (issue 6): for each 1-s chunk one of
    "F ball on B, moving D" | "F ball on B, still"      pattern=ball (F != B)
    "color bars" | "static noise" | "checkerboard"       smpte | snow | checkers-8
    "solid C screen"                                     solid-color, foreground C
followed by StreamingVLM's " ..." end mark.  D comes from the chunk's two frames (the
first frames at or after t and t + 0.5 s): the centroid of the pixels closer to F than to
B in each; the larger displacement component names the direction (y grows downward);
under 2% of the frame width it is "still".

Renderers (python3-gi + GStreamer, the element the daemon uses, I420 30 fps at SRC_W x
SRC_H as the daemon's test: source):
  SeekRenderer   any frame of any scene by seeking a paused pipeline (videotestsrc
                 animates by frame number, so a seek to t gives frame 30 t exactly);
                 RGB at the source size, or scaled by videoscale like the daemon's ingest;
  render_clip    a continuous clip following a schedule of scenes (properties switched
                 at chunk boundaries by a pad probe), tee'd into raw RGB (labels) and an
                 x264enc branch that is decoded back (training) or muxed to MP4 (tests).
Not: the model's preprocessing (vlm.py patchifies; resize() here is the engine's resize).
"""
import collections

import numpy as np

COLORS = collections.OrderedDict([
    ("black", 0xff000000), ("white", 0xffffffff), ("red", 0xffff0000),
    ("green", 0xff00ff00), ("blue", 0xff0000ff), ("yellow", 0xffffff00),
])
MOTIONS = ("wavy", "sweep", "hsweep")
PATTERNS = ("ball", "smpte", "snow", "checkers-8", "solid-color")
# Never trained on: the accuracy test's ball scenes come from here.
HELD_OUT_PAIRS = {("red", "green"), ("yellow", "blue"), ("white", "red"), ("green", "black"),
                  ("black", "yellow")}
HELD_OUT_COMBOS = {("blue", "white", "hsweep"), ("red", "black", "sweep"),
                   ("green", "yellow", "wavy"), ("white", "blue", "sweep")}

# The source size: videotestsrc draws its ball 20 pixels in radius whatever the frame
# size, so at 1280x720 the ball is ~6 pixels across in the model's 252x140 input (a
# few pixels of one 14-pixel patch) and its colour and motion were barely learnable on
# 2 cores; at 320x180 it is ~30 pixels across.  The daemon's test: source uses this size.
SRC_W, SRC_H, FPS = 320, 180, 30
MODEL_W, MODEL_H = 252, 140  # smart_resize of 16:9 with max_pixels 50*28*28: 45 tokens

Scene = collections.namedtuple("Scene", "pattern fg bg motion")


def scene(pattern, fg="white", bg="black", motion="wavy"):
    return Scene(pattern, fg, bg, motion)


def held_out(s):
    return s.pattern == "ball" and ((s.fg, s.bg) in HELD_OUT_PAIRS or
                                    (s.fg, s.bg, s.motion) in HELD_OUT_COMBOS)


def rgb(name):
    v = COLORS[name]
    return np.array([(v >> 16) & 255, (v >> 8) & 255, v & 255], np.int32)


def ball_mask(f, fg, bg):
    """The pixels of RGB frame f (H, W, 3) closer to colour fg than to bg: [H, W] bool."""
    x = f.astype(np.int32)
    return ((x - rgb(fg)) ** 2).sum(-1) < ((x - rgb(bg)) ** 2).sum(-1)


def centroid(f, fg, bg, m=None):
    """(x, y) in pixels of the centroid of the pixels of RGB frame f (H, W, 3) closer to
    fg than to bg (m: that mask when already made); None when there are none."""
    if m is None:
        m = ball_mask(f, fg, bg)
    if not m.any():
        return None
    ys, xs = np.nonzero(m)
    return xs.mean(), ys.mean()


def displacement(f0, f1, fg, bg):
    """(dx, dy) in pixels between the centroids of the pixels closer to fg than to bg in
    two RGB frames (H, W, 3); (0, 0) when a frame has none."""
    c0, c1 = centroid(f0, fg, bg), centroid(f1, fg, bg)
    if c0 is None or c1 is None:
        return 0.0, 0.0
    return c1[0] - c0[0], c1[1] - c0[1]


def direction(f0, f1, fg, bg):
    """The issue's rule on two RGB frames (H, W, 3): 'left'/'right'/'up'/'down'/'still'."""
    dx, dy = displacement(f0, f1, fg, bg)
    if max(abs(dx), abs(dy)) < 0.02 * f0.shape[1]:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def commentary(s, d=None):
    """The published text of a chunk of scene s (d: the ball's direction)."""
    if s.pattern == "ball":
        return "%s ball on %s, %s" % (s.fg, s.bg, "still" if d == "still" else "moving " + d)
    if s.pattern == "solid-color":
        return "solid %s screen" % s.fg
    return {"smpte": "color bars", "snow": "static noise", "checkers-8": "checkerboard"}[s.pattern]


def label(s, f0, f1):
    return commentary(s, direction(f0, f1, s.fg, s.bg) if s.pattern == "ball" else None)


def all_texts():
    """Every commentary the model can say (the tokenizer corpus)."""
    out = []
    for f in COLORS:
        out.append("solid %s screen" % f)
        for b in COLORS:
            if f != b:
                out += [commentary(scene("ball", f, b), d)
                        for d in ("left", "right", "up", "down", "still")]
    return out + ["color bars", "static noise", "checkerboard"]


def resize(frames, h=MODEL_H, w=MODEL_W):
    """The engine's (and qwen-vl-utils') resize: torchvision antialiased bicubic on uint8
    (N, H, W, 3) -> (N, h, w, 3)."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    if frames.shape[1] == h and frames.shape[2] == w:
        return np.ascontiguousarray(frames)
    # the float path gives the uint8 path's bytes (round half even, clamp) 3x faster
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    r = TF.resize(t, [h, w], InterpolationMode.BICUBIC, antialias=True)
    r = r.round().clamp(0, 255).to(torch.uint8)
    return r.permute(0, 2, 3, 1).contiguous().numpy()


def _gst():
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    from gi.repository import Gst, GstApp  # noqa: F401 (GstApp: appsink's pull methods)
    if not Gst.is_initialized():
        Gst.init(None)
    return Gst


def _apply(Gst, src, s):
    Gst.util_set_object_arg(src, "pattern", s.pattern)
    Gst.util_set_object_arg(src, "motion", s.motion)
    src.set_property("foreground-color", COLORS[s.fg])
    src.set_property("background-color", COLORS[s.bg])


def _frame(Gst, sample, w, h):
    data = sample.get_buffer().extract_dup(0, h * w * 3)  # one copy (map's .data is slow)
    return np.frombuffer(data, np.uint8).reshape(h, w, 3)


class SeekRenderer:
    """Frames of any scene at any time.  size None: RGB SRC_W x SRC_H (the CLI decodes at the
    source size and the engine resizes); (w, h): videoconvert ! videoscale to that size,
    the daemon's ingest tail."""

    def __init__(self, size=None):
        Gst = self.Gst = _gst()
        self.w, self.h = size or (SRC_W, SRC_H)
        tail = ("videoscale add-borders=false ! video/x-raw,format=RGB,width=%d,height=%d,"
                "pixel-aspect-ratio=1/1" % (self.w, self.h)) if size else "video/x-raw,format=RGB"
        self.pipe = Gst.parse_launch(
            "videotestsrc name=src ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1 "
            "! videoconvert ! %s ! appsink name=sink sync=false max-buffers=1"
            % (SRC_W, SRC_H, FPS, tail))
        self.src = self.pipe.get_by_name("src")
        self.sink = self.pipe.get_by_name("sink")
        self.pipe.set_state(Gst.State.PAUSED)
        self.pipe.get_state(Gst.CLOCK_TIME_NONE)

    def frame(self, s, frame_no):
        Gst = self.Gst
        if s != getattr(self, "scene", None):
            _apply(Gst, self.src, s)
            self.scene = s
        ok = self.pipe.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE,
                                   frame_no * Gst.SECOND // FPS)
        assert ok, "seek failed"
        smp = self.sink.try_pull_preroll(10 * Gst.SECOND)
        assert smp is not None, "no frame after seek"
        return _frame(Gst, smp, self.w, self.h)

    def close(self):
        self.pipe.set_state(self.Gst.State.NULL)


def render_clip(schedule, encoder="x264enc speed-preset=veryfast", mp4=None, decode=False):
    """Render a clip of sum(n) seconds from schedule [(scene, n_chunks), ...], switching
    scenes at chunk boundaries.  Returns (labels, scenes, raw, dec): per chunk the
    commentary (from the raw frames 30 i and 30 i + 15) and the scene, the raw RGB frames
    (N, 2, SRC_H, SRC_W, 3) at those times, and when decode the same frames encoded and
    decoded back (else None).
    mp4: also (instead of decoding) write the H.264 stream to this MP4 file."""
    Gst = _gst()
    n_chunks = sum(n for _, n in schedule)
    n_frames = n_chunks * FPS
    q = "queue max-size-time=0 max-size-buffers=0 max-size-bytes=0"
    desc = ("videotestsrc name=src num-buffers=%d ! video/x-raw,format=I420,width=%d,height=%d,"
            "framerate=%d/1 ! tee name=t  t. ! %s ! identity name=rawsel ! videoconvert ! "
            "video/x-raw,format=RGB ! appsink name=raw sync=false max-buffers=0"
            % (n_frames, SRC_W, SRC_H, FPS, q))
    if encoder and mp4:
        desc += "  t. ! %s ! %s ! h264parse ! mp4mux ! filesink location=%s" % (q, encoder, mp4)
    elif encoder and decode:
        desc += ("  t. ! %s ! %s ! h264parse ! avdec_h264 ! identity name=decsel ! videoconvert ! "
                 "video/x-raw,format=RGB ! appsink name=dec sync=false max-buffers=0" % (q, encoder))
    pipe = Gst.parse_launch(desc)
    src = pipe.get_by_name("src")
    starts, k = {}, 0
    for s, n in schedule:
        starts[k * FPS] = s
        k += n
    scene_at = []
    for s, n in schedule:
        scene_at += [s] * n
    _apply(Gst, src, schedule[0][0])

    def switch(pad, info):  # runs before the next frame is made: switch at its boundary
        nxt = info.get_buffer().offset + 1
        if nxt in starts:
            _apply(Gst, src, starts[nxt])
        return Gst.PadProbeReturn.OK

    src.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, switch)
    counters = {}

    def keep(name):
        def probe(pad, info):  # only the frames chunks use are converted
            i = counters.get(name, 0)
            counters[name] = i + 1
            return Gst.PadProbeReturn.OK if i % (FPS // 2) == 0 else Gst.PadProbeReturn.DROP
        return probe

    sinks = [("raw", "rawsel")] + ([("dec", "decsel")] if encoder and decode and not mp4 else [])
    for _, sel in sinks:
        pipe.get_by_name(sel).get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, keep(sel))
    pipe.set_state(Gst.State.PLAYING)
    out = {}
    for name, _ in sinks:
        out[name] = []
    for _ in range(2 * n_chunks):
        for name, _ in sinks:
            smp = pipe.get_by_name(name).try_pull_sample(60 * Gst.SECOND)
            assert smp is not None, "clip: %s ended early" % name
            out[name].append(_frame(Gst, smp, SRC_W, SRC_H))
    bus = pipe.get_bus()
    if mp4:
        msg = bus.timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
        assert msg is not None and msg.type == Gst.MessageType.EOS, "clip: no EOS writing %s" % mp4
    pipe.set_state(Gst.State.NULL)
    raw = np.stack(out["raw"]).reshape(n_chunks, 2, SRC_H, SRC_W, 3)
    labels = [label(scene_at[i], raw[i, 0], raw[i, 1]) for i in range(n_chunks)]
    dec = np.stack(out["dec"]).reshape(n_chunks, 2, SRC_H, SRC_W, 3) if "dec" in out else None
    return labels, scene_at, raw, dec
