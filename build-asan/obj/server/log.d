build-asan/obj/server/log.o: server/log.c server/log.h server/clock.h \
 core/util/sb_error.h
server/log.h:
server/clock.h:
core/util/sb_error.h:
