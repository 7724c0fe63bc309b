build-asan/obj/core/tool/cmd_bench.o: core/tool/cmd_bench.c \
 /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h \
 core/tool/cmd.h core/nn/nn_layers.h core/nn/nn_model.h \
 core/util/sb_error.h core/nn/nn_optim.h core/nn/nn_model.h \
 core/nn/nn_parallel.h core/util/rng.h
/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h:
core/tool/cmd.h:
core/nn/nn_layers.h:
core/nn/nn_model.h:
core/util/sb_error.h:
core/nn/nn_optim.h:
core/nn/nn_model.h:
core/nn/nn_parallel.h:
core/util/rng.h:
