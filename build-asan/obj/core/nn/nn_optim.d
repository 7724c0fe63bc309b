build-asan/obj/core/nn/nn_optim.o: core/nn/nn_optim.c core/nn/nn_optim.h \
 core/nn/nn_model.h core/util/sb_error.h
core/nn/nn_optim.h:
core/nn/nn_model.h:
core/util/sb_error.h:
