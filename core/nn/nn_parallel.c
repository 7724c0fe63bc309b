/* nn_parallel.c: data-parallel training gradients and inference (see nn_parallel.h). */
#include "nn/nn_parallel.h"

#include <cblas.h>
#include <string.h>

#include "util/par.h"

#define NN_MAX_THREADS SB_THREADS_MAX

typedef struct slices {
  nn_slice_fn fn;
  void *ctx;
  int B, per;
  float *const *grads;
  float *G;
  double loss[NN_MAX_THREADS];
  int rc[NN_MAX_THREADS];
} slices;

static void slice_task(void *arg, int t, int w) {
  (void)w;
  slices *s = arg;
  int b0 = t * s->per < s->B ? t * s->per : s->B, b1 = b0 + s->per < s->B ? b0 + s->per : s->B;
  s->loss[t] = 0;
  s->rc[t] = b1 > b0 ? s->fn(s->ctx, t, b0, b1 - b0, t ? s->grads[t] : s->G, &s->loss[t]) : 0;
}

int nn_grad_slices(nn_model *m, int T, int B, float *const *grads, nn_slice_fn fn, void *ctx, double *loss) {
  if (T < 1 || T > NN_MAX_THREADS || B < 1) SB_BUG_RETURN(SB_EINVAL);
  slices s = {.fn = fn, .ctx = ctx, .B = B, .per = (B + T - 1) / T, .grads = grads, .G = m->grads};
  for (int t = 1; t < T; t++) memset(grads[t], 0, m->n_params * sizeof(float));
  int blas = openblas_get_num_threads();
  if (T > 1) openblas_set_num_threads(1);
  sb_parallel_for(T, T, slice_task, &s);
  if (T > 1) openblas_set_num_threads(blas);
  double total = 0.0;
  for (int t = 0; t < T; t++) {
    if (s.rc[t]) return s.rc[t];
    total += s.loss[t];
  }
  for (int t = 1; t < T; t++) {
    const float *g = grads[t];
    float *G = m->grads;
    for (size_t i = 0; i < m->n_params; i++) G[i] += g[i];
  }
  if (loss) *loss = total;
  return SB_OK;
}

typedef struct grad_ctx {
  const nn_model *m;
  nn_workspace *ws;
  const float *x, *s;
  int n_total;
  nn_loss_fn loss;
  void *ctx;
  float *dx;
} grad_ctx;

/* slice t: forward, loss, backward on workspace t */
static int grad_slice(void *arg, int t, int b0, int nb, float *grads, double *loss) {
  const grad_ctx *c = arg;
  const nn_model *m = c->m;
  nn_workspace *ws = &c->ws[t];
  int in = nn_in_size(m), ns = nn_n_scalars(m);
  int rc = nn_forward(m, ws, c->x + (size_t)b0 * in, ns ? c->s + (size_t)b0 * ns : NULL, nb, ws->out);
  if (rc) return rc;
  *loss = c->loss(c->ctx, b0, nb, c->n_total, ws->out, ws->dout);
  return nn_backward(m, ws, ws->dout, grads, c->dx ? c->dx + (size_t)b0 * in : NULL);
}

int nn_grad_mt(nn_model *m, nn_workspace *ws, int T, const float *x, const float *scalars, int B,
               nn_loss_fn loss, void *ctx, float *dx, double *loss_out, sb_error *err) {
  if (T < 1 || T > NN_MAX_THREADS || B < 1 || !loss)
    return sb_fail(err, SB_EINVAL, "nn: nn_grad_mt needs 1..%d threads, B >= 1 and a loss",
                   NN_MAX_THREADS);
  int per = (B + T - 1) / T;
  float *grads[NN_MAX_THREADS] = {NULL};
  for (int t = 0; t < T; t++) {
    if (!ws[t].train || ws[t].max_batch < per)
      return sb_fail(err, SB_EINVAL, "nn: workspace %d must be a training workspace for %d samples",
                     t, per);
    if (t > 0 && !ws[t].grads) {
      int rc = nn_workspace_alloc_grads(&ws[t], m, err);
      if (rc) return rc;
    }
    grads[t] = ws[t].grads;
  }
  grad_ctx c = {m, ws, x, scalars, B, loss, ctx, dx};
  int rc = nn_grad_slices(m, T, B, grads, grad_slice, &c, loss_out);
  if (rc) return SB_BUG(err, rc, "nn: forward/backward failed in a worker");
  return SB_OK;
}

typedef struct infer_ctx {
  const nn_model *m;
  nn_workspace *ws;
  const float *x, *s;
  float *out;
} infer_ctx;

/* samples [b0, b1) on workspace wi */
static int infer_range(void *arg, int b0, int b1, int wi) {
  const infer_ctx *c = arg;
  int in = nn_in_size(c->m), on = nn_out_size(c->m), ns = nn_n_scalars(c->m);
  return nn_infer(c->m, &c->ws[wi], c->x + (size_t)b0 * in, ns ? c->s + (size_t)b0 * ns : NULL, b1 - b0,
                  c->out + (size_t)b0 * on);
}

int nn_infer_mt(const nn_model *m, nn_workspace *ws, int T, const float *x, const float *scalars,
                int B, float *out, sb_error *err) {
  if (T < 1 || T > NN_MAX_THREADS || B < 1)
    return sb_fail(err, SB_EINVAL, "nn: nn_infer_mt needs 1..%d threads and B >= 1",
                   NN_MAX_THREADS);
  infer_ctx c = {m, ws, x, scalars, out};
  int blas = openblas_get_num_threads();
  if (T > 1) openblas_set_num_threads(1);
  int rc = sb_parallel_ranges(B, (B + T - 1) / T, T, NULL, infer_range, &c, "nn: inference in a worker", err);
  if (T > 1) openblas_set_num_threads(blas);
  return rc;
}
