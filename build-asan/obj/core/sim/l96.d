build-asan/obj/core/sim/l96.o: core/sim/l96.c core/sim/l96.h
core/sim/l96.h:
