#!/usr/bin/python3
"""testclips.py — the held-out clips of the default model's accuracy test: 320x180
30 fps videotestsrc scenes, switched at whole seconds, encoded to H.264 MP4 (x264enc
veryfast), with each 1-s chunk's expected commentary computed from the raw frames the
chunk uses (30 i and 30 i + 15) by the issue's rule.  Ball scenes are only held-out
colour pairs / pair+motion combinations (never trained on); scene orders are new.

    /usr/bin/python3 scripts/default_model/testclips.py OUT_DIR [CLIP ...]

Writes OUT_DIR/NAME.mp4 and OUT_DIR/NAME.json ({"labels": [...], "scenes": [...]}).
Needs python3-numpy, python3-gi, gir1.2-gstreamer-1.0, gir1.2-gst-plugins-base-1.0 and
the GStreamer elements videotestsrc, x264enc, h264parse, mp4mux (no torch).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes as S  # noqa: E402

b = lambda f, g, m: S.scene("ball", f, g, m)
CLIPS = {
    "heldout-a": [(b("red", "green", "wavy"), 6), (S.scene("smpte"), 2),
                  (b("yellow", "blue", "hsweep"), 5), (S.scene("snow", "green", "red"), 3),
                  (b("white", "red", "sweep"), 5), (S.scene("solid-color", "yellow"), 2),
                  (b("blue", "white", "hsweep"), 4), (S.scene("checkers-8"), 3)],
    "heldout-b": [(b("green", "black", "sweep"), 5), (S.scene("solid-color", "blue"), 2),
                  (b("black", "yellow", "wavy"), 6), (S.scene("snow"), 3),
                  (b("red", "black", "sweep"), 5), (S.scene("smpte"), 3),
                  (b("green", "yellow", "wavy"), 4), (S.scene("solid-color", "white"), 2)],
    "heldout-c": [(S.scene("checkers-8"), 2), (b("white", "blue", "sweep"), 6),
                  (S.scene("snow", "blue", "yellow"), 2), (b("yellow", "blue", "wavy"), 5),
                  (S.scene("solid-color", "red"), 3), (b("red", "green", "hsweep"), 5),
                  (b("green", "black", "wavy"), 4), (S.scene("smpte"), 3)],
}
for _sched in CLIPS.values():
    assert all(s.pattern != "ball" or S.held_out(s) for s, _ in _sched)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name in sys.argv[2:] or sorted(CLIPS):
        mp4 = os.path.join(out, name + ".mp4")
        labels, sc, _, _ = S.render_clip(CLIPS[name], encoder="x264enc speed-preset=veryfast",
                                         mp4=mp4)
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump({"labels": labels, "scenes": [list(s) for s in sc]}, f, indent=1)
        print("testclips: %s (%d chunks)" % (mp4, len(labels)))


if __name__ == "__main__":
    main()
