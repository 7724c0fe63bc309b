build-asan/obj/core/util/fileio.o: core/util/fileio.c core/util/fileio.h \
 core/util/sb_error.h
core/util/fileio.h:
core/util/sb_error.h:
