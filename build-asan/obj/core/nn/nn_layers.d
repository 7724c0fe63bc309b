build-asan/obj/core/nn/nn_layers.o: core/nn/nn_layers.c \
 core/nn/nn_layers.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h \
 core/nn/nn_math.h core/nn/nn_simd.h
core/nn/nn_layers.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h:
core/nn/nn_math.h:
core/nn/nn_simd.h:
