build-asan/obj/core/eval/eval_metrics.o: core/eval/eval_metrics.c \
 core/eval/eval_metrics.h core/util/sb_error.h
core/eval/eval_metrics.h:
core/util/sb_error.h:
