build-asan/obj/tests/unit/test_nn_torch.o: tests/unit/test_nn_torch.c \
 core/nn/nn_ckpt.h core/nn/nn_model.h core/util/sb_error.h \
 core/util/safetensors.h core/util/sb_error.h core/nn/nn_layers.h \
 core/nn/nn_model.h core/nn/nn_optim.h
core/nn/nn_ckpt.h:
core/nn/nn_model.h:
core/util/sb_error.h:
core/util/safetensors.h:
core/util/sb_error.h:
core/nn/nn_layers.h:
core/nn/nn_model.h:
core/nn/nn_optim.h:
