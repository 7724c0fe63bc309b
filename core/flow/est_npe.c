/* est_npe.c: npe sampling and density (see est_npe.h). Chunks of NPE_CHUNK
 * samples are dealt round-robin to the threads, each with its own flow
 * buffer; the weights are shared read-only. */
#include "est_npe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "par.h"
#include "rng.h"

#define NPE_CHUNK 32

typedef struct npe_worker {
  flow_buf fb;
  float *u, *ts;
} npe_worker;

typedef struct npe_call {
  const score_model *sm;
  const float *cond;  /* [2W][N] lifted observations */
  float tsc;
  int inverse;        /* 1: sample from u; 0: density of given states */
  uint64_t seed;
  int n;              /* samples or states */
  float *x;           /* [n][N] standardized: output (sample) or input (density) */
  double *logq;       /* [n] standardized units */
  const sb_cancel *cancel;
  npe_worker w[SB_THREADS_MAX];
  atomic_int rc;
} npe_call;

/* Task: chunk `task` of NPE_CHUNK samples on worker wi's flow buffer. */
static void npe_chunk(void *arg, int task, int wi) {
  npe_call *c = arg;
  npe_worker *w = &c->w[wi];
  const int N = c->sm->N, b0 = task * NPE_CHUNK;
  if (atomic_load(&c->rc)) return;
  if (sb_cancelled(c->cancel)) {
    atomic_store(&c->rc, SB_ECANCEL);
    return;
  }
  int nb = c->n - b0 < NPE_CHUNK ? c->n - b0 : NPE_CHUNK, rc;
  float *x = c->x + (size_t)b0 * N;
  if (c->inverse) {
    for (int b = 0; b < nb; b++) {
      rng r;
      rng_init(&r, c->seed, (uint64_t)(b0 + b));
      rng_fill_normal_f(&r, w->u + (size_t)b * N, (size_t)N);
    }
    rc = flow_inverse(c->sm, &w->fb, w->u, c->cond, 0, w->ts, nb, x, c->logq + b0);
  } else {
    rc = flow_forward(c->sm, &w->fb, x, c->cond, 0, w->ts, nb, c->logq + b0);
  }
  if (rc) atomic_store(&c->rc, rc);
}

static int npe_run(npe_call *c, int threads, sb_error *err) {
  int chunks = (c->n + NPE_CHUNK - 1) / NPE_CHUNK;
  int T = sb_threads(threads, chunks);
  int rc = SB_OK;
  atomic_store(&c->rc, 0);
  for (int t = 0; t < T && !rc; t++) {
    npe_worker *w = &c->w[t];
    rc = flow_buf_init(&w->fb, c->sm, NPE_CHUNK, 0, err);
    w->u = malloc(sizeof(float) * NPE_CHUNK * (size_t)c->sm->N);
    w->ts = malloc(sizeof(float) * NPE_CHUNK);
    if (!rc && (!w->u || !w->ts)) rc = sb_fail(err, SB_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < NPE_CHUNK; i++) w->ts[i] = c->tsc;
  }
  if (!rc) {
    sb_parallel_for(chunks, T, npe_chunk, c);
    int wrc = atomic_load(&c->rc);
    if (wrc == SB_ECANCEL) rc = sb_fail(err, SB_ECANCEL, "cancelled");
    else if (wrc) rc = sb_fail(err, SB_EINVAL, "flow evaluation failed");
  }
  for (int t = 0; t < T; t++) {
    flow_buf_free(&c->w[t].fb);
    free(c->w[t].u);
    free(c->w[t].ts);
  }
  return rc;
}

/* Lifted observations and the shared call settings for problem p. */
static int npe_call_init(npe_call *c, const score_model *sm, const est_problem *p, sb_error *err) {
  memset(c, 0, sizeof *c);
  c->sm = sm;
  float *cond = malloc(sizeof(float) * 2 * (size_t)sm->W * sm->N);
  if (!cond) return sb_fail(err, SB_ENOMEM, "out of memory");
  score_lift_observations(sm, p->op, p->y, cond);
  c->cond = cond;
  c->tsc = sm->time_varying ? (float)((double)p->time_index / sm->sim->t_max) : 0.0f;
  return SB_OK;
}

static double log_std_sum(const score_model *sm) {
  double s = 0;
  for (int n = 0; n < sm->N; n++) s += log(sm->std[n]);
  return s;
}

int npe_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  const score_model *sm = e->impl;
  const int N = sm->N, S = o->n_samples;
  npe_call c;
  int rc = npe_call_init(&c, sm, p, err);
  if (rc) return rc;
  c.inverse = 1, c.seed = o->seed, c.n = S, c.cancel = o->cancel;
  c.x = malloc(sizeof(float) * (size_t)S * N);
  c.logq = malloc(sizeof(double) * (size_t)S);
  if (!c.x || !c.logq) rc = sb_fail(err, SB_ENOMEM, "out of memory for %d samples", S);
  if (!rc) rc = npe_run(&c, o->threads, err);
  /* the window is not modelled: only x_t (want_window is ignored, has_window = 0) */
  if (!rc) rc = est_result_alloc(r, S, N, sm->W, 0, 1, err);
  if (!rc) {
    const double lsd = log_std_sum(sm);
    for (int s = 0; s < S; s++) {
      for (int n = 0; n < N; n++) r->samples[(size_t)s * N + n] = sm->mean[n] + sm->std[n] * c.x[(size_t)s * N + n];
      r->log_density[s] = c.logq[s] - lsd;
    }
    json_object_set_new(r->diagnostics, "flow", json_pack("{s:i, s:f}", "couplings", sm->couplings, "clamp", sm->clamp));
  }
  if (o->progress) o->progress(o->progress_ctx, 1.0);
  free((float *)c.cond);
  free(c.x);
  free(c.logq);
  return rc;
}

int npe_log_prob(estimator *e, const est_problem *p, const est_options *o, const double *x, int n, double *out,
                 sb_error *err) {
  const score_model *sm = e->impl;
  const int N = sm->N;
  npe_call c;
  int rc = npe_call_init(&c, sm, p, err);
  if (rc) return rc;
  c.n = n, c.cancel = o ? o->cancel : NULL;
  c.x = malloc(sizeof(float) * (size_t)n * N);
  c.logq = malloc(sizeof(double) * (size_t)n);
  if (!c.x || !c.logq) rc = sb_fail(err, SB_ENOMEM, "out of memory");
  if (!rc) {
    for (int i = 0; i < n; i++)
      for (int k = 0; k < N; k++) c.x[(size_t)i * N + k] = (float)((x[(size_t)i * N + k] - sm->mean[k]) / sm->std[k]);
    rc = npe_run(&c, o ? o->threads : 1, err);
  }
  if (!rc) {
    const double lsd = log_std_sum(sm);
    for (int i = 0; i < n; i++) out[i] = c.logq[i] - lsd;
  }
  free((float *)c.cond);
  free(c.x);
  free(c.logq);
  return rc;
}
