build-asan/obj/core/util/npy.o: core/util/npy.c core/util/npy.h \
 core/util/sb_error.h core/util/fileio.h
core/util/npy.h:
core/util/sb_error.h:
core/util/fileio.h:
