build-asan/obj/tests/unit/test_eval.o: tests/unit/test_eval.c \
 core/eval/eval.h core/est/est.h core/obs/obs.h core/util/sb_error.h \
 core/sim/sim.h core/eval/eval_metrics.h
core/eval/eval.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
core/eval/eval_metrics.h:
