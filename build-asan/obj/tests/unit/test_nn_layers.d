build-asan/obj/tests/unit/test_nn_layers.o: tests/unit/test_nn_layers.c \
 tests/unit/nn_gradcheck.h core/nn/nn_layers.h core/util/rng.h
tests/unit/nn_gradcheck.h:
core/nn/nn_layers.h:
core/util/rng.h:
