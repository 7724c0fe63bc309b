build-asan/obj/core/util/sb_error.o: core/util/sb_error.c \
 core/util/sb_error.h
core/util/sb_error.h:
