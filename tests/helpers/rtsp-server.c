/* rtsp-server.c — a local RTSP test server: `rtsp-server PORT` serves a live H.264 test
 * pattern at rtsp://127.0.0.1:PORT/test and prints "ready" once it listens.
 *
 * Not for: production.  It binds 127.0.0.1 only and offers RTP interleaved in the RTSP
 * TCP connection only (no UDP ports, which gst-rtsp-server would bind on every
 * interface): clients should use rtspt://, a plain rtsp:// client falls back to TCP.
 * Runs a GMainLoop (gst-rtsp-server needs one) until killed.  Exit 1 when it cannot listen.
 */
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <stdio.h>
#include <stdlib.h>

#define RTSP_SERVER_LAUNCH                                                                         \
    "( videotestsrc is-live=true pattern=ball ! "                                                  \
    "video/x-raw,width=320,height=240,framerate=15/1 ! "                                           \
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! "                            \
    "rtph264pay name=pay0 pt=96 config-interval=1 )"

int main(int argc, char **argv) {
    gst_init(&argc, &argv);
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: rtsp-server PORT  (serves rtsp://127.0.0.1:PORT/test)\n");
        return 2;
    }
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    GstRTSPServer *server = gst_rtsp_server_new();
    gst_rtsp_server_set_address(server, "127.0.0.1");
    gst_rtsp_server_set_service(server, argv[1]);

    GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new();
    gst_rtsp_media_factory_set_launch(factory, RTSP_SERVER_LAUNCH);
    gst_rtsp_media_factory_set_shared(factory, TRUE); /* one encoder for every client */
    gst_rtsp_media_factory_set_protocols(factory, GST_RTSP_LOWER_TRANS_TCP);
    GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points(server);
    gst_rtsp_mount_points_add_factory(mounts, "/test", factory); /* takes the factory */
    g_object_unref(mounts);

    if (gst_rtsp_server_attach(server, NULL) == 0) {
        fprintf(stderr, "rtsp-server: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    g_main_loop_run(loop);
    return 0;
}
