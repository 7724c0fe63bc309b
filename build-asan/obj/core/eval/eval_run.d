build-asan/obj/core/eval/eval_run.o: core/eval/eval_run.c \
 core/eval/eval.h core/est/est.h core/obs/obs.h core/util/sb_error.h \
 core/sim/sim.h core/eval/eval_metrics.h core/util/rng.h
core/eval/eval.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
core/eval/eval_metrics.h:
core/util/rng.h:
