build-asan/obj/tests/unit/test_rng.o: tests/unit/test_rng.c \
 core/util/rng.h
core/util/rng.h:
