/* vtt.c — WebVTT formatting (see vtt.h). */
#include "vtt.h"

#include <math.h>
#include <stdint.h>

char *proto_vtt_format_time(double s, char buf[PROTO_VTT_TIME_LEN]) {
    int64_t ms = isnan(s) || s <= 0 ? 0 : s >= 36e6 ? INT64_C(36000000000) : llround(s * 1e3);
    int64_t h = ms / 3600000;
    if (h > 9999) { /* the buffer holds four hour digits: stop at the last time it can write */
        h = 9999;
        ms = h * 3600000 + 3599999;
    }
    snprintf(buf, PROTO_VTT_TIME_LEN, "%02d:%02d:%02d.%03d", (int)h, (int)(ms / 60000 % 60),
             (int)(ms / 1000 % 60), (int)(ms % 1000));
    return buf;
}

int proto_vtt_write_header(FILE *f) {
    return fputs("WEBVTT\n\n", f) < 0 ? -1 : 0;
}

int proto_vtt_write_cue(FILE *f, double t0, double t1, const char *text) {
    const char *p = text;
    while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (!p || !*p) return 0;
    char a[PROTO_VTT_TIME_LEN], b[PROTO_VTT_TIME_LEN];
    if (fprintf(f, "%s --> %s\n", proto_vtt_format_time(t0, a), proto_vtt_format_time(t1, b)) < 0) return -1;
    for (; *p; p++) {
        int rc;
        switch (*p) {
        case '&':
            rc = fputs("&amp;", f);
            break;
        case '<':
            rc = fputs("&lt;", f);
            break;
        case '>': /* so the text never holds "-->" */
            rc = fputs("&gt;", f);
            break;
        case '\r':
        case '\n': /* one line: a blank line would end the cue */
            rc = fputc(' ', f);
            break;
        default:
            rc = fputc(*p, f);
            break;
        }
        if (rc < 0) return -1;
    }
    return fputs("\n\n", f) < 0 ? -1 : 0;
}
