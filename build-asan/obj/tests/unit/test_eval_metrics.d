build-asan/obj/tests/unit/test_eval_metrics.o: \
 tests/unit/test_eval_metrics.c core/eval/eval_metrics.h \
 core/util/sb_error.h core/util/rng.h
core/eval/eval_metrics.h:
core/util/sb_error.h:
core/util/rng.h:
