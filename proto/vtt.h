/* vtt.h — WebVTT subtitles for commentary: the header, cue times and one cue per chunk.
 *
 * Shared by `commentary run --vtt` and the daemon; knows nothing of GStreamer or the
 * engine.  Cue text is escaped for WebVTT (&amp; &lt; &gt;) and kept on one line (CR/LF
 * become spaces), so a cue can never end early or contain "-->".  Thread: any (no state).
 */
#ifndef PROTO_VTT_H
#define PROTO_VTT_H

#include <stdio.h>

/* Size of a buffer for proto_vtt_format_time: "HHHH:MM:SS.mmm" and its NUL fit. */
#define PROTO_VTT_TIME_LEN 16

/* Write seconds s as "HH:MM:SS.mmm" (rounded to the millisecond; negative or NaN is 0,
 * hours clamp at 9999) into buf; returns buf. */
char *proto_vtt_format_time(double s, char buf[PROTO_VTT_TIME_LEN]);

/* Write the file header "WEBVTT" and its blank line.  Returns 0, or -1 on a write error. */
int proto_vtt_write_header(FILE *f);

/* Write one cue "t0 --> t1", the escaped text, a blank line.  Text that is NULL, empty or
 * only white space writes nothing.  Returns 0, or -1 on a write error. */
int proto_vtt_write_cue(FILE *f, double t0, double t1, const char *text);

#endif
