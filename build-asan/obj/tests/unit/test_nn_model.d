build-asan/obj/tests/unit/test_nn_model.o: tests/unit/test_nn_model.c \
 tests/unit/nn_gradcheck.h core/nn/nn_model.h core/util/sb_error.h \
 core/nn/nn_optim.h core/nn/nn_model.h core/util/rng.h
tests/unit/nn_gradcheck.h:
core/nn/nn_model.h:
core/util/sb_error.h:
core/nn/nn_optim.h:
core/nn/nn_model.h:
core/util/rng.h:
