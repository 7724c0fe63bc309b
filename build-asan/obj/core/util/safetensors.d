build-asan/obj/core/util/safetensors.o: core/util/safetensors.c \
 core/util/safetensors.h core/util/sb_error.h core/util/fileio.h
core/util/safetensors.h:
core/util/sb_error.h:
core/util/fileio.h:
