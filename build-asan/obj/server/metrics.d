build-asan/obj/server/metrics.o: server/metrics.c server/metrics.h \
 server/dynbuf.h core/util/sb_error.h server/store.h server/version.h
server/metrics.h:
server/dynbuf.h:
core/util/sb_error.h:
server/store.h:
server/version.h:
