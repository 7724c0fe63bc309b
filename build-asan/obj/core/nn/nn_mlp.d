build-asan/obj/core/nn/nn_mlp.o: core/nn/nn_mlp.c core/nn/nn_internal.h \
 core/nn/nn_model.h core/util/sb_error.h core/nn/nn_layers.h
core/nn/nn_internal.h:
core/nn/nn_model.h:
core/util/sb_error.h:
core/nn/nn_layers.h:
