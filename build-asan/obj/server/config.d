build-asan/obj/server/config.o: server/config.c server/config.h \
 core/util/sb_error.h
server/config.h:
core/util/sb_error.h:
