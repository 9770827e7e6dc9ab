/* metrics.h — the Prometheus text exposition of GET /metrics (commentary_* names, base
 * units, counters ending in _total, a latency histogram per stream).  The numbers live
 * where they change (app, stream, ingest stats); this module only renders them.
 * Runs on: loop.
 */
#ifndef SERVER_METRICS_H
#define SERVER_METRICS_H

#include <stddef.h>

typedef struct app app;

/* Render every metric; returns a malloc'd NUL-terminated text (len set), NULL on OOM. */
char *metrics_render(app *a, size_t *len);

#endif
