/* nn_model.c: parameter memory, named tensors, workspaces and dispatch. */
#include "nn/nn_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "nn/nn_layers.h"
#include "util/rng.h"

int nn__add_tensor(nn_model *m, const char *name, int ndim, const int64_t *shape, int init,
                   int fan_in) {
  if (m->n_tensors >= NN_MAX_TENSORS) return -1;
  nn_tensor *t = &m->tensors[m->n_tensors];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->numel = 1;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    t->numel *= (size_t)shape[i];
  }
  /* keep every tensor 16-float aligned inside the buffers */
  t->offset = (m->n_params + 15) & ~(size_t)15;
  m->n_params = t->offset + t->numel;
  t->init = init;
  t->fan_in = fan_in;
  return m->n_tensors++;
}

int nn__alloc(nn_model *m, sb_error *err) {
  m->n_params = (m->n_params + 15) & ~(size_t)15;
  m->params = aligned_alloc(64, m->n_params * sizeof(float));
  m->grads = aligned_alloc(64, m->n_params * sizeof(float));
  if (!m->params || !m->grads) {
    nn_model_free(m);
    return sb_fail(err, SB_ENOMEM, "nn: cannot allocate %zu parameters", m->n_params);
  }
  memset(m->params, 0, m->n_params * sizeof(float));
  memset(m->grads, 0, m->n_params * sizeof(float));
  return SB_OK;
}

static int nn__plan_bound(const nn_model *m, sb_error *err) {
  if (m->n_params > NN_MAX_PARAMS)
    return sb_fail(err, SB_ERANGE, "nn: %zu parameters, more than the %d this build accepts", m->n_params,
                   NN_MAX_PARAMS);
  return SB_OK;
}

int nn__resnet_plan(nn_model *m, const nn_resnet_config *cfg, sb_error *err) {
  memset(m, 0, sizeof *m);
  int rc = nn__resnet_check(cfg, err);
  if (rc) return rc;
  m->kind = NN_RESNET;
  m->rc = *cfg;
  if (m->rc.dims == 1) m->rc.h = 1;
  if (nn__resnet_build(m)) return sb_fail(err, SB_ERANGE, "nn: too many tensors");
  return nn__plan_bound(m, err);
}

int nn_resnet_init(nn_model *m, const nn_resnet_config *cfg, sb_error *err) {
  int rc = nn__resnet_plan(m, cfg, err);
  return rc ? rc : nn__alloc(m, err);
}

int nn__unet_plan(nn_model *m, const nn_unet_config *cfg, sb_error *err) {
  memset(m, 0, sizeof *m);
  int rc = nn__unet_check(cfg, err);
  if (rc) return rc;
  m->kind = NN_UNET;
  m->uc = *cfg;
  if (m->uc.dims == 1) m->uc.h = 1;
  for (int l = m->uc.levels; l < NN_UNET_MAX_LEVELS; l++) m->uc.widths[l] = 0;
  if (nn__unet_build(m))
    return sb_fail(err, SB_ERANGE, "nn: unet has more than %d tensors (fewer levels or blocks)",
                   NN_MAX_TENSORS);
  return nn__plan_bound(m, err);
}

int nn_unet_init(nn_model *m, const nn_unet_config *cfg, sb_error *err) {
  int rc = nn__unet_plan(m, cfg, err);
  return rc ? rc : nn__alloc(m, err);
}

int nn_mlp_init(nn_model *m, const nn_mlp_config *cfg, sb_error *err) {
  int rc = nn__mlp_plan(m, cfg, err);
  return rc ? rc : nn__alloc(m, err);
}

int nn__mlp_plan(nn_model *m, const nn_mlp_config *cfg, sb_error *err) {
  memset(m, 0, sizeof *m);
  if (cfg->in < 1 || cfg->out < 1 || cfg->hidden < 1 || cfg->layers < 1 ||
      cfg->layers > NN_MAX_BLOCKS || cfg->act < NN_ACT_SILU || cfg->act > NN_ACT_RELU)
    return sb_fail(err, SB_EINVAL,
                   "nn: mlp config needs in, out, hidden >= 1, 1 <= layers <= %d and a known act",
                   NN_MAX_BLOCKS);
  if (cfg->in > NN_MAX_DIM || cfg->out > NN_MAX_DIM || cfg->hidden > NN_MAX_DIM)
    return sb_fail(err, SB_ERANGE, "nn: mlp sizes must be at most %d", NN_MAX_DIM);
  m->kind = NN_MLP;
  m->mc = *cfg;
  if (nn__mlp_build(m)) return sb_fail(err, SB_ERANGE, "nn: too many tensors");
  return nn__plan_bound(m, err);
}

void nn_model_free(nn_model *m) {
  free(m->params);
  free(m->grads);
  free(m->m);
  free(m->v);
  free(m->ema);
  m->params = m->grads = m->m = m->v = m->ema = NULL;
}

void nn_model_init_params(nn_model *m, uint64_t seed) {
  for (int i = 0; i < m->n_tensors; i++) {
    nn_tensor *t = &m->tensors[i];
    float *p = m->params + t->offset;
    if (t->init == NN_INIT_ONE) {
      for (size_t k = 0; k < t->numel; k++) p[k] = 1.0f;
    } else if (t->init == NN_INIT_ZERO) {
      memset(p, 0, t->numel * sizeof(float));
    } else {
      rng r;
      rng_init(&r, seed, (uint64_t)i); /* one stream per tensor */
      double bound = 1.0 / sqrt((double)(t->fan_in > 0 ? t->fan_in : 1));
      for (size_t k = 0; k < t->numel; k++) p[k] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
    }
  }
}

const nn_tensor *nn_model_find(const nn_model *m, const char *name) {
  for (int i = 0; i < m->n_tensors; i++)
    if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
  return NULL;
}

void nn_zero_grad(nn_model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

int nn_in_size(const nn_model *m) {
  if (m->kind == NN_UNET) return m->uc.cin * m->uc.h * m->uc.w;
  return m->kind == NN_RESNET ? m->rc.cin * m->rc.h * m->rc.w : m->mc.in;
}

int nn_out_size(const nn_model *m) {
  if (m->kind == NN_UNET) return m->uc.cout * m->uc.h * m->uc.w;
  return m->kind == NN_RESNET ? m->rc.cout * m->rc.h * m->rc.w : m->mc.out;
}

int nn_n_scalars(const nn_model *m) {
  if (m->kind == NN_UNET) return m->uc.n_scalars;
  return m->kind == NN_RESNET ? m->rc.n_scalars : 0;
}

float *nn__carve(nn_workspace *ws, size_t *used, size_t n) {
  float *p = ws->mem ? ws->mem + *used : NULL;
  *used += (n + 15) & ~(size_t)15;
  return p;
}

static int ws_layout(nn_workspace *ws, const nn_model *m, size_t *used) {
  *used = 0;
  ws->out = nn__carve(ws, used, (size_t)ws->max_batch * nn_out_size(m));
  ws->dout = nn__carve(ws, used, (size_t)ws->train * ws->max_batch * nn_out_size(m));
  if (m->kind == NN_UNET) return nn__unet_ws(ws, m, used);
  return m->kind == NN_RESNET ? nn__resnet_ws(ws, m, used) : nn__mlp_ws(ws, m, used);
}

int nn_workspace_init(nn_workspace *ws, const nn_model *m, int max_batch, int train,
                      sb_error *err) {
  memset(ws, 0, sizeof *ws);
  if (max_batch < 1) return sb_fail(err, SB_EINVAL, "nn: workspace max_batch must be >= 1");
  ws->max_batch = max_batch;
  ws->train = train ? 1 : 0;
  size_t n = 0;
  ws_layout(ws, m, &n);
  ws->mem = aligned_alloc(64, n * sizeof(float));
  if (!ws->mem)
    return sb_fail(err, SB_ENOMEM, "nn: cannot allocate a workspace of %zu MB for batch %d",
                   n * sizeof(float) >> 20, max_batch);
  memset(ws->mem, 0, n * sizeof(float));
  ws->n_floats = n;
  ws_layout(ws, m, &n);
  if (!train && m->kind == NN_UNET) { /* without it every call transforms its kernels */
    ws->wc = calloc((size_t)m->n_tensors, sizeof *ws->wc);
    ws->n_wc = ws->wc ? m->n_tensors : 0;
  }
  return SB_OK;
}

int nn_workspace_alloc_grads(nn_workspace *ws, const nn_model *m, sb_error *err) {
  free(ws->grads);
  ws->grads = aligned_alloc(64, m->n_params * sizeof(float));
  if (!ws->grads) return sb_fail(err, SB_ENOMEM, "nn: cannot allocate a gradient buffer");
  memset(ws->grads, 0, m->n_params * sizeof(float));
  return SB_OK;
}

void nn_workspace_free(nn_workspace *ws) {
  for (int i = 0; i < ws->n_wc; i++) nn_conv_wcache_free(&ws->wc[i]);
  free(ws->wc);
  ws->wc = NULL;
  ws->n_wc = 0;
  free(ws->mem);
  free(ws->grads);
  ws->mem = ws->grads = NULL;
}

int nn_forward(const nn_model *m, nn_workspace *ws, const float *x, const float *scalars, int B,
               float *out) {
  if (B < 1 || B > ws->max_batch || !x || !out) SB_BUG_RETURN(SB_EINVAL);
  if (nn_n_scalars(m) > 0 && !scalars) SB_BUG_RETURN(SB_EINVAL);
  ws->B = B;
  if (m->kind == NN_RESNET) return nn__resnet_forward(m, ws, x, scalars, B, out);
  if (m->kind == NN_UNET) return nn__unet_forward(m, ws, x, scalars, B, out);
  return nn__mlp_forward(m, ws, x, B, out);
}

int nn_backward(const nn_model *m, nn_workspace *ws, const float *dout, float *grads, float *dx) {
  if (!ws->train || ws->B < 1 || !dout) SB_BUG_RETURN(SB_EINVAL);
  if (m->kind == NN_RESNET) return nn__resnet_backward(m, ws, dout, grads, dx);
  if (m->kind == NN_UNET) return nn__unet_backward(m, ws, dout, grads, dx);
  return nn__mlp_backward(m, ws, dout, grads, dx);
}

int nn_infer(const nn_model *m, nn_workspace *ws, const float *x, const float *scalars, int B,
             float *out) {
  int in = nn_in_size(m), on = nn_out_size(m), ns = nn_n_scalars(m);
  for (int b0 = 0; b0 < B; b0 += ws->max_batch) {
    int nb = B - b0 < ws->max_batch ? B - b0 : ws->max_batch;
    int rc = nn_forward(m, ws, x + (size_t)b0 * in, ns ? scalars + (size_t)b0 * ns : NULL, nb,
                        out + (size_t)b0 * on);
    if (rc) return rc;
  }
  return SB_OK;
}
