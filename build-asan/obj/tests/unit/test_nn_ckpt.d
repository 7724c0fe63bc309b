build-asan/obj/tests/unit/test_nn_ckpt.o: tests/unit/test_nn_ckpt.c \
 core/nn/nn_ckpt.h core/nn/nn_model.h core/util/sb_error.h \
 core/util/safetensors.h core/util/sb_error.h core/nn/nn_model.h \
 core/nn/nn_optim.h tests/unit/testutil.h
core/nn/nn_ckpt.h:
core/nn/nn_model.h:
core/util/sb_error.h:
core/util/safetensors.h:
core/util/sb_error.h:
core/nn/nn_model.h:
core/nn/nn_optim.h:
tests/unit/testutil.h:
