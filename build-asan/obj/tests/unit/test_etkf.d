build-asan/obj/tests/unit/test_etkf.o: tests/unit/test_etkf.c \
 core/est/est_baseline.h core/est/est.h core/obs/obs.h \
 core/util/sb_error.h core/sim/sim.h core/util/rng.h core/util/symeig.h \
 core/util/sb_error.h
core/est/est_baseline.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
core/util/rng.h:
core/util/symeig.h:
core/util/sb_error.h:
