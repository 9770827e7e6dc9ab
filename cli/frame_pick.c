/* frame_pick.c — the frame-choice rule (see frame_pick.h): which chunk slots a frame
 * fills.  Pure: no allocation, no I/O, no clock. */
#include "frame_pick.h"

void frame_pick_init(frame_pick *p) {
    *p = (frame_pick){0};
}

int64_t frame_pick_stream_time(const frame_pick *p, int64_t ts_ns) {
    return p->started ? ts_ns - p->origin : 0;
}

bool frame_pick_next(frame_pick *p, int64_t ts_ns, int64_t *chunk, int *slot) {
    if (!p->started) { /* the first frame is stream time 0: it always fills chunk 0 slot 0 */
        p->started = true;
        p->origin = ts_ns;
    }
    /* slot k of chunk i wants the first frame at or after i + k/2 seconds */
    int64_t mark = p->chunk * FRAME_PICK_NS_PER_S + p->n_have * (FRAME_PICK_NS_PER_S / 2);
    if (ts_ns - p->origin < mark) return false;
    *chunk = p->chunk;
    *slot = p->n_have;
    if (++p->n_have == 2) {
        p->n_have = 0;
        p->chunk++;
    }
    return true;
}

bool frame_pick_finish(frame_pick *p, int64_t *chunk) {
    if (p->n_have != 1) return false;
    *chunk = p->chunk;
    p->n_have = 0;
    p->chunk++;
    return true;
}
