/* web/assets.h — the web pages compiled into commentaryd.
 *
 * web/embed.sh turns every .html, .js, .css and .svg file of web/ into build/gen/web_assets.c
 * (the Makefile runs it when a page changes): one byte array per file and this table,
 * which server/http.c serves (GET /, /overlay/ID, /web/NAME).  The daemon needs no file
 * at run time.  Read-only data: any thread.
 */
#ifndef WEB_ASSETS_H
#define WEB_ASSETS_H

#include <stddef.h>

typedef struct web_asset {
    const char *name;          /* file name in web/: "index.html" */
    const char *ctype;         /* its Content-Type */
    const unsigned char *data; /* its bytes (a NUL follows, not counted) */
    size_t len;
} web_asset;

extern const web_asset web_assets[];
extern const size_t web_n_assets;

#endif
