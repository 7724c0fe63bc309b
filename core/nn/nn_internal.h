/* nn_internal.h: shared between the nn_*.c model files (not public). */
#ifndef SB_NN_INTERNAL_H
#define SB_NN_INTERNAL_H

#include "nn/nn_model.h"

/* Appends a tensor to m's table (offset = current n_params). Returns its index or -1. */
int nn__add_tensor(nn_model *m, const char *name, int ndim, const int64_t *shape, int init,
                   int fan_in);
/* Allocates params and grads after the table is complete. */
int nn__alloc(nn_model *m, sb_error *err);
/* The tensor table of a config without allocating anything (the config
 * checked, sizes within NN_MAX_PARAMS): a loader compares it with a file
 * before nn__alloc. */
int nn__resnet_plan(nn_model *m, const nn_resnet_config *cfg, sb_error *err);
int nn__mlp_plan(nn_model *m, const nn_mlp_config *cfg, sb_error *err);
int nn__unet_plan(nn_model *m, const nn_unet_config *cfg, sb_error *err);
/* Upper bounds of a network this build accepts: parameters, and each of
 * width, channels, spatial size, embedding, MLP sizes. */
#define NN_MAX_PARAMS (1 << 28)
#define NN_MAX_DIM 65536

/* Workspace carving: with ws->mem == NULL only counts. */
float *nn__carve(nn_workspace *ws, size_t *used, size_t n);

int nn__resnet_check(const nn_resnet_config *c, sb_error *err);
int nn__resnet_build(nn_model *m);
int nn__resnet_ws(nn_workspace *ws, const nn_model *m, size_t *used);
int nn__resnet_forward(const nn_model *m, nn_workspace *ws, const float *x, const float *scalars,
                       int B, float *out);
int nn__resnet_backward(const nn_model *m, nn_workspace *ws, const float *dout, float *grads,
                        float *dx);

int nn__unet_check(const nn_unet_config *c, sb_error *err);
int nn__unet_build(nn_model *m);
int nn__unet_ws(nn_workspace *ws, const nn_model *m, size_t *used);
int nn__unet_forward(const nn_model *m, nn_workspace *ws, const float *x, const float *scalars,
                     int B, float *out);
int nn__unet_backward(const nn_model *m, nn_workspace *ws, const float *dout, float *grads,
                      float *dx);

int nn__mlp_build(nn_model *m);
int nn__mlp_ws(nn_workspace *ws, const nn_model *m, size_t *used);
int nn__mlp_forward(const nn_model *m, nn_workspace *ws, const float *x, int B, float *out);
int nn__mlp_backward(const nn_model *m, nn_workspace *ws, const float *dout, float *grads,
                     float *dx);

#define NN_P(m, i) ((m)->params + (m)->tensors[i].offset)
#define NN_G(g, m, i) ((g) ? (g) + (m)->tensors[i].offset : NULL)

#endif
