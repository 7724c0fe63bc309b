build-asan/obj/core/util/symeig.o: core/util/symeig.c core/util/symeig.h \
 core/util/sb_error.h
core/util/symeig.h:
core/util/sb_error.h:
