build-asan/obj/server/store.o: server/store.c server/store.h \
 core/util/sb_error.h server/clock.h
server/store.h:
core/util/sb_error.h:
server/clock.h:
