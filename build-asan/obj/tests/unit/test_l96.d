build-asan/obj/tests/unit/test_l96.o: tests/unit/test_l96.c \
 core/sim/l96.h core/sim/sim.h core/util/sb_error.h tests/unit/testutil.h
core/sim/l96.h:
core/sim/sim.h:
core/util/sb_error.h:
tests/unit/testutil.h:
