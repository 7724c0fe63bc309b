build-asan/obj/tests/unit/test_nn_parallel.o: \
 tests/unit/test_nn_parallel.c core/nn/nn_layers.h core/nn/nn_model.h \
 core/util/sb_error.h core/nn/nn_parallel.h core/nn/nn_model.h \
 core/util/rng.h
core/nn/nn_layers.h:
core/nn/nn_model.h:
core/util/sb_error.h:
core/nn/nn_parallel.h:
core/nn/nn_model.h:
core/util/rng.h:
