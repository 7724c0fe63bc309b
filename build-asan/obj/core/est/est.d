build-asan/obj/core/est/est.o: core/est/est.c core/est/est.h \
 core/obs/obs.h core/util/sb_error.h core/sim/sim.h
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
