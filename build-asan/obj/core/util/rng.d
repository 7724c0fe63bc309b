build-asan/obj/core/util/rng.o: core/util/rng.c core/util/rng.h
core/util/rng.h:
