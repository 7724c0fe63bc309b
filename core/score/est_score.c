/* est_score.c: posterior-score and composed-score behind the estimator
 * interface. One call samples all S samples as one batch (chunks of at most
 * SCORE_CHUNK through the network); the weights are shared read-only, every
 * call has its own workspace, so calls may run on several threads at once. */
#include "est_score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "par.h"
#include "est_npe.h"
#include "est_nre.h"
#include "score_model.h"

/* Samples go through the network in chunks of this size, dealt round-robin to
 * the workers: every chunk is computed the same way for any thread count, so
 * the samples are bit-identical whatever the number of threads. */
#define SCORE_CHUNK 32

/* One network worker's scratch: a workspace and buffers for one chunk. */
typedef struct score_worker {
  nn_workspace ws;
  float *in, *scal, *dx;
} score_worker;

typedef struct score_ctx {
  const score_model *sm;
  int cin, cout, xch; /* network in/out channels, channels that are x */
  const float *cond;  /* posterior: [2W][N] lifted observations */
  double t_scaled;
  int T;              /* workers */
  score_worker w[SB_THREADS_MAX];
  /* the current network call: v (and, when cot is set, the input VJP g) of B samples at tau */
  const float *x, *cot;
  float *v, *g;
  double tau;
  int B;
  atomic_int rc;
} score_ctx;

static void fill_inputs(const score_ctx *c, score_worker *w, int b0, int B) {
  const int N = c->sm->N, ns = nn_n_scalars(&c->sm->net);
  for (int b = 0; b < B; b++) {
    float *ib = w->in + (size_t)b * c->cin * N;
    memcpy(ib, c->x + (size_t)(b0 + b) * c->xch * N, sizeof(float) * (size_t)c->xch * N);
    if (c->cond) memcpy(ib + (size_t)c->xch * N, c->cond, sizeof(float) * (size_t)(c->cin - c->xch) * N);
    w->scal[(size_t)b * ns] = (float)c->tau;
    if (ns > 1) w->scal[(size_t)b * ns + 1] = (float)c->t_scaled;
  }
}

/* Task: chunk `task` of SCORE_CHUNK samples on worker wi's scratch. */
static void chunk_run(void *arg, int task, int wi) {
  score_ctx *c = arg;
  score_worker *w = &c->w[wi];
  const int N = c->sm->N, b0 = task * SCORE_CHUNK;
  const size_t per = (size_t)c->cout * N, per_in = (size_t)c->cin * N;
  int nb = c->B - b0 < SCORE_CHUNK ? c->B - b0 : SCORE_CHUNK;
  fill_inputs(c, w, b0, nb);
  int rc = nn_forward(&c->sm->net, &w->ws, w->in, w->scal, nb, c->v + (size_t)b0 * per);
  if (!rc && c->cot) {
    memset(w->dx, 0, sizeof(float) * per_in * (size_t)nb);
    rc = nn_backward(&c->sm->net, &w->ws, c->cot + (size_t)b0 * per, NULL, w->dx);
    for (int b = 0; !rc && b < nb; b++)
      memcpy(c->g + (size_t)(b0 + b) * per, w->dx + (size_t)b * per_in, sizeof(float) * per);
  }
  if (rc) atomic_store(&c->rc, rc);
}

/* Splits B samples into chunks over the workers; results do not depend on the split. */
static int run_workers(score_ctx *c, const float *x, double tau, int B, float *v, const float *cot, float *g,
                       sb_error *err) {
  c->x = x, c->cot = cot, c->v = v, c->g = g, c->tau = tau, c->B = B;
  atomic_store(&c->rc, 0);
  sb_parallel_for((B + SCORE_CHUNK - 1) / SCORE_CHUNK, c->T, chunk_run, c);
  if (atomic_load(&c->rc)) return sb_fail(err, SB_EINVAL, "network evaluation failed");
  return SB_OK;
}

static int ctx_v(void *ctx, const float *x, double tau, int B, float *v, sb_error *err) {
  return run_workers(ctx, x, tau, B, v, NULL, NULL, err);
}

static int ctx_vjp(void *ctx, const float *x, double tau, int B, float *v, const float *cot, float *g,
                   sb_error *err) {
  return run_workers(ctx, x, tau, B, v, cot, g, err);
}

static void ctx_free(score_ctx *c) {
  for (int t = 0; t < SB_THREADS_MAX; t++) {
    nn_workspace_free(&c->w[t].ws);
    free(c->w[t].in);
    free(c->w[t].scal);
    free(c->w[t].dx);
  }
}

static int ctx_init(score_ctx *c, const score_model *sm, int S, int threads, sb_error *err) {
  memset(c, 0, sizeof *c);
  c->sm = sm;
  c->cin = score_in_channels(sm->kind, sm->W);
  c->cout = score_out_channels(sm->kind, sm->W);
  c->xch = c->cout;
  c->T = sb_threads(threads, (S + SCORE_CHUNK - 1) / SCORE_CHUNK);
  int chunk = S < SCORE_CHUNK ? S : SCORE_CHUNK;
  for (int t = 0; t < c->T; t++) {
    score_worker *w = &c->w[t];
    int rc = nn_workspace_init(&w->ws, &sm->net, chunk, sm->kind == SCORE_COMPOSED, err);
    if (rc) return rc;
    w->in = malloc(sizeof(float) * (size_t)chunk * c->cin * sm->N);
    w->scal = malloc(sizeof(float) * (size_t)chunk * 2);
    w->dx = malloc(sizeof(float) * (size_t)chunk * c->cin * sm->N);
    if (!w->in || !w->scal || !w->dx) return sb_fail(err, SB_ENOMEM, "out of memory for %d samples", S);
  }
  return SB_OK;
}

/* Reads a number from params (object or NULL) into *v when present. */
static int param_num(const json_t *params, const char *key, double lo, double hi, double *v, sb_error *err) {
  json_t *x = params ? json_object_get(params, key) : NULL;
  if (!x) return SB_OK;
  if (!json_is_number(x) || json_number_value(x) < lo || json_number_value(x) > hi)
    return sb_fail(err, SB_EINVAL, "params.%s must be a number in %g..%g", key, lo, hi);
  *v = json_number_value(x);
  return SB_OK;
}

static int score_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  const score_model *sm = e->impl;
  const int N = sm->N, W = sm->W, S = o->n_samples;
  diff_sampler_config cfg = sm->sampler;
  double steps = cfg.steps, corr = cfg.corrections, tau_l = cfg.tau_l, gamma = sm->gamma;
  int rc;
  if ((rc = param_num(o->params, "steps", 1, 4096, &steps, err)) ||
      (rc = param_num(o->params, "corrections", 0, 16, &corr, err)) ||
      (rc = param_num(o->params, "tau_l", 0, 10, &tau_l, err)) ||
      (rc = param_num(o->params, "gamma", 0, 1e6, &gamma, err)))
    return rc;
  cfg.steps = (int)steps;
  cfg.corrections = (int)corr;
  cfg.tau_l = tau_l;

  score_ctx c;
  const int D = score_out_channels(sm->kind, W) * N;
  float *cond = NULL, *x = NULL;
  double *gmean = NULL, *gscale = NULL;
  if ((rc = ctx_init(&c, sm, S, o->threads, err))) goto done;
  c.t_scaled = (double)p->time_index / (double)sm->sim->t_max;
  x = malloc(sizeof(float) * (size_t)S * D);
  if (!x) {
    rc = sb_fail(err, SB_ENOMEM, "out of memory for %d samples", S);
    goto done;
  }
  diff_denoiser d = {D, &c, ctx_v, ctx_vjp};
  diff_guidance g, *gp = NULL;
  if (sm->kind == SCORE_POSTERIOR) {
    cond = malloc(sizeof(float) * 2 * (size_t)W * N);
    if (!cond) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      goto done;
    }
    score_lift_observations(sm, p->op, p->y, cond);
    c.cond = cond;
  } else {
    gmean = malloc(sizeof(double) * (size_t)W * N);
    gscale = malloc(sizeof(double) * (size_t)W * N);
    if (!gmean || !gscale) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      goto done;
    }
    for (int w = 0; w < W; w++)
      for (int n = 0; n < N; n++) gmean[w * N + n] = sm->mean[n], gscale[w * N + n] = sm->std[n];
    g = (diff_guidance){p->op, W, p->y, p->noise->std, gmean, gscale, gamma};
    gp = &g;
  }
  if ((rc = diff_sample(&d, gp, &cfg, S, o->seed, 0, x, o->cancel, o->progress, o->progress_ctx, err))) goto done;
  if ((rc = est_result_alloc(r, S, N, W, o->want_window, 0, err))) goto done;
  const int last = c.xch - 1; /* x_t is the last channel */
  for (int s = 0; s < S; s++) {
    for (int n = 0; n < N; n++)
      r->samples[(size_t)s * N + n] = sm->mean[n] + sm->std[n] * x[((size_t)s * c.xch + last) * N + n];
    if (o->want_window)
      for (int w = 0; w < W; w++)
        for (int n = 0; n < N; n++)
          r->window_samples[((size_t)s * W + w) * N + n] = sm->mean[n] + sm->std[n] * x[((size_t)s * c.xch + w) * N + n];
  }
  json_object_set_new(r->diagnostics, "sampler",
                      json_pack("{s:i, s:i, s:f, s:f}", "steps", cfg.steps, "corrections", cfg.corrections, "tau_l",
                                cfg.tau_l, "gamma", gamma));
done:
  ctx_free(&c);
  free(x); free(cond); free(gmean); free(gscale);
  return rc;
}

static void score_destroy(estimator *e) {
  score_model *sm = e->impl;
  if (sm) {
    sm->sim = NULL; /* owned by the estimator */
    score_model_free(sm);
    free(sm);
  }
  e->impl = NULL;
}

static json_t *model_info(const score_model *sm) {
  json_t *info = json_object();
  if (sm->kind == SCORE_NPE)
    json_object_set_new(info, "flow", json_pack("{s:i, s:f}", "couplings", sm->couplings, "clamp", sm->clamp));
  else if (sm->kind == SCORE_NRE)
    json_object_set_new(info, "nre", json_pack("{s:i}", "candidates", sm->candidates));
  else
    json_object_set_new(info, "sampler", json_pack("{s:i, s:i, s:f, s:f}", "steps", sm->sampler.steps, "corrections",
                                                   sm->sampler.corrections, "tau_l", sm->sampler.tau_l, "gamma", sm->gamma));
  json_object_set_new(info, "n_params", json_integer((json_int_t)sm->net.n_params));
  json_object_set_new(info, "architecture",
                      json_pack("{s:s, s:i, s:i, s:i, s:i}", "type", "resnet1d", "width", sm->net.rc.width, "blocks",
                                sm->net.rc.blocks, "in_channels", sm->net.rc.cin, "out_channels", sm->net.rc.cout));
  if (sm->training) json_object_set(info, "training", sm->training);
  if (sm->train_config) json_object_set(info, "train_config", sm->train_config);
  return info;
}

int est_score_open(estimator **out, const char *path, sb_error *err) {
  *out = NULL;
  score_model *sm = calloc(1, sizeof *sm);
  estimator *e = calloc(1, sizeof *e);
  if (!sm || !e) {
    free(sm);
    free(e);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  int rc = score_model_load(sm, path, err);
  if (rc) {
    free(sm);
    free(e);
    return rc;
  }
  /* the estimator's name is the file stem */
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(e->name, sizeof e->name, "%s", base);
  char *dot = strstr(e->name, ".safetensors");
  if (dot) *dot = 0;
  snprintf(e->kind, sizeof e->kind, "%s", score_kind_name(sm->kind));
  e->sim = sm->sim;
  e->window = sm->W;
  e->has_window = sm->kind == SCORE_COMPOSED;
  e->info = model_info(sm);
  if (score_kind_has_operator(sm->kind)) {
    /* the estimator owns copies of the trained operator and noise */
    json_t *j = obs_to_json(sm->op);
    rc = obs_from_json(&e->fixed_op, j, sm->sim->channels, sm->sim->height, sm->sim->width, err);
    json_decref(j);
    e->fixed_noise = calloc(1, sizeof *e->fixed_noise);
    if (!rc && e->fixed_noise) {
      j = obs_noise_to_json(&sm->noise);
      rc = obs_noise_from_json(e->fixed_noise, j, sm->op->n_obs, err);
      json_decref(j);
    }
  }
  e->sample = score_sample;
  if (sm->kind == SCORE_NPE) {
    e->sample = npe_sample;
    e->log_prob = npe_log_prob;
    e->has_density = 1;
  }
  if (sm->kind == SCORE_NRE) e->sample = nre_sample;
  e->destroy = score_destroy;
  e->impl = sm;
  if (rc) {
    est_free(e);
    return rc;
  }
  *out = e;
  return SB_OK;
}
