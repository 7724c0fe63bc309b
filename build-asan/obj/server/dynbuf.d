build-asan/obj/server/dynbuf.o: server/dynbuf.c server/dynbuf.h \
 core/util/sb_error.h
server/dynbuf.h:
core/util/sb_error.h:
