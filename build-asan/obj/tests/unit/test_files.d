build-asan/obj/tests/unit/test_files.o: tests/unit/test_files.c \
 core/util/fileio.h core/util/sb_error.h core/util/npy.h \
 core/util/safetensors.h tests/unit/testutil.h
core/util/fileio.h:
core/util/sb_error.h:
core/util/npy.h:
core/util/safetensors.h:
tests/unit/testutil.h:
