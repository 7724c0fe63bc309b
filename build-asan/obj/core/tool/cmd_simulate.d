build-asan/obj/core/tool/cmd_simulate.o: core/tool/cmd_simulate.c \
 core/tool/cmd.h core/util/npy.h core/util/sb_error.h core/obs/obs.h \
 core/util/sb_error.h core/sim/sim.h
core/tool/cmd.h:
core/util/npy.h:
core/util/sb_error.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
