build-asan/obj/core/eval/eval_svg.o: core/eval/eval_svg.c \
 core/eval/eval.h core/est/est.h core/obs/obs.h core/util/sb_error.h \
 core/sim/sim.h core/eval/eval_metrics.h core/util/fileio.h \
 core/util/sb_error.h
core/eval/eval.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
core/eval/eval_metrics.h:
core/util/fileio.h:
core/util/sb_error.h:
