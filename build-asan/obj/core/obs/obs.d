build-asan/obj/core/obs/obs.o: core/obs/obs.c core/obs/obs.h \
 core/util/sb_error.h core/util/rng.h
core/obs/obs.h:
core/util/sb_error.h:
core/util/rng.h:
