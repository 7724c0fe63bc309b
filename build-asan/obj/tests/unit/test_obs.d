build-asan/obj/tests/unit/test_obs.o: tests/unit/test_obs.c \
 core/obs/obs.h core/util/sb_error.h core/util/rng.h
core/obs/obs.h:
core/util/sb_error.h:
core/util/rng.h:
