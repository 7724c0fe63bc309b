/* score_net.c: the diffusion kinds' shared machinery (see score_net.h).
 * Sampling runs all S samples of a call as one batch, in chunks of
 * SCORE_CHUNK through the network on the thread pool; the weights are shared
 * read-only, every call has its own workspaces, so calls may run on several
 * threads at once. */
#include "kinds/score/score_net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kinds/score/score_batch.h"
#include "nn/nn_layers.h"
#include "nn/nn_parallel.h"
#include "util/jsonb.h"
#include "util/par.h"
#include "util/rng.h"

/* Samples go through the network in chunks of this size: every chunk is
 * computed the same way for any thread count, so the samples are
 * bit-identical whatever the number of threads. */
#define SCORE_CHUNK 32
_Static_assert(SCORE_CHUNK == SCORE_BATCH_CHUNK, "batched calls keep the chunks of a call alone");

/* One network worker's scratch: a workspace and buffers for one chunk. */
typedef struct score_worker {
  nn_workspace ws;
  float *in, *scal, *dx;
} score_worker;

typedef struct score_ctx {
  const model *sm;
  int cin, cout, xch; /* network in/out channels, channels that are x */
  const float *cond;  /* posterior: [2W][N] lifted observations */
  double t_scaled;
  int T;              /* workers */
  score_worker w[SB_THREADS_MAX];
  /* the current network call: v (and, when g is set, the input VJP g of
   * cot, which cot_fn fills after the forward pass when set) of B samples at tau */
  const float *x;
  float *v, *g, *cot;
  diff_cot_fn cot_fn;
  void *cot_ctx;
  double tau;
  int B;
  score_batch *batch; /* unguided calls in the daemon: evaluations shared with concurrent calls */
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

/* Samples [b0, b1) (at most SCORE_CHUNK) on worker wi's scratch. */
static int chunk_run(void *arg, int b0, int b1, int wi) {
  score_ctx *c = arg;
  score_worker *w = &c->w[wi];
  const int N = c->sm->N, nb = b1 - b0;
  const size_t per = (size_t)c->cout * N, per_in = (size_t)c->cin * N;
  fill_inputs(c, w, b0, nb);
  int rc = nn_forward(&c->sm->net, &w->ws, w->in, w->scal, nb, c->v + (size_t)b0 * per);
  if (!rc && c->g) {
    if (c->cot_fn) c->cot_fn(c->cot_ctx, b0, b1); /* needs this chunk's v: no second forward */
    memset(w->dx, 0, sizeof(float) * per_in * (size_t)nb);
    rc = nn_backward(&c->sm->net, &w->ws, c->cot + (size_t)b0 * per, NULL, w->dx);
    for (int b = 0; !rc && b < nb; b++)
      memcpy(c->g + (size_t)(b0 + b) * per, w->dx + (size_t)b * per_in, sizeof(float) * per);
  }
  return rc;
}

/* Splits B samples into chunks over the workers; results do not depend on the split. */
static int run_workers(score_ctx *c, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn, void *cot_ctx,
                       float *cot, float *g, sb_error *err) {
  c->x = x, c->cot = cot, c->v = v, c->g = g, c->tau = tau, c->B = B, c->cot_fn = cot_fn, c->cot_ctx = cot_ctx;
  return sb_parallel_ranges(B, SCORE_CHUNK, c->T, NULL, chunk_run, c, "network evaluation", err);
}

/* Row b's network input and scalars (score_batch's fill). */
static void batch_fill(void *owner, int b, float *in, float *scal) {
  const score_ctx *c = owner;
  const int N = c->sm->N, ns = nn_n_scalars(&c->sm->net);
  memcpy(in, c->x + (size_t)b * c->xch * N, sizeof(float) * (size_t)c->xch * N);
  if (c->cond) memcpy(in + (size_t)c->xch * N, c->cond, sizeof(float) * (size_t)(c->cin - c->xch) * N);
  if (ns > 0) scal[0] = (float)c->tau;
  if (ns > 1) scal[1] = (float)c->t_scaled;
}

static int ctx_v(void *ctx, const float *x, double tau, int B, float *v, sb_error *err) {
  score_ctx *c = ctx;
  if (c->batch) {
    c->x = x, c->tau = tau;
    score_batch_req r = {.owner = c, .fill = batch_fill, .rows = B, .out = v};
    return score_batch_run(c->batch, &r, err);
  }
  return run_workers(ctx, x, tau, B, v, NULL, NULL, NULL, NULL, err);
}

static int ctx_vjp(void *ctx, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn, void *cot_ctx,
                   float *cot, float *g, sb_error *err) {
  return run_workers(ctx, x, tau, B, v, cot_fn, cot_ctx, cot, g, err);
}

static void ctx_free(score_ctx *c) {
  for (int t = 0; t < SB_THREADS_MAX; t++) {
    nn_workspace_free(&c->w[t].ws);
    free(c->w[t].in);
    free(c->w[t].scal);
    free(c->w[t].dx);
  }
}

static int ctx_init(score_ctx *c, const model *sm, int S, int threads, int vjp, sb_error *err) {
  memset(c, 0, sizeof *c);
  c->sm = sm;
  c->cin = sm->kind->in_channels(sm->W);
  c->cout = sm->kind->out_channels(sm->W);
  c->xch = c->cout;
  c->T = sb_threads(threads, (S + SCORE_CHUNK - 1) / SCORE_CHUNK);
  int chunk = S < SCORE_CHUNK ? S : SCORE_CHUNK;
  for (int t = 0; t < c->T; t++) {
    score_worker *w = &c->w[t];
    int rc = nn_workspace_init(&w->ws, &sm->net, chunk, vjp, err);
    if (rc) return rc;
    w->in = malloc(sizeof(float) * (size_t)chunk * c->cin * sm->N);
    w->scal = malloc(sizeof(float) * (size_t)chunk * 2);
    w->dx = malloc(sizeof(float) * (size_t)chunk * c->cin * sm->N);
    if (!w->in || !w->scal || !w->dx) return sb_fail(err, SB_ENOMEM, "out of memory for %d samples", S);
  }
  return SB_OK;
}

// ----------------------------------------------------------------------------
// sampler settings: the file's sbida.sampler, the config's "sampler", request params

const params_spec score_net_params[] = {
    {"sampler", PARAM_STR, 0, 0, 0},
    {"steps", PARAM_NUM, 1, 4096, 0},
    {"corrections", PARAM_NUM, 0, 16, 0},
    {"tau_l", PARAM_NUM, 0, 10, 0},
    {"schedule", PARAM_STR, 0, 0, 0},
    {"rho", PARAM_NUM, 0, 100, 1},
    {"sigma_max", PARAM_NUM, 0, 1e4, 0},
    {"gamma", PARAM_NUM, 0, 1e6, 0},
    {"guidance", PARAM_STR, 0, 0, 0},
    {"guidance_iters", PARAM_NUM, 1, 64, 0},
    {"gamma_floor", PARAM_INT, 0, 1, 0},
    {"background_jitter", PARAM_NUM, 0, 100, 0},
    {"background_inflation", PARAM_NUM, 0.1, 10, 0},
    {"background_gamma", PARAM_NUM, 0, 1e6, 1},
    {"dynamics_q", PARAM_NUM, 0, 1e6, 0},
    {"dynamics_gamma", PARAM_NUM, 0, 1e6, 1},
    {"dynamics_retries", PARAM_INT, 0, SCORE_NET_DYN_MAX_RETRIES, 0},
    {"warm_start", PARAM_NUM, 0, 1, 1},
    {NULL, 0, 0, 0, 0},
};

int score_net_settings_new(void **settings, sb_error *err) {
  score_settings *s = calloc(1, sizeof *s);
  *settings = s;
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory for the sampler settings");
  diff_sampler_defaults(&s->sampler);
  s->gamma = 1e-2;
  return SB_OK;
}

void score_net_settings_free(void *settings) { free(settings); }

/* The names in a params-checked object: an unknown sampler or schedule -> SB_EINVAL naming the valid ones. */
static int check_names(const json_t *o, const char *what, sb_error *err) {
  const char *name = params_str(o, "sampler", NULL);
  if (name && diff_method_parse(name) < 0)
    return sb_fail(err, SB_EINVAL, "%ssampler must be one of " DIFF_METHOD_NAMES " (got '%s')", what, name);
  name = params_str(o, "schedule", NULL);
  if (name && diff_schedule_parse(name) < 0)
    return sb_fail(err, SB_EINVAL, "%sschedule must be one of " DIFF_SCHEDULE_NAMES " (got '%s')", what, name);
  name = params_str(o, "guidance", NULL);
  if (name && diff_guidance_parse(name) < 0)
    return sb_fail(err, SB_EINVAL, "%sguidance must be one of " DIFF_GUIDANCE_NAMES " (got '%s')", what, name);
  return SB_OK;
}

int score_net_check_options(const estimator *e, const est_options *o, sb_error *err) {
  int rc = check_names(o->params, "params.", err);
  if (rc) return sb_wrap(err, "%s", e->name);
  const model *m = e->impl;
  diff_sampler_config cfg;
  double gamma;
  score_net_settings(m, o->params, &cfg, &gamma); /* the file's sampler and guidance, or the request's */
  /* the warm start: from a background (guided kinds), with pc */
  if (params_num(o->params, "warm_start", 1.0) < 1) {
    if (!e->accepts_background)
      return sb_fail(err, SB_EINVAL, "%s: params.warm_start starts from a background, which %s (%s) cannot use",
                     e->name, e->name, e->kind);
    if (cfg.method != DIFF_PC)
      return sb_fail(err, SB_EINVAL, "%s: params.warm_start works with sampler pc only, not %s", e->name,
                     diff_method_name(cfg.method));
  }
  /* the dynamics term: guided kinds (those that take a background) on a
   * system with an adjoint; refused before the job runs */
  if (params_num(o->params, "dynamics_q", 0.0) > 0) {
    if (!e->accepts_background)
      return sb_fail(err, SB_EINVAL, "%s: params.dynamics_q needs a guided model (composed-score or local-score), "
                     "not %s", e->name, e->kind);
    if (!m->sim->step_vjp)
      return sb_fail(err, SB_EINVAL, "%s: params.dynamics_q needs the simulator's adjoint, which %s does not have "
                     "(the systems with one: lorenz96)", e->name, m->sim->preset);
    if (cfg.guidance == DIFF_GUIDE_MMPS)
      return sb_fail(err, SB_EINVAL, "%s: params.dynamics_q works with guidance sda or free, not %s", e->name,
                     diff_guidance_name(cfg.guidance));
  }
  return SB_OK;
}

/* Settings from a checked object (names checked too) over the current ones;
 * naming another sampler than the current one starts from that sampler's
 * defaults (diff_method_defaults: steps and grid). */
static void read_settings(const json_t *o, diff_sampler_config *cfg, double *gamma) {
  const char *name = params_str(o, "sampler", NULL);
  int method = name ? diff_method_parse(name) : cfg->method;
  if (method >= 0 && method != cfg->method) diff_method_defaults(cfg, method);
  name = params_str(o, "schedule", NULL);
  if (name && diff_schedule_parse(name) >= 0) cfg->schedule = diff_schedule_parse(name);
  cfg->steps = (int)params_num(o, "steps", cfg->steps);
  cfg->corrections = (int)params_num(o, "corrections", cfg->corrections);
  cfg->tau_l = params_num(o, "tau_l", cfg->tau_l);
  cfg->rho = params_num(o, "rho", cfg->rho);
  cfg->sigma_max = params_num(o, "sigma_max", cfg->sigma_max);
  *gamma = params_num(o, "gamma", *gamma);
  name = params_str(o, "guidance", NULL);
  if (name && diff_guidance_parse(name) >= 0) cfg->guidance = diff_guidance_parse(name);
  cfg->guidance_iters = (int)params_num(o, "guidance_iters", cfg->guidance_iters);
  cfg->gamma_floor = (int)params_num(o, "gamma_floor", cfg->gamma_floor);
}

void score_net_settings(const model *m, const json_t *params, diff_sampler_config *cfg, double *gamma) {
  const score_settings *s = score_settings_of(m);
  *cfg = s->sampler;
  *gamma = s->gamma;
  read_settings(params, cfg, gamma);
}

int score_net_from_config(model *m, const json_t *section, const json_t *arch, sb_error *err) {
  (void)arch;
  int rc = check_names(section, "sampler.", err); /* the rest is checked against score_net_params */
  if (rc) return rc;
  score_settings *s = score_settings_of(m);
  read_settings(section, &s->sampler, &s->gamma);
  return SB_OK;
}

/* The settings as files and diagnostics show them: pc's as before the other
 * samplers existed (steps, corrections, tau_l, gamma), the others' with
 * their name and grid (schedule, rho, sigma_max) instead of the
 * corrector's; in a file (file = 1) the corrector's settings are kept too,
 * for a later switch back to pc. */
static json_t *settings_json(const diff_sampler_config *c, double gamma, int file) {
  int bad = 0;
  json_t *j;
  if (c->method == DIFF_PC) {
    j = json_pack("{s:i, s:i, s:f, s:f}", "steps", c->steps, "corrections", c->corrections, "tau_l", c->tau_l,
                  "gamma", gamma);
  } else {
    j = json_pack("{s:s, s:i, s:s, s:f}", "sampler", diff_method_name(c->method), "steps", c->steps, "schedule",
                  diff_schedule_name(c->schedule), "gamma", gamma);
    if (c->schedule == DIFF_SCHED_EDM) jb_set_real(j, "rho", c->rho, &bad);
    jb_set_real(j, "sigma_max", c->sigma_max, &bad);
    if (file) {
      jb_set(j, "corrections", json_integer(c->corrections), &bad);
      jb_set_real(j, "tau_l", c->tau_l, &bad);
    }
  }
  if (c->guidance != DIFF_GUIDE_SDA) { /* SDA's, the default, as before this setting existed */
    jb_set(j, "guidance", json_string(diff_guidance_name(c->guidance)), &bad);
    jb_set(j, "guidance_iters", json_integer(c->guidance_iters), &bad);
  }
  if (c->gamma_floor) jb_set(j, "gamma_floor", json_integer(c->gamma_floor), &bad); /* 0, the default, as before it existed */
  return jb_done(j, bad);
}

json_t *score_net_meta_to_json(const model *m) {
  const score_settings *s = score_settings_of(m);
  return settings_json(&s->sampler, s->gamma, 1);
}

int score_net_meta_from_json(model *m, const json_t *section, sb_error *err) {
  /* optional; every field present must be a number in the range a request
   * may ask for (score_net_params): "x" or 9999999999 steps would load and
   * then fail every job. Older files carry integers where numbers are
   * expected, which params_check accepts. */
  if (section && !json_is_object(section)) return sb_fail(err, SB_EFORMAT, "model metadata sbida.sampler must be an object");
  if (!section) return SB_OK;
  static const params_spec meta_spec[] = {
      {"sampler", PARAM_STR, 0, 0, 0},     {"schedule", PARAM_STR, 0, 0, 0},  {"steps", PARAM_INT, 1, 4096, 0},
      {"corrections", PARAM_INT, 0, 16, 0}, {"tau_l", PARAM_NUM, 0, 10, 0},  {"rho", PARAM_NUM, 0, 100, 1},
      {"sigma_max", PARAM_NUM, 0, 1e4, 0},  {"gamma", PARAM_NUM, 0, 1e6, 0}, {"guidance", PARAM_STR, 0, 0, 0},
      {"guidance_iters", PARAM_INT, 1, 64, 0}, {"gamma_floor", PARAM_INT, 0, 1, 0}, {NULL, 0, 0, 0, 0}};
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)section, key, v) {
    const params_spec *p = params_find(meta_spec, key);
    if (!p) continue; /* fields of other versions are ignored, as before */
    json_t *one = json_pack("{s:O}", key, v);
    sb_error e2 = {0};
    int rc = params_check(one, meta_spec, "model metadata sbida.sampler.", &e2);
    json_decref(one);
    if (rc) return sb_fail(err, SB_EFORMAT, "%s", e2.msg);
  }
  score_settings *s = score_settings_of(m);
  /* the sampler first: its defaults, then the fields given */
  if ((v = json_object_get(section, "sampler"))) {
    int method = diff_method_parse(json_string_value(v));
    if (method < 0)
      return sb_fail(err, SB_EFORMAT, "model metadata sbida.sampler.sampler must be one of " DIFF_METHOD_NAMES);
    diff_method_defaults(&s->sampler, method);
  }
  if ((v = json_object_get(section, "schedule"))) {
    int sched = diff_schedule_parse(json_string_value(v));
    if (sched < 0)
      return sb_fail(err, SB_EFORMAT, "model metadata sbida.sampler.schedule must be one of " DIFF_SCHEDULE_NAMES);
    s->sampler.schedule = sched;
  }
  if ((v = json_object_get(section, "steps"))) s->sampler.steps = (int)json_integer_value(v);
  if ((v = json_object_get(section, "corrections"))) s->sampler.corrections = (int)json_integer_value(v);
  if ((v = json_object_get(section, "tau_l"))) s->sampler.tau_l = json_number_value(v);
  if ((v = json_object_get(section, "rho"))) s->sampler.rho = json_number_value(v);
  if ((v = json_object_get(section, "sigma_max"))) s->sampler.sigma_max = json_number_value(v);
  if ((v = json_object_get(section, "gamma"))) s->gamma = json_number_value(v);
  if ((v = json_object_get(section, "guidance"))) {
    int guide = diff_guidance_parse(json_string_value(v));
    if (guide < 0)
      return sb_fail(err, SB_EFORMAT, "model metadata sbida.sampler.guidance must be one of " DIFF_GUIDANCE_NAMES);
    s->sampler.guidance = guide;
  }
  if ((v = json_object_get(section, "guidance_iters"))) s->sampler.guidance_iters = (int)json_integer_value(v);
  if ((v = json_object_get(section, "gamma_floor"))) s->sampler.gamma_floor = (int)json_integer_value(v);
  return SB_OK;
}

// ----------------------------------------------------------------------------
// background (cycling)

int score_net_background(const est_problem *p, const json_t *params, diff_background *out, double **buf,
                         sb_error *err) {
  memset(out, 0, sizeof *out);
  *buf = NULL;
  const est_background *b = p->background;
  if (!b) return SB_OK;
  const int N = p->sim->dim, S = b->members ? b->n_members : 0;
  const double infl = params_num(params, "background_inflation", 1.0);
  const double jitter = params_num(params, "background_jitter", SCORE_NET_BG_JITTER);
  double *m = malloc(sizeof(double) * (size_t)N * (2 + (size_t)S));
  if (!m) return sb_fail(err, SB_ENOMEM, "out of memory for a background of %d members of %d values", S, N);
  double *mean = m, *diag = m + N, *anom = m + 2 * (size_t)N;
  if (!b->members) {
    for (int i = 0; i < N; i++) mean[i] = b->mean[i], diag[i] = infl * infl * b->std[i] * b->std[i];
  } else {
    for (int i = 0; i < N; i++) mean[i] = 0.0;
    for (int j = 0; j < S; j++)
      for (int i = 0; i < N; i++) mean[i] += b->members[(size_t)j * N + i] / S;
    const double f = infl / sqrt((double)(S - 1));
    double var = 0.0;
    for (int j = 0; j < S; j++)
      for (int i = 0; i < N; i++) {
        double a = f * (b->members[(size_t)j * N + i] - mean[i]);
        anom[(size_t)j * N + i] = a;
        var += a * a;
      }
    double delta = jitter * var / N;
    if (!(delta > 1e-12)) delta = 1e-12;
    for (int i = 0; i < N; i++) diag[i] = delta;
  }
  *out = (diff_background){N, S, mean, S ? anom : NULL, diag, params_num(params, "background_gamma", 0.0)};
  *buf = m;
  return SB_OK;
}

void score_net_gamma_used(json_t *sampler, const diff_guidance *g, const diff_sampler_config *cfg, double gamma) {
  const double floor = diff_gamma_floor(g, cfg);
  if (sampler && floor > gamma) json_object_set_new(sampler, "gamma_used", json_real(floor));
}

void score_net_background_gamma(diff_background *out, double gamma) {
  if (out->dim && !(out->gamma > 0)) out->gamma = gamma > SCORE_NET_BG_GAMMA_MIN ? gamma : SCORE_NET_BG_GAMMA_MIN;
}

int score_net_dynamics(const est_problem *p, const json_t *params, double gamma, diff_dynamics *out) {
  memset(out, 0, sizeof *out);
  const double q = params_num(params, "dynamics_q", 0.0);
  if (!(q > 0)) return 0;
  const double gd = params_num(params, "dynamics_gamma", gamma > SCORE_NET_BG_GAMMA_MIN ? gamma : SCORE_NET_BG_GAMMA_MIN);
  *out = (diff_dynamics){p->sim, q, gd};
  return 1;
}

int score_net_residual_diag(json_t *diagnostics, const sim *s, const double *window, int S, int W, sb_error *err) {
  if (!s->step_vjp || W < 2 || !window) return SB_OK;
  diff_dynamics d = {s, 1.0, 0.0};
  double *scr = malloc(sizeof(double) * diff_dyn_scratch(&d, W)), sum = 0.0;
  if (!scr) return sb_fail(err, SB_ENOMEM, "out of memory for the dynamical residual");
  for (int b = 0; b < S; b++) sum += diff_dyn_residual2(s, W, window + (size_t)b * W * s->dim, scr);
  free(scr);
  if (json_object_set_new(diagnostics, "dynamics_residual", json_real(sqrt(sum / ((double)S * (W - 1) * s->dim)))))
    return sb_fail(err, SB_ENOMEM, "out of memory for the diagnostics");
  return SB_OK;
}

int score_net_warm_start(const est_problem *p, const est_options *o, int W, int block, const double *gmean,
                         const double *gscale, float *x, diff_sampler_config *cfg, int *on, sb_error *err) {
  *on = 0;
  const double start = params_num(o->params, "warm_start", 1.0);
  const est_background *b = p->background;
  if (!(start < 1) || !b) return SB_OK;
  const int N = p->sim->dim, S = o->n_samples, Sb = b->members ? b->n_members : 0;
  double *buf = malloc(sizeof(double) * (size_t)S * N);
  if (!buf) return sb_fail(err, SB_ENOMEM, "out of memory for the warm start of %d samples", S);
  for (int s = 0; s < S; s++) {
    double *xs = buf + (size_t)s * N;
    if (Sb > 0) {
      memcpy(xs, b->members + (size_t)(s % Sb) * N, sizeof(double) * N);
    } else {
      rng r;
      rng_init(&r, o->seed, SCORE_NET_WARM_STREAM + (uint64_t)s);
      for (int n = 0; n < N; n++) xs[n] = b->mean[n] + b->std[n] * rng_normal(&r);
    }
  }
  int rc = SB_OK;
  for (int w = 0; w < W && !rc; w++) {
    if (w > block) rc = p->sim->advance(p->sim, buf, (size_t)S, 1, err);
    for (int s = 0; s < S && !rc; s++)
      for (int n = 0; n < N; n++) {
        const size_t i = (size_t)w * N + n;
        x[(size_t)s * W * N + i] = w < block ? 0.0f : (float)((buf[(size_t)s * N + n] - gmean[i]) / gscale[i]);
      }
  }
  free(buf);
  if (rc) return sb_wrap(err, "warm start: forecasting the background");
  cfg->start = start;
  *on = 1;
  return SB_OK;
}

json_t *score_net_dynamics_json(const diff_dynamics *d, json_t *retries) {
  json_t *j = json_pack("{s:f, s:f}", "q", d->q, "gamma", d->gamma);
  if (j && retries) json_object_set_new(j, "retries", retries);
  else json_decref(retries);
  return j;
}

/* progress of a sampling that may run more than once: never backwards */
typedef struct retry_progress {
  void (*fn)(void *ctx, double frac);
  void *ctx;
  double last;
} retry_progress;

static void retry_progress_fn(void *ctx, double frac) {
  retry_progress *rp = ctx;
  if (frac <= rp->last) return;
  rp->last = frac;
  rp->fn(rp->ctx, frac);
}

int score_net_diff_sample(const diff_denoiser *d, const diff_guidance *g, diff_dynamics *dyn,
                          const diff_sampler_config *cfg, const est_options *o, float *x, json_t **retries,
                          sb_error *err) {
  *retries = NULL;
  const int S = o->n_samples;
  const int max_tries = dyn && g && g->dyn == dyn
                            ? 1 + (int)params_num(o->params, "dynamics_retries", SCORE_NET_DYN_RETRIES)
                            : 1;
  const size_t n = (size_t)S * d->dim;
  float *x0 = NULL; /* a warm start's initial state, which the sampler overwrites */
  if (max_tries > 1 && cfg->start < 1 && !(x0 = malloc(sizeof(float) * n)))
    return sb_fail(err, SB_ENOMEM, "out of memory for %d samples", S);
  if (x0) memcpy(x0, x, sizeof(float) * n);
  retry_progress rp = {o->progress, o->progress_ctx, -1.0};
  int rc = SB_OK;
  for (int t = 0; t < max_tries; t++) {
    if (t) { /* the previous try diverged: record it and widen the dynamics term's Tweedie part */
      if (!*retries && !(*retries = json_array())) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        break;
      }
      if (json_array_append_new(*retries, json_pack("{s:f, s:s}", "gamma", dyn->gamma, "error", err ? err->msg : ""))) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        break;
      }
      dyn->gamma *= SCORE_NET_DYN_RETRY_FACTOR;
      if (x0) memcpy(x, x0, sizeof(float) * n);
    }
    rc = diff_sample(d, g, cfg, S, o->seed, 0, x, o->cancel, o->progress ? retry_progress_fn : NULL, &rp, err);
    if (rc != SB_ENUMERIC) break;
  }
  if (rc == SB_ENUMERIC && max_tries > 1)
    sb_wrap(err, "after %d tries with dynamics_gamma up to %g (params dynamics_retries)", max_tries, dyn->gamma);
  free(x0);
  if (rc) {
    json_decref(*retries);
    *retries = NULL;
  }
  return rc;
}

json_t *score_net_background_json(const diff_background *b, const json_t *params) {
  if (!b->dim) return NULL;
  json_t *j = json_pack("{s:i, s:f, s:f}", "members", b->n_members, "inflation",
                        params_num(params, "background_inflation", 1.0), "jitter",
                        b->n_members ? params_num(params, "background_jitter", SCORE_NET_BG_JITTER) : 0.0);
  if (j && b->gamma > 0) json_object_set_new(j, "gamma", json_real(b->gamma));
  return j;
}

// ----------------------------------------------------------------------------
// sampling

int score_net_sample(const model *sm, const est_problem *p, const est_options *o, const float *cond, int guided,
                    est_result *r, sb_error *err) {
  const int N = sm->N, W = sm->W, S = o->n_samples;
  /* a guided request of We < W rows: its rows are the last We of the model's
   * window, the first W - We states unobserved (a stationary system only:
   * composed_score.c's serve_ranges) */
  const int We = p->window, lead = W - p->window;
  if (lead < 0 || (lead > 0 && !guided))
    return sb_fail(err, SB_EINVAL, "a window of %d observation rows for a model of window %d", We, W);
  diff_sampler_config cfg;
  double gamma;
  int rc;
  score_net_settings(sm, o->params, &cfg, &gamma); /* checked by est_sample against score_net_params */

  score_ctx c;
  const int D = sm->kind->out_channels(W) * N;
  float *x = NULL;
  double *gmean = NULL, *gscale = NULL, *bbuf = NULL, *ypad = NULL;
  diff_background bg = {0};
  diff_dynamics dyn;
  int dyn_on = 0;
  json_t *retries = NULL; /* the dynamics term's retries (score_net_diff_sample) */
  if ((rc = ctx_init(&c, sm, S, o->threads, guided, err))) goto done;
  c.t_scaled = (double)p->time_index / (double)sm->sim->t_max;
  c.cond = cond;
  x = malloc(sizeof(float) * (size_t)S * D);
  if (!x) {
    rc = sb_fail(err, SB_ENOMEM, "out of memory for %d samples", S);
    goto done;
  }
  diff_denoiser d = {D, &c, ctx_v, ctx_vjp};
  diff_guidance g, *gp = NULL;
  if (guided) {
    gmean = malloc(sizeof(double) * (size_t)W * N);
    gscale = malloc(sizeof(double) * (size_t)W * N);
    if (!gmean || !gscale) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      goto done;
    }
    for (int w = 0; w < W; w++)
      for (int n = 0; n < N; n++) gmean[w * N + n] = sm->mean[n], gscale[w * N + n] = sm->std[n];
    if ((rc = score_net_background(p, o->params, &bg, &bbuf, err))) goto done;
    score_net_background_gamma(&bg, gamma);
    const double *y = p->y;
    if (lead > 0) {
      const size_t no = (size_t)p->op->n_obs;
      if (!(ypad = malloc(sizeof(double) * (size_t)W * no))) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto done;
      }
      for (size_t i = 0; i < (size_t)lead * no; i++) ypad[i] = NAN;
      memcpy(ypad + (size_t)lead * no, p->y, sizeof(double) * (size_t)We * no);
      y = ypad;
    }
    dyn_on = score_net_dynamics(p, o->params, gamma, &dyn);
    g = (diff_guidance){p->op, W, y, p->noise->std, gmean, gscale, gamma, bg.dim ? &bg : NULL, lead, 0,
                        dyn_on ? &dyn : NULL, 0};
    gp = &g;
  }
  int warm = 0;
  if (guided && c.xch == W && (rc = score_net_warm_start(p, o, W, lead, gmean, gscale, x, &cfg, &warm, err)))
    goto done;
  if (!guided) c.batch = score_batch_join(&sm->net); /* NULL unless the daemon batches */
  rc = score_net_diff_sample(&d, gp, dyn_on ? &dyn : NULL, &cfg, o, x, &retries, err);
  score_batch_leave(c.batch);
  if (rc) goto done;
  if ((rc = est_result_alloc(r, S, N, We, o->want_window, 0, err))) goto done;
  const int last = c.xch - 1; /* x_t is the last channel */
  for (int s = 0; s < S; s++) {
    for (int n = 0; n < N; n++)
      r->samples[(size_t)s * N + n] = sm->mean[n] + sm->std[n] * x[((size_t)s * c.xch + last) * N + n];
    if (o->want_window) /* the request's We states: the window's last */
      for (int w = 0; w < We; w++)
        for (int n = 0; n < N; n++)
          r->window_samples[((size_t)s * We + w) * N + n] =
              sm->mean[n] + sm->std[n] * x[((size_t)s * c.xch + lead + w) * N + n];
  }
  if (c.xch == W && p->sim->step_vjp && W > 1) { /* the whole window is sampled: its dynamical residual */
    double *win = malloc(sizeof(double) * (size_t)S * W * N);
    if (!win) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      goto done;
    }
    for (size_t i = 0; i < (size_t)S * W * N; i++) win[i] = sm->mean[i % N] + sm->std[i % N] * x[i];
    rc = score_net_residual_diag(r->diagnostics, p->sim, win, S, W, err);
    free(win);
    if (rc) goto done;
  }
  int bad = 0;
  json_t *sj = settings_json(&cfg, gamma, 0);
  if (warm) jb_set_real(sj, "warm_start", cfg.start, &bad);
  score_net_gamma_used(sj, gp, &cfg, gamma);
  jb_set(r->diagnostics, "sampler", sj, &bad);
  if (bg.dim) jb_set(r->diagnostics, "background", score_net_background_json(&bg, o->params), &bad);
  if (dyn_on) jb_set(r->diagnostics, "dynamics", score_net_dynamics_json(&dyn, retries), &bad);
  retries = NULL;
  if (lead > 0)
    jb_set(r->diagnostics, "model_window",
           json_pack("{s:i, s:i}", "states", W, "unobserved_before_the_rows", lead), &bad);
  if (bad) rc = sb_fail(err, SB_ENOMEM, "out of memory for the diagnostics");
done:
  json_decref(retries);
  ctx_free(&c);
  free(x); free(gmean); free(gscale); free(bbuf); free(ypad);
  return rc;
}

/* The estimator: a network with input channels beyond its x channels is
 * conditioned on the lifted observations (posterior-score); one without is
 * a prior guided by the request's operator and noise (composed-score). */
int score_net_estimator_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  const model *m = e->impl;
  if (m->kind->in_channels(m->W) == m->kind->out_channels(m->W)) return score_net_sample(m, p, o, NULL, 1, r, err);
  float *cond = malloc(sizeof(float) * 2 * (size_t)m->W * m->N);
  if (!cond) return sb_fail(err, SB_ENOMEM, "out of memory");
  int rc = model_lift_observations(m, p->op, p->y, cond, err);
  if (!rc) rc = score_net_sample(m, p, o, cond, 0, r, err);
  free(cond);
  return rc;
}

// ----------------------------------------------------------------------------
// training: v-prediction MSE on noised windows (x channels) and, when the
// network has more input channels, the lifted observations of the window

typedef struct dn_train {
  model *m;
  kind_train_setup s;
  int cin, xch, ns, T;
  int lo, nb;                         /* this process's part of the batch (kind_train_setup) */
  nn_workspace ws;                    /* validation (forward only) */
  nn_workspace tws[SB_THREADS_MAX];   /* one training workspace per thread */
  kind_batch b[2];                    /* 0: training batch, 1: validation set */
  float *out;                         /* validation outputs */
  double *xs, *y;                     /* observation scratch */
  float *lift;
} dn_train;

void score_net_train_free(void *state) {
  dn_train *t = state;
  if (!t) return;
  nn_workspace_free(&t->ws);
  for (int i = 0; i < SB_THREADS_MAX; i++) nn_workspace_free(&t->tws[i]);
  kind_batch_free(&t->b[0]);
  kind_batch_free(&t->b[1]);
  free(t->out);
  free(t->xs); free(t->y); free(t->lift);
  free(t);
}

int score_net_train_init(void **state, model *m, const kind_train_setup *s, sb_error *err) {
  dn_train *t = calloc(1, sizeof *t);
  if (!t) return sb_fail(err, SB_ENOMEM, "out of memory");
  *state = t;
  const int N = m->N, W = m->W, B = s->batch, V = s->val_windows;
  t->m = m, t->s = *s, t->T = s->threads;
  t->cin = m->kind->in_channels(W);
  t->xch = m->kind->out_channels(W);
  t->ns = m->kind->n_scalars(m->time_varying);
  t->nb = kind_train_part(s, B, &t->lo);
  int rc = nn_workspace_init(&t->ws, &m->net, B, 0, err);
  for (int i = 0; !rc && i < t->T; i++)
    rc = nn_workspace_init(&t->tws[i], &m->net, (t->nb + t->T - 1) / t->T, 1, err);
  if (!rc) rc = kind_batch_alloc(&t->b[0], B, (size_t)t->cin * N, (size_t)t->ns, (size_t)t->xch * N, err);
  if (!rc) rc = kind_batch_alloc(&t->b[1], V, (size_t)t->cin * N, (size_t)t->ns, (size_t)t->xch * N, err);
  if (rc) return rc;
  t->out = malloc(sizeof(float) * (size_t)B * t->xch * N);
  t->xs = malloc(sizeof(double) * (size_t)N);
  t->y = malloc(sizeof(double) * (size_t)W * (m->op ? m->op->n_obs : 1));
  t->lift = malloc(sizeof(float) * 2 * (size_t)W * N);
  if (!t->out || !t->xs || !t->y || !t->lift)
    return sb_fail(err, SB_ENOMEM, "out of memory for a batch of %d windows", B);
  return SB_OK;
}

int score_net_make_batch(void *state, rng *r, const float *win, const long *tix, int B, int val, sb_error *err) {
  dn_train *t = state;
  const model *m = t->m;
  const int N = m->N, W = m->W;
  float *in = t->b[val].in, *scal = t->b[val].scal, *target = t->b[val].target;
  for (int b = 0; b < B; b++) {
    const float *wb = win + (size_t)b * W * N;
    float *ib = in + (size_t)b * t->cin * N, *tb = target + (size_t)b * t->xch * N;
    double tau = rng_uniform(r);
    /* the focus draw happens only when asked for, so that runs without it keep their random stream */
    if (!val && t->s.tau_focus > 0 && rng_uniform(r) < t->s.tau_focus) tau *= t->s.tau_focus_max;
    double mu = diff_mu(tau), sg = diff_sigma(tau);
    int first = W - t->xch; /* the x channels are the window's last xch states */
    for (int c = 0; c < t->xch; c++)
      for (int n = 0; n < N; n++) {
        double z = (wb[(size_t)(first + c) * N + n] - m->mean[n]) / m->std[n];
        double e = rng_normal(r);
        ib[(size_t)c * N + n] = (float)(mu * z + sg * e);
        tb[(size_t)c * N + n] = (float)(mu * e - sg * z);
      }
    if (t->cin > t->xch) {
      int rc = model_observe_window(m, r, t->s.missing_time, t->s.missing_entry, wb, t->xs, t->y, t->lift, err);
      if (rc) return rc;
      memcpy(ib + (size_t)t->xch * N, t->lift, sizeof(float) * 2 * (size_t)W * N);
    }
    scal[(size_t)b * t->ns] = (float)tau;
    if (t->ns > 1) scal[(size_t)b * t->ns + 1] = (float)((double)tix[b] / m->sim->t_max);
  }
  return SB_OK;
}

/* MSE against the v targets for samples [b0, b0+B) of this process's part
 * of the batch (nn_loss_fn; n_total is the part's size, the mean is over the
 * whole batch). */
static double slice_loss(void *ctx, int b0, int B, int n_total, const float *out, float *dout) {
  dn_train *t = ctx;
  (void)n_total;
  size_t per = (size_t)t->xch * t->m->N, n = (size_t)B * per;
  double scale = (double)B / t->s.batch; /* slice mean -> share of the batch mean */
  double l = nn_mse_loss(dout, out, t->b[0].target + (size_t)(t->lo + b0) * per, n, (float)scale);
  return l * scale;
}

int score_net_grad(void *state, double *loss, sb_error *err) {
  dn_train *t = state;
  const int N = t->m->N;
  return nn_grad_mt(&t->m->net, t->tws, t->T, t->b[0].in + (size_t)t->lo * t->cin * N,
                    t->b[0].scal + (size_t)t->lo * t->ns, t->nb, slice_loss, t, NULL, loss, err);
}

double score_net_val_loss(void *state) {
  dn_train *t = state;
  nn_model ema = t->m->net;
  if (t->m->net.ema) ema.params = t->m->net.ema;
  const int N = t->m->N, V = t->s.val_windows;
  double acc = 0;
  for (int done = 0; done < V;) {
    int B = V - done < t->s.batch ? V - done : t->s.batch;
    const kind_batch *v = &t->b[1];
    if (nn_forward(&ema, &t->ws, v->in + (size_t)done * t->cin * N, v->scal + (size_t)done * t->ns, B, t->out))
      return NAN;
    acc += nn_mse_loss(NULL, t->out, v->target + (size_t)done * t->xch * N, (size_t)B * t->xch * N, 1.0f) * B;
    done += B;
  }
  return acc / V;
}
