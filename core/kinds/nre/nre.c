/* nre.c: the nre kind, ratio-weighted resampling of prior draws (see
 * nre.h). The classifier runs on chunks of NRE_CHUNK candidates on the
 * thread pool, so the weights do not depend on the thread count. */
#include "kinds/nre/nre.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_layers.h"
#include "nn/nn_parallel.h"
#include "util/jsonb.h"
#include "util/par.h"
#include "util/rng.h"

/* most prior draws one request may resample (memory and simulation time
 * grow linearly with it) */
#define NRE_MAX_CANDIDATES 65536

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

/* candidates (2..NRE_MAX_CANDIDATES): in the config's "nre", the file's
 * sbida.nre and the request parameters */
static const params_spec nre_params[] = {
    {"candidates", PARAM_INT, 2, NRE_MAX_CANDIDATES, 0},
    {NULL, 0, 0, 0, 0},
};

typedef struct nre_worker {
  nn_workspace ws;
  float *in, *scal;
} nre_worker;

typedef struct nre_call {
  const model *sm;
  const float *cond;   /* [2W][N] lifted observations */
  float tsc;
  const double *x;     /* [M][N] physical candidates */
  int M;
  double *logit;       /* [M] */
  const sb_cancel *cancel;
  nre_worker w[SB_THREADS_MAX];
} nre_call;

/* The logits of candidates [b0, b1) on worker wi. */
static int nre_chunk(void *arg, int b0, int b1, int wi) {
  nre_call *c = arg;
  nre_worker *w = &c->w[wi];
  const model *sm = c->sm;
  const int N = sm->N, nc = 2 * sm->W, nb = b1 - b0;
  const size_t per = (size_t)(1 + nc) * N;
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
  return rc;
}

static int nre_logits(nre_call *c, int threads, sb_error *err) {
  int T = sb_threads(threads, (c->M + NRE_CHUNK - 1) / NRE_CHUNK), rc = SB_OK;
  const size_t per = (size_t)(1 + 2 * c->sm->W) * c->sm->N;
  for (int t = 0; t < T && !rc; t++) {
    nre_worker *w = &c->w[t];
    rc = nn_workspace_init(&w->ws, &c->sm->net, NRE_CHUNK, 0, err);
    w->in = malloc(sizeof(float) * NRE_CHUNK * per);
    w->scal = malloc(sizeof(float) * NRE_CHUNK);
    if (!rc && (!w->in || !w->scal)) rc = sb_fail(err, SB_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < NRE_CHUNK; i++) w->scal[i] = c->tsc;
  }
  if (!rc) rc = sb_parallel_ranges(c->M, NRE_CHUNK, T, c->cancel, nre_chunk, c, "classifier evaluation", err);
  for (int t = 0; t < T; t++) {
    nn_workspace_free(&c->w[t].ws);
    free(c->w[t].in);
    free(c->w[t].scal);
  }
  return rc;
}

static int sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  const model *sm = e->impl;
  const int N = sm->N, S = o->n_samples;
  int rc = SB_OK;
  int M = (int)params_int(o->params, "candidates", nre_settings_of(sm)->candidates); /* checked by est_sample */
  nre_call c = {.sm = sm, .M = M, .cancel = o->cancel};
  c.tsc = sm->time_varying ? (float)((double)p->time_index / sm->sim->t_max) : 0.0f;
  float *cond = malloc(sizeof(float) * 2 * (size_t)sm->W * N);
  double *x = malloc(sizeof(double) * (size_t)M * N), *logit = malloc(sizeof(double) * (size_t)M);
  int *idx = malloc(sizeof(int) * (size_t)S);
  if (!cond || !x || !logit || !idx) rc = sb_fail(err, SB_ENOMEM, "out of memory for %d candidates", M);
  /* prior draws at time t: streams 0..M-1 of the request's seed */
  if (!rc) rc = sim_sample_at(sm->sim, x, (size_t)M, p->time_index, o->seed, 0, err);
  if (!rc && o->progress) o->progress(o->progress_ctx, 0.5);
  if (!rc) {
    c.cond = cond, c.x = x, c.logit = logit;
    rc = model_lift_observations(sm, p->op, p->y, cond, err);
    if (!rc) rc = nre_logits(&c, o->threads, err);
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
    int bad = 0;
    jb_set_real(r->diagnostics, "ess", ess, &bad);
    jb_set(r->diagnostics, "candidates", json_integer(M), &bad);
    jb_set(r->diagnostics, "distinct_samples", json_integer(distinct), &bad);
    jb_set_real(r->diagnostics, "max_log_ratio", lmax, &bad);
    if (bad) rc = sb_fail(err, SB_ENOMEM, "out of memory for the diagnostics");
  }
  if (!rc && o->progress) o->progress(o->progress_ctx, 1.0);
  free(cond); free(x); free(logit); free(idx);
  return rc;
}

// ----------------------------------------------------------------------------
// the kind

static int in_channels(int W) { return 1 + 2 * W; } /* x_t, 2W lifted observations */
static int out_channels(int W) {
  (void)W;
  return 1; /* one logit per node, averaged into the classifier's logit */
}
static int n_scalars(int time_varying) { return time_varying; }

static int settings_new(void **settings, sb_error *err) {
  nre_settings *s = calloc(1, sizeof *s);
  *settings = s;
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory for the nre settings");
  s->candidates = 4096;
  return SB_OK;
}

static void settings_free(void *settings) { free(settings); }

static int from_config(model *m, const json_t *section, const json_t *arch, sb_error *err) {
  (void)arch, (void)err;
  nre_settings *s = nre_settings_of(m);
  s->candidates = (int)params_int(section, "candidates", s->candidates);
  return SB_OK;
}

static json_t *meta_to_json(const model *m) { return json_pack("{s:i}", "candidates", nre_settings_of(m)->candidates); }

static int meta_from_json(model *m, const json_t *j, sb_error *err) {
  if (!j) return sb_fail(err, SB_EFORMAT, "model metadata lacks sbida.nre");
  nre_settings *s = nre_settings_of(m);
  s->candidates = (int)json_integer_value(json_object_get(j, "candidates"));
  if (s->candidates < 2 || s->candidates > NRE_MAX_CANDIDATES)
    return sb_fail(err, SB_EFORMAT, "model metadata sbida.nre needs candidates in 2..%d", NRE_MAX_CANDIDATES);
  return SB_OK;
}

/* training: B windows give B joint pairs (x_b, y_b) and B shuffled ones
 * (x_{b+1 mod B}, y_b) (the marginals' product: windows are independent
 * draws); pairs [2B][1 + 2W][N] with scaled times [2B] */
typedef struct nre_train {
  model *m;
  kind_train_setup s;
  int lo, np;                            /* this process's part of the 2B pairs (kind_train_setup) */
  nn_workspace ws, tws[SB_THREADS_MAX];
  float *x, *lift, *ts;                  /* one batch: standardized x_t, lifted observations, times */
  float *pair_in, *pair_scal, *val_pair_in, *val_pair_scal;
  double *xs, *y;
} nre_train;

static void train_free(void *state) {
  nre_train *t = state;
  if (!t) return;
  nn_workspace_free(&t->ws);
  for (int i = 0; i < SB_THREADS_MAX; i++) nn_workspace_free(&t->tws[i]);
  free(t->x); free(t->lift); free(t->ts);
  free(t->pair_in); free(t->pair_scal); free(t->val_pair_in); free(t->val_pair_scal);
  free(t->xs); free(t->y);
  free(t);
}

static int train_init(void **state, model *m, const kind_train_setup *s, sb_error *err) {
  nre_train *t = calloc(1, sizeof *t);
  if (!t) return sb_fail(err, SB_ENOMEM, "out of memory");
  *state = t;
  t->m = m, t->s = *s;
  const int N = m->N, W = m->W, B = s->batch, V = s->val_windows, T = s->threads;
  const int nmax = B > V ? B : V;
  const size_t per = (size_t)(1 + 2 * W) * N;
  t->np = kind_train_part(s, 2 * B, &t->lo);
  int rc = nn_workspace_init(&t->ws, &m->net, 2 * B, 0, err);
  for (int i = 0; !rc && i < T; i++) rc = nn_workspace_init(&t->tws[i], &m->net, (t->np + T - 1) / T, 1, err);
  if (rc) return rc;
  t->x = malloc(sizeof(float) * (size_t)nmax * N);
  t->lift = malloc(sizeof(float) * (size_t)nmax * 2 * W * N);
  t->ts = malloc(sizeof(float) * (size_t)nmax);
  t->pair_in = malloc(sizeof(float) * 2 * (size_t)B * per);
  t->pair_scal = malloc(sizeof(float) * 2 * (size_t)B);
  t->val_pair_in = malloc(sizeof(float) * 2 * (size_t)V * per);
  t->val_pair_scal = malloc(sizeof(float) * 2 * (size_t)V);
  t->xs = malloc(sizeof(double) * (size_t)N);
  t->y = malloc(sizeof(double) * (size_t)W * m->op->n_obs);
  if (!t->x || !t->lift || !t->ts || !t->pair_in || !t->pair_scal || !t->val_pair_in || !t->val_pair_scal || !t->xs ||
      !t->y)
    return sb_fail(err, SB_ENOMEM, "out of memory for a batch of %d windows", B);
  return SB_OK;
}

static int make_batch(void *state, rng *r, const float *win, const long *tix, int B, int val, sb_error *err) {
  nre_train *t = state;
  const model *m = t->m;
  const int N = m->N, W = m->W, nc = 2 * W;
  const size_t per = (size_t)(1 + nc) * N;
  for (int b = 0; b < B; b++) {
    const float *wb = win + (size_t)b * W * N;
    for (int n = 0; n < N; n++) t->x[(size_t)b * N + n] = (float)((wb[(size_t)(W - 1) * N + n] - m->mean[n]) / m->std[n]);
    int rc = model_observe_window(m, r, t->s.missing_time, t->s.missing_entry, wb, t->xs, t->y,
                                  t->lift + (size_t)b * nc * N, err);
    if (rc) return rc;
    t->ts[b] = (float)model_time_scaled(m, tix[b]);
  }
  float *in = val ? t->val_pair_in : t->pair_in, *scal = val ? t->val_pair_scal : t->pair_scal;
  for (int p = 0; p < 2 * B; p++) {
    int b = p % B, xb = p < B ? b : (b + 1) % B;
    memcpy(in + (size_t)p * per, t->x + (size_t)xb * N, sizeof(float) * (size_t)N);
    memcpy(in + (size_t)p * per + N, t->lift + (size_t)b * nc * N, sizeof(float) * (size_t)nc * N);
    scal[p] = t->ts[b];
  }
  return SB_OK;
}

/* the classifier's logit is the mean of its per-node outputs; label 1 for
 * the first half of the batch's 2B pairs (joint), 0 for the rest. BCE, the
 * mean over all 2B pairs (nn_loss_fn on this process's part: b0 counts from
 * pair t->lo, the part's size is ignored). */
static double slice_bce(void *ctx, int b0, int B, int n_part, const float *out, float *dout) {
  const nre_train *t = ctx;
  const int N = t->m->N, n_total = 2 * t->s.batch;
  (void)n_part;
  b0 += t->lo;
  double l = 0;
  for (int b = 0; b < B; b++) {
    double z = 0;
    for (int n = 0; n < N; n++) z += out[(size_t)b * N + n];
    z /= N;
    int y = b0 + b < n_total / 2;
    /* log(1 + e^-|z|) + max(z, 0) - y z, stably */
    l += (log1p(exp(-fabs(z))) + (z > 0 ? z : 0) - y * z) / n_total;
    float g = (float)((1.0 / (1.0 + exp(-z)) - y) / ((double)n_total * N));
    for (int n = 0; n < N; n++) dout[(size_t)b * N + n] = g;
  }
  return l;
}

static int grad(void *state, double *loss, sb_error *err) {
  nre_train *t = state;
  const size_t per = (size_t)(1 + 2 * t->m->W) * t->m->N;
  return nn_grad_mt(&t->m->net, t->tws, t->s.threads, t->pair_in + (size_t)t->lo * per,
                    t->m->time_varying ? t->pair_scal + t->lo : NULL, t->np, slice_bce, t, NULL, loss, err);
}

static double val_loss(void *state) {
  nre_train *t = state;
  nn_model ema = t->m->net;
  if (t->m->net.ema) ema.params = t->m->net.ema;
  const int N = t->m->N, total = 2 * t->s.val_windows;
  const size_t per = (size_t)(1 + 2 * t->m->W) * N;
  double acc = 0;
  for (int done = 0; done < total;) {
    int B = total - done < t->ws.max_batch ? total - done : t->ws.max_batch;
    if (nn_forward(&ema, &t->ws, t->val_pair_in + (size_t)done * per,
                   t->m->time_varying ? t->val_pair_scal + done : NULL, B, t->ws.out))
      return NAN;
    for (int b = 0; b < B; b++) {
      double z = 0;
      for (int n = 0; n < N; n++) z += t->ws.out[(size_t)b * N + n];
      z /= N;
      int y = done + b < total / 2;
      acc += log1p(exp(-fabs(z))) + (z > 0 ? z : 0) - y * z;
    }
    done += B;
  }
  return acc / total;
}

const model_kind kind_nre = {
    .name = "nre",
    .what = "ratio classifier, importance resampling of prior draws",
    .has_operator = 1,
    .meta_key = "sbida.nre",
    .config_key = "nre",
    .config_params = nre_params,
    .request_params = nre_params,
    MODEL_KIND_FUNCTIONS,
};
