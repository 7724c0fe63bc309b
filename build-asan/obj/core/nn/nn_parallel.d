build-asan/obj/core/nn/nn_parallel.o: core/nn/nn_parallel.c \
 core/nn/nn_parallel.h core/nn/nn_model.h core/util/sb_error.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h
core/nn/nn_parallel.h:
core/nn/nn_model.h:
core/util/sb_error.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h:
