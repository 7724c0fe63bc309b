build-asan/obj/core/nn/nn_model.o: core/nn/nn_model.c core/nn/nn_model.h \
 core/util/sb_error.h core/nn/nn_internal.h core/util/rng.h
core/nn/nn_model.h:
core/util/sb_error.h:
core/nn/nn_internal.h:
core/util/rng.h:
