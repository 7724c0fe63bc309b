build-asan/obj/core/nn/nn_ckpt.o: core/nn/nn_ckpt.c core/nn/nn_ckpt.h \
 core/nn/nn_model.h core/util/sb_error.h core/util/safetensors.h \
 core/util/sb_error.h
core/nn/nn_ckpt.h:
core/nn/nn_model.h:
core/util/sb_error.h:
core/util/safetensors.h:
core/util/sb_error.h:
