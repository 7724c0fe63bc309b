build-asan/obj/core/est/est_pf.o: core/est/est_pf.c \
 core/est/est_baseline.h core/est/est.h core/obs/obs.h \
 core/util/sb_error.h core/sim/sim.h core/util/rng.h
core/est/est_baseline.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
core/util/rng.h:
