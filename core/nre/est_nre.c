/* est_nre.c: ratio-weighted resampling of prior draws (see est_nre.h). The
 * classifier runs on chunks of NRE_CHUNK candidates dealt round-robin to the
 * threads, so the weights do not depend on the thread count. */
#include "est_nre.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "par.h"
#include "rng.h"
#include "score_model.h"

#define NRE_CHUNK 64

double nre_normalize(double *logw, int M) {
  double mx = -INFINITY, sum = 0, sq = 0;
  for (int m = 0; m < M; m++) mx = logw[m] > mx ? logw[m] : mx;
  for (int m = 0; m < M; m++) sum += (logw[m] = exp(logw[m] - mx));
  for (int m = 0; m < M; m++) logw[m] /= sum, sq += logw[m] * logw[m];
  return 1.0 / sq;
}

void nre_resample(const double *w, int M, int S, double u, int *idx) {
  double c = w[0];
  int m = 0;
  for (int s = 0; s < S; s++) {
    double target = (s + u) / S;
    while (target > c && m < M - 1) c += w[++m];
    idx[s] = m;
  }
}

typedef struct nre_worker {
  nn_workspace ws;
  float *in, *scal;
} nre_worker;

typedef struct nre_call {
  const score_model *sm;
  const float *cond;   /* [2W][N] lifted observations */
  float tsc;
  const double *x;     /* [M][N] physical candidates */
  int M;
  double *logit;       /* [M] */
  const sb_cancel *cancel;
  nre_worker w[SB_THREADS_MAX];
  atomic_int rc;
} nre_call;

/* Task: the logits of chunk `task` of NRE_CHUNK candidates on worker wi. */
static void nre_chunk(void *arg, int task, int wi) {
  nre_call *c = arg;
  nre_worker *w = &c->w[wi];
  const score_model *sm = c->sm;
  const int N = sm->N, nc = 2 * sm->W, b0 = task * NRE_CHUNK;
  const size_t per = (size_t)(1 + nc) * N;
  if (atomic_load(&c->rc)) return;
  if (sb_cancelled(c->cancel)) {
    atomic_store(&c->rc, SB_ECANCEL);
    return;
  }
  int nb = c->M - b0 < NRE_CHUNK ? c->M - b0 : NRE_CHUNK;
  for (int b = 0; b < nb; b++) {
    float *ib = w->in + (size_t)b * per;
    for (int n = 0; n < N; n++) ib[n] = (float)((c->x[(size_t)(b0 + b) * N + n] - sm->mean[n]) / sm->std[n]);
    memcpy(ib + N, c->cond, sizeof(float) * (size_t)nc * N);
  }
  int rc = nn_forward(&sm->net, &w->ws, w->in, sm->time_varying ? w->scal : NULL, nb, w->ws.out);
  for (int b = 0; !rc && b < nb; b++) {
    double z = 0;
    for (int n = 0; n < N; n++) z += w->ws.out[(size_t)b * N + n];
    c->logit[b0 + b] = z / N;
  }
  if (rc) atomic_store(&c->rc, rc);
}

static int nre_logits(nre_call *c, int threads, sb_error *err) {
  int chunks = (c->M + NRE_CHUNK - 1) / NRE_CHUNK;
  int T = sb_threads(threads, chunks);
  int rc = SB_OK;
  atomic_store(&c->rc, 0);
  const size_t per = (size_t)score_in_channels(SCORE_NRE, c->sm->W) * c->sm->N;
  for (int t = 0; t < T && !rc; t++) {
    nre_worker *w = &c->w[t];
    rc = nn_workspace_init(&w->ws, &c->sm->net, NRE_CHUNK, 0, err);
    w->in = malloc(sizeof(float) * NRE_CHUNK * per);
    w->scal = malloc(sizeof(float) * NRE_CHUNK);
    if (!rc && (!w->in || !w->scal)) rc = sb_fail(err, SB_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < NRE_CHUNK; i++) w->scal[i] = c->tsc;
  }
  if (!rc) {
    sb_parallel_for(chunks, T, nre_chunk, c);
    int wrc = atomic_load(&c->rc);
    if (wrc == SB_ECANCEL) rc = sb_fail(err, SB_ECANCEL, "cancelled");
    else if (wrc) rc = sb_fail(err, SB_EINVAL, "classifier evaluation failed");
  }
  for (int t = 0; t < T; t++) {
    nn_workspace_free(&c->w[t].ws);
    free(c->w[t].in);
    free(c->w[t].scal);
  }
  return rc;
}

int nre_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  const score_model *sm = e->impl;
  const int N = sm->N, S = o->n_samples;
  int M = sm->candidates;
  json_t *jc = o->params ? json_object_get(o->params, "candidates") : NULL;
  if (jc) {
    if (!json_is_integer(jc) || json_integer_value(jc) < 2 || json_integer_value(jc) > NRE_MAX_CANDIDATES)
      return sb_fail(err, SB_EINVAL, "params.candidates must be an integer in 2..%d", NRE_MAX_CANDIDATES);
    M = (int)json_integer_value(jc);
  }
  nre_call c = {.sm = sm, .M = M, .cancel = o->cancel};
  c.tsc = sm->time_varying ? (float)((double)p->time_index / sm->sim->t_max) : 0.0f;
  float *cond = malloc(sizeof(float) * 2 * (size_t)sm->W * N);
  double *x = malloc(sizeof(double) * (size_t)M * N), *logit = malloc(sizeof(double) * (size_t)M);
  int *idx = malloc(sizeof(int) * (size_t)S);
  int rc = SB_OK;
  if (!cond || !x || !logit || !idx) rc = sb_fail(err, SB_ENOMEM, "out of memory for %d candidates", M);
  /* prior draws at time t: streams 0..M-1 of the request's seed */
  if (!rc) rc = sim_sample_at(sm->sim, x, (size_t)M, p->time_index, o->seed, 0, err);
  if (!rc && o->progress) o->progress(o->progress_ctx, 0.5);
  if (!rc) {
    score_lift_observations(sm, p->op, p->y, cond);
    c.cond = cond, c.x = x, c.logit = logit;
    rc = nre_logits(&c, o->threads, err);
  }
  if (!rc) rc = est_result_alloc(r, S, N, sm->W, 0, 0, err);
  if (!rc) {
    double lmax = -INFINITY;
    for (int m = 0; m < M; m++) lmax = logit[m] > lmax ? logit[m] : lmax;
    double ess = nre_normalize(logit, M);
    rng g;
    rng_init(&g, o->seed, (uint64_t)M + 1); /* a stream none of the prior draws used */
    nre_resample(logit, M, S, rng_uniform(&g), idx);
    int distinct = 0;
    for (int s = 0; s < S; s++) {
      memcpy(r->samples + (size_t)s * N, x + (size_t)idx[s] * N, sizeof(double) * (size_t)N);
      distinct += s == 0 || idx[s] != idx[s - 1]; /* systematic resampling keeps indices sorted */
    }
    json_object_set_new(r->diagnostics, "ess", json_real(ess));
    json_object_set_new(r->diagnostics, "candidates", json_integer(M));
    json_object_set_new(r->diagnostics, "distinct_samples", json_integer(distinct));
    json_object_set_new(r->diagnostics, "max_log_ratio", json_real(lmax));
  }
  if (!rc && o->progress) o->progress(o->progress_ctx, 1.0);
  free(cond); free(x); free(logit); free(idx);
  return rc;
}
