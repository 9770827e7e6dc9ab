/* frame_pick.h — the product's frame-choice rule, as a pure function of frame times.
 *
 * Stream time is a frame's timestamp minus the first frame's.  Chunk i covers stream
 * seconds [i, i+1) and takes two frames: slot 0 is the first frame at or after i, slot 1
 * the first at or after i + 0.5 s.  One frame can fill several slots (a frame that comes
 * after a gap fills every slot it is the first frame for).  When the stream ends with
 * slot 0 of a chunk filled but not slot 1, that chunk uses its slot-0 frame twice; a
 * chunk with no frame at or after i is not emitted.
 *
 * Not for: decoding or copying frames (the caller does that).  Invariant: the state
 * changes only when a call reports a slot, so a second picker fed only the frames the
 * first one kept makes the same choices (a pad probe can decimate before conversion and
 * the sink re-pick what reaches it).  Times are integer nanoseconds (GstClockTime
 * deltas), so 0.5 s marks are compared exactly.  Thread: whichever owns the state.
 */
#ifndef COMMENTARY_FRAME_PICK_H
#define COMMENTARY_FRAME_PICK_H

#include <stdbool.h>
#include <stdint.h>

#define FRAME_PICK_NS_PER_S INT64_C(1000000000)

typedef struct frame_pick {
    bool started;   /* the first frame has been seen: origin is set */
    int64_t origin; /* the first frame's timestamp (ns); stream time = ts - origin */
    int64_t chunk;  /* the chunk being filled */
    int n_have;     /* slots of that chunk filled: 0 or 1 */
} frame_pick;

/* Start with no frame seen. */
void frame_pick_init(frame_pick *p);

/* Offer the frame with timestamp ts_ns (ns, any origin).  While it fills another slot,
 * returns true with *chunk and *slot (0 or 1) set; call again with the same frame until
 * it returns false.  A return with *slot == 1 completes chunk *chunk. */
bool frame_pick_next(frame_pick *p, int64_t ts_ns, int64_t *chunk, int *slot);

/* At the end of the stream: true when chunk *chunk has its slot-0 frame but no slot-1
 * frame, and is to be emitted with the slot-0 frame twice.  Ends that chunk. */
bool frame_pick_finish(frame_pick *p, int64_t *chunk);

/* Stream time in ns of a timestamp (before any frame: 0). */
int64_t frame_pick_stream_time(const frame_pick *p, int64_t ts_ns);

#endif
