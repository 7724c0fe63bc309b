build-asan/obj/core/est/est_open.o: core/est/est_open.c \
 core/est/est_baseline.h core/est/est.h core/obs/obs.h \
 core/util/sb_error.h core/sim/sim.h
core/est/est_baseline.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
