build-asan/obj/core/tool/cmd_eval.o: core/tool/cmd_eval.c core/tool/cmd.h \
 core/eval/eval.h core/est/est.h core/obs/obs.h core/util/sb_error.h \
 core/sim/sim.h core/eval/eval_metrics.h
core/tool/cmd.h:
core/eval/eval.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
core/eval/eval_metrics.h:
