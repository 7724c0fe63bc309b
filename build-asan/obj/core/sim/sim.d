build-asan/obj/core/sim/sim.o: core/sim/sim.c core/sim/sim.h \
 core/util/sb_error.h core/sim/l96.h core/util/rng.h
core/sim/sim.h:
core/util/sb_error.h:
core/sim/l96.h:
core/util/rng.h:
