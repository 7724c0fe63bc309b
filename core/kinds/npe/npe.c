/* npe.c: the npe kind, a conditional normalizing flow q(x_t | y-window, t):
 * `couplings` affine couplings whose conditioner is ONE shared network told
 * the coupling index (flow.h), for the one operator and noise it was
 * trained with. Sampling and density: chunks of NPE_CHUNK samples on the
 * thread pool, each worker with its own flow buffer; the weights are shared
 * read-only. Training: mean -log q(x_t | y) / N. */
#include "kinds/npe/npe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kinds/npe/flow.h"
#include "model/kind.h"
#include "util/jsonb.h"
#include "util/par.h"
#include "util/rng.h"

#define NPE_CHUNK 32

typedef struct npe_worker {
  flow_buf fb;
  float *u, *ts;
} npe_worker;

typedef struct npe_call {
  const model *sm;
  const float *cond;  /* [2W][N] lifted observations */
  float tsc;
  int inverse;        /* 1: sample from u; 0: density of given states */
  uint64_t seed;
  int n;              /* samples or states */
  float *x;           /* [n][N] standardized: output (sample) or input (density) */
  double *logq;       /* [n] standardized units */
  const sb_cancel *cancel;
  npe_worker w[SB_THREADS_MAX];
} npe_call;

/* Samples (or states) [b0, b1) on worker wi's flow buffer. */
static int npe_chunk(void *arg, int b0, int b1, int wi) {
  npe_call *c = arg;
  npe_worker *w = &c->w[wi];
  const int N = c->sm->N, nb = b1 - b0;
  float *x = c->x + (size_t)b0 * N;
  if (!c->inverse) return flow_forward(c->sm, &w->fb, x, c->cond, 0, w->ts, nb, c->logq + b0);
  for (int b = 0; b < nb; b++) {
    rng r;
    rng_init(&r, c->seed, (uint64_t)(b0 + b));
    rng_fill_normal_f(&r, w->u + (size_t)b * N, (size_t)N);
  }
  return flow_inverse(c->sm, &w->fb, w->u, c->cond, 0, w->ts, nb, x, c->logq + b0);
}

static int npe_run(npe_call *c, int threads, sb_error *err) {
  int T = sb_threads(threads, (c->n + NPE_CHUNK - 1) / NPE_CHUNK), rc = SB_OK;
  for (int t = 0; t < T && !rc; t++) {
    npe_worker *w = &c->w[t];
    rc = flow_buf_init(&w->fb, c->sm, NPE_CHUNK, 0, err);
    w->u = malloc(sizeof(float) * NPE_CHUNK * (size_t)c->sm->N);
    w->ts = malloc(sizeof(float) * NPE_CHUNK);
    if (!rc && (!w->u || !w->ts)) rc = sb_fail(err, SB_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < NPE_CHUNK; i++) w->ts[i] = c->tsc;
  }
  if (!rc) rc = sb_parallel_ranges(c->n, NPE_CHUNK, T, c->cancel, npe_chunk, c, "flow evaluation", err);
  for (int t = 0; t < T; t++) {
    flow_buf_free(&c->w[t].fb);
    free(c->w[t].u);
    free(c->w[t].ts);
  }
  return rc;
}

/* Lifted observations and the shared call settings for problem p. */
static int npe_call_init(npe_call *c, const model *sm, const est_problem *p, sb_error *err) {
  memset(c, 0, sizeof *c);
  c->sm = sm;
  float *cond = malloc(sizeof(float) * 2 * (size_t)sm->W * sm->N);
  if (!cond) return sb_fail(err, SB_ENOMEM, "out of memory");
  int rc = model_lift_observations(sm, p->op, p->y, cond, err);
  if (rc) {
    free(cond);
    return rc;
  }
  c->cond = cond;
  c->tsc = sm->time_varying ? (float)((double)p->time_index / sm->sim->t_max) : 0.0f;
  return SB_OK;
}

static double log_std_sum(const model *sm) {
  double s = 0;
  for (int n = 0; n < sm->N; n++) s += log(sm->std[n]);
  return s;
}

static int sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  const model *sm = e->impl;
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
    const npe_settings *ns = npe_settings_of(sm);
    int bad = 0;
    jb_set(r->diagnostics, "flow", json_pack("{s:i, s:f}", "couplings", ns->couplings, "clamp", ns->clamp), &bad);
    if (bad) rc = sb_fail(err, SB_ENOMEM, "out of memory for the diagnostics");
  }
  if (o->progress) o->progress(o->progress_ctx, 1.0);
  free((float *)c.cond);
  free(c.x);
  free(c.logq);
  return rc;
}

static int npe_log_prob(estimator *e, const est_problem *p, const est_options *o, const double *x, int n, double *out,
                 sb_error *err) {
  const model *sm = e->impl;
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

// ----------------------------------------------------------------------------
// the kind

static int in_channels(int W) { return 2 + 2 * W; } /* masked state, mask, 2W lifted observations */
static int out_channels(int W) {
  (void)W;
  return 2; /* log-scale and shift */
}
static int n_scalars(int time_varying) { return 1 + time_varying; } /* coupling index, t */

static const params_spec arch_params[] = {
    {"couplings", PARAM_INT, 1, 64, 0},
    {"clamp", PARAM_NUM, 0.1, 20, 0},
    {NULL, 0, 0, 0, 0},
};

static int settings_new(void **settings, sb_error *err) {
  npe_settings *s = calloc(1, sizeof *s);
  *settings = s;
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory for the flow settings");
  s->couplings = 8;
  s->clamp = 3.0;
  return SB_OK;
}

static void settings_free(void *settings) { free(settings); }

static int from_config(model *m, const json_t *section, const json_t *arch, sb_error *err) {
  (void)section, (void)err;
  npe_settings *s = npe_settings_of(m);
  s->couplings = (int)params_int(arch, "couplings", s->couplings);
  s->clamp = params_num(arch, "clamp", s->clamp);
  return SB_OK;
}

static json_t *meta_to_json(const model *m) {
  const npe_settings *s = npe_settings_of(m);
  return json_pack("{s:i, s:f}", "couplings", s->couplings, "clamp", s->clamp);
}

static int meta_from_json(model *m, const json_t *j, sb_error *err) {
  if (!j) return sb_fail(err, SB_EFORMAT, "model metadata lacks sbida.flow");
  npe_settings *s = npe_settings_of(m);
  s->couplings = (int)json_integer_value(json_object_get(j, "couplings"));
  s->clamp = json_number_value(json_object_get(j, "clamp"));
  if (s->couplings < 1 || s->couplings > 64 || !(s->clamp > 0 && s->clamp <= 20))
    return sb_fail(err, SB_EFORMAT, "model metadata sbida.flow needs couplings in 1..64 and clamp in (0, 20]");
  return SB_OK;
}

/* training: the batch holds the lifted observations (in [B][2W][N]), the
 * standardized x_t (target [B][N]) and the scaled time (scal [B]) */
typedef struct npe_train {
  model *m;
  kind_train_setup s;
  flow_buf vfb, tfb[SB_THREADS_MAX];
  kind_batch b[2];                     /* 0: training batch, 1: validation set */
  double *xs, *y;
} npe_train;

static void train_free(void *state) {
  npe_train *t = state;
  if (!t) return;
  flow_buf_free(&t->vfb);
  for (int i = 0; i < SB_THREADS_MAX; i++) flow_buf_free(&t->tfb[i]);
  kind_batch_free(&t->b[0]);
  kind_batch_free(&t->b[1]);
  free(t->xs); free(t->y);
  free(t);
}

static int train_init(void **state, model *m, const kind_train_setup *s, sb_error *err) {
  npe_train *t = calloc(1, sizeof *t);
  if (!t) return sb_fail(err, SB_ENOMEM, "out of memory");
  *state = t;
  t->m = m, t->s = *s;
  const int N = m->N, W = m->W, B = s->batch, V = s->val_windows, T = s->threads;
  int rc = flow_buf_init(&t->vfb, m, B, 0, err);
  int lo, nb = kind_train_part(s, B, &lo);
  for (int i = 0; !rc && i < T; i++) rc = flow_buf_init(&t->tfb[i], m, (nb + T - 1) / T, 1, err);
  if (!rc) rc = kind_batch_alloc(&t->b[0], B, (size_t)2 * W * N, 1, (size_t)N, err);
  if (!rc) rc = kind_batch_alloc(&t->b[1], V, (size_t)2 * W * N, 1, (size_t)N, err);
  if (rc) return rc;
  t->xs = malloc(sizeof(double) * (size_t)N);
  t->y = malloc(sizeof(double) * (size_t)W * m->op->n_obs);
  if (!t->xs || !t->y)
    return sb_fail(err, SB_ENOMEM, "out of memory for a batch of %d windows", B);
  return SB_OK;
}

static int make_batch(void *state, rng *r, const float *win, const long *tix, int B, int val, sb_error *err) {
  npe_train *t = state;
  const model *m = t->m;
  const int N = m->N, W = m->W;
  float *in = t->b[val].in, *scal = t->b[val].scal, *target = t->b[val].target;
  for (int b = 0; b < B; b++) {
    const float *wb = win + (size_t)b * W * N;
    for (int n = 0; n < N; n++)
      target[(size_t)b * N + n] = (float)((wb[(size_t)(W - 1) * N + n] - m->mean[n]) / m->std[n]);
    int rc = model_observe_window(m, r, t->s.missing_time, t->s.missing_entry, wb, t->xs, t->y,
                                  in + (size_t)b * 2 * W * N, err);
    if (rc) return rc;
    scal[b] = (float)model_time_scaled(m, tix[b]);
  }
  return SB_OK;
}

static int grad(void *state, double *loss, sb_error *err) {
  npe_train *t = state;
  const int N = t->m->N, W = t->m->W;
  int lo, nb = kind_train_part(&t->s, t->s.batch, &lo);
  return flow_grad_mt(t->m, t->tfb, t->s.threads, t->b[0].target + (size_t)lo * N, t->b[0].in + (size_t)lo * 2 * W * N,
                      t->m->time_varying ? t->b[0].scal + lo : NULL, nb, t->s.batch, loss, err);
}

/* mean -log q(x_t | y) / N over the validation set with the EMA weights */
static double val_loss(void *state) {
  npe_train *t = state;
  model sm = *t->m;
  if (t->m->net.ema) sm.net.params = t->m->net.ema;
  const int N = sm.N, V = t->s.val_windows, cs = 2 * sm.W * N;
  double acc = 0, lq[64];
  for (int done = 0; done < V;) {
    int B = V - done < 64 ? V - done : 64;
    if (B > t->vfb.max_batch) B = t->vfb.max_batch;
    const kind_batch *v = &t->b[1];
    if (flow_forward(&sm, &t->vfb, v->target + (size_t)done * N, v->in + (size_t)done * cs, (size_t)cs,
                     sm.time_varying ? v->scal + done : NULL, B, lq))
      return NAN;
    for (int b = 0; b < B; b++) acc -= lq[b] / N;
    done += B;
  }
  return acc / V;
}

const model_kind kind_npe = {
    .name = "npe",
    .what = "conditional normalizing flow with exact densities, for one operator and noise",
    .has_operator = 1,
    .meta_key = "sbida.flow",
    .arch_params = arch_params,
    MODEL_KIND_FUNCTIONS,
    .log_prob = npe_log_prob,
};
