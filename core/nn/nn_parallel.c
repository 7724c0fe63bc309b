/* nn_parallel.c: data-parallel training gradients and inference (see nn_parallel.h). */
#include "nn/nn_parallel.h"

#include <cblas.h>
#include <string.h>

#include "util/par.h"

#define NN_MAX_THREADS SB_THREADS_MAX

typedef struct job {
  const nn_model *m;
  nn_workspace *ws;
  const float *x, *s;
  int b0, B, n_total, train;
  nn_loss_fn loss;
  void *ctx;
  float *grads, *dx, *out;
  double loss_val;
  int rc;
} job;

/* task t: slice t of the batch, with workspace t */
static void worker(void *ctx, int t, int w) {
  (void)w;
  job *j = (job *)ctx + t;
  const nn_model *m = j->m;
  int in = nn_in_size(m), on = nn_out_size(m), ns = nn_n_scalars(m);
  const float *x = j->x + (size_t)j->b0 * in, *s = ns ? j->s + (size_t)j->b0 * ns : NULL;
  if (!j->train) {
    j->rc = j->B ? nn_infer(m, j->ws, x, s, j->B, j->out + (size_t)j->b0 * on) : 0;
    return;
  }
  if (!j->B) return;
  j->rc = nn_forward(m, j->ws, x, s, j->B, j->ws->out);
  if (j->rc) return;
  j->loss_val = j->loss(j->ctx, j->b0, j->B, j->n_total, j->ws->out, j->ws->dout);
  j->rc = nn_backward(m, j->ws, j->ws->dout, j->grads, j->dx ? j->dx + (size_t)j->b0 * in : NULL);
}

static int run(job *jobs, int T) {
  int blas = openblas_get_num_threads();
  if (T > 1) openblas_set_num_threads(1);
  sb_parallel_for(T, T, worker, jobs);
  if (T > 1) openblas_set_num_threads(blas);
  for (int t = 0; t < T; t++)
    if (jobs[t].rc) return jobs[t].rc;
  return 0;
}

static int split(job *jobs, int T, int B) {
  int per = (B + T - 1) / T;
  for (int t = 0; t < T; t++) {
    int b0 = t * per < B ? t * per : B;
    int b1 = b0 + per < B ? b0 + per : B;
    jobs[t].b0 = b0;
    jobs[t].B = b1 - b0;
  }
  return per;
}

int nn_grad_mt(nn_model *m, nn_workspace *ws, int T, const float *x, const float *scalars, int B,
               nn_loss_fn loss, void *ctx, float *dx, double *loss_out, sb_error *err) {
  if (T < 1 || T > NN_MAX_THREADS || B < 1 || !loss)
    return sb_fail(err, SB_EINVAL, "nn: nn_grad_mt needs 1..%d threads, B >= 1 and a loss",
                   NN_MAX_THREADS);
  job jobs[NN_MAX_THREADS];
  memset(jobs, 0, sizeof(job) * T);
  int per = split(jobs, T, B);
  for (int t = 0; t < T; t++) {
    if (!ws[t].train || ws[t].max_batch < per)
      return sb_fail(err, SB_EINVAL, "nn: workspace %d must be a training workspace for %d samples",
                     t, per);
    if (t > 0 && !ws[t].grads) {
      int rc = nn_workspace_alloc_grads(&ws[t], m, err);
      if (rc) return rc;
    }
    if (t > 0) memset(ws[t].grads, 0, m->n_params * sizeof(float));
    jobs[t] = (job){m, &ws[t], x, scalars, jobs[t].b0, jobs[t].B, B, 1, loss, ctx,
                    t ? ws[t].grads : m->grads, dx, NULL, 0.0, 0};
  }
  int rc = run(jobs, T);
  if (rc) return SB_BUG(err, rc, "nn: forward/backward failed in a worker");
  double total = 0.0;
  for (int t = 0; t < T; t++) total += jobs[t].loss_val;
  for (int t = 1; t < T; t++) {
    const float *g = ws[t].grads;
    float *G = m->grads;
    for (size_t i = 0; i < m->n_params; i++) G[i] += g[i];
  }
  if (loss_out) *loss_out = total;
  return SB_OK;
}

int nn_infer_mt(const nn_model *m, nn_workspace *ws, int T, const float *x, const float *scalars,
                int B, float *out, sb_error *err) {
  if (T < 1 || T > NN_MAX_THREADS || B < 1)
    return sb_fail(err, SB_EINVAL, "nn: nn_infer_mt needs 1..%d threads and B >= 1",
                   NN_MAX_THREADS);
  job jobs[NN_MAX_THREADS];
  memset(jobs, 0, sizeof(job) * T);
  split(jobs, T, B);
  for (int t = 0; t < T; t++) {
    jobs[t].m = m;
    jobs[t].ws = &ws[t];
    jobs[t].x = x;
    jobs[t].s = scalars;
    jobs[t].out = out;
  }
  int rc = run(jobs, T);
  if (rc) return SB_BUG(err, rc, "nn: inference failed in a worker");
  return SB_OK;
}
