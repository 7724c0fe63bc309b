/* local_score_sample.c: the local score of a window of any length and any
 * state size (see local_score.h), and the estimator of a local-score model.
 *
 * The denoiser of a window x [W][N] is v(x) = A f(G x): G gathers the R =
 * W - L + 1 runs of L (= 2k + 1, or any L) states, f is the network on every run (one
 * batch), A picks each state's output from one run. Its VJP, for guidance,
 * is G^T J_f^T A^T cot. The cost is R network runs of L x N values per
 * evaluation: linear in W and in N.
 *
 * Threads: samples are split into fixed tasks (as many samples as fill
 * LOCAL_RUN_CHUNK runs); a task gathers its samples' runs, runs them through
 * the network in batches of at most LOCAL_RUN_CHUNK and assembles its own
 * samples, so no two tasks write the same output and the result does not
 * depend on the number of threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kinds/local_score/local_score.h"
#include "nn/nn_model.h"
#include "util/jsonb.h"
#include "util/par.h"

#define LOCAL_RUN_CHUNK 32

int local_score_run_of(int w, int W, int L) {
  const int k = L / 2, R = W - L + 1, r = w - k;
  return r < 0 ? 0 : r > R - 1 ? R - 1 : r;
}

void local_score_gather(int W, int L, int N, const float *x, float *runs) {
  const int R = W - L + 1;
  for (int j = 0; j < R; j++) memcpy(runs + (size_t)j * L * N, x + (size_t)j * N, sizeof(float) * (size_t)L * N);
}

void local_score_assemble(int W, int L, int N, const float *runs, float *out) {
  for (int w = 0; w < W; w++) {
    int r = local_score_run_of(w, W, L);
    memcpy(out + (size_t)w * N, runs + ((size_t)r * L + (w - r)) * N, sizeof(float) * (size_t)N);
  }
}

void local_score_assemble_adjoint(int W, int L, int N, const float *cot, float *runs) {
  const int R = W - L + 1;
  memset(runs, 0, sizeof(float) * (size_t)R * L * N);
  for (int w = 0; w < W; w++) {
    int r = local_score_run_of(w, W, L);
    memcpy(runs + ((size_t)r * L + (w - r)) * N, cot + (size_t)w * N, sizeof(float) * (size_t)N);
  }
}

void local_score_gather_adjoint(int W, int L, int N, const float *runs, float *g) {
  const int R = W - L + 1;
  memset(g, 0, sizeof(float) * (size_t)W * N);
  for (int j = 0; j < R; j++)
    for (int l = 0; l < L; l++) {
      const float *src = runs + ((size_t)j * L + l) * N;
      float *dst = g + (size_t)(j + l) * N;
      for (int n = 0; n < N; n++) dst[n] += src[n];
    }
}

// ----------------------------------------------------------------------------
// the window denoiser over any per-run network

typedef struct ls_worker {
  float *in, *out, *cot, *dx; /* [cap][L][N] */
  long *t;                    /* [cap] */
} ls_worker;

struct local_score_denoiser {
  local_score_net net;
  int W, R, per_task, cap, T;
  long time_index; /* of the window's last state */
  ls_worker w[SB_THREADS_MAX];
  /* the current call */
  const float *x, *cot;
  float *v, *g;
  double tau;
  diff_cot_fn cot_fn; /* fills cot from v (guidance): called between a forward and the VJP */
  void *cot_ctx;
};

static int task_run(void *arg, int s0, int s1, int wi) {
  local_score_denoiser *c = arg;
  ls_worker *w = &c->w[wi];
  const int W = c->W, L = c->net.L, N = c->net.N, R = c->R;
  const size_t run = (size_t)L * N, win = (size_t)W * N;
  const int n_runs = (s1 - s0) * R;
  for (int s = s0; s < s1; s++) {
    local_score_gather(W, L, N, c->x + (size_t)s * win, w->in + (size_t)(s - s0) * R * run);
    for (int j = 0; j < R; j++) w->t[(s - s0) * R + j] = c->time_index - (R - 1 - j);
  }
  sb_error err = {0};
  int fused = 0; /* the backward pass reuses the forward's activations */
  if (c->cot_fn) {
    /* the cotangent depends on these samples' v: a forward pass first; when
     * the task's runs are one network batch and the net keeps its
     * activations (run_back), the VJP below is a backward pass only, else
     * it runs the forward again */
    for (int q = 0; q < n_runs; q += LOCAL_RUN_CHUNK) {
      int nq = n_runs - q < LOCAL_RUN_CHUNK ? n_runs - q : LOCAL_RUN_CHUNK;
      size_t off = (size_t)q * run;
      int rc = c->net.run_v(c->net.ctx, wi, w->in + off, w->t + q, nq, c->tau, w->out + off, &err);
      if (rc) return rc;
    }
    for (int s = s0; s < s1; s++)
      local_score_assemble(W, L, N, w->out + (size_t)(s - s0) * R * run, c->v + (size_t)s * win);
    c->cot_fn(c->cot_ctx, s0, s1);
    fused = c->net.run_back && n_runs <= LOCAL_RUN_CHUNK;
  }
  if (c->cot)
    for (int s = s0; s < s1; s++)
      local_score_assemble_adjoint(W, L, N, c->cot + (size_t)s * win, w->cot + (size_t)(s - s0) * R * run);
  if (fused) {
    int rc = c->net.run_back(c->net.ctx, wi, n_runs, w->cot, w->dx, &err);
    if (rc) return rc;
  }
  for (int q = 0; !fused && q < n_runs; q += LOCAL_RUN_CHUNK) {
    int nq = n_runs - q < LOCAL_RUN_CHUNK ? n_runs - q : LOCAL_RUN_CHUNK;
    size_t off = (size_t)q * run;
    int rc = c->cot ? c->net.run_vjp(c->net.ctx, wi, w->in + off, w->t + q, nq, c->tau, w->out + off, w->cot + off,
                                     w->dx + off, &err)
                    : c->net.run_v(c->net.ctx, wi, w->in + off, w->t + q, nq, c->tau, w->out + off, &err);
    if (rc) return rc;
  }
  for (int s = s0; s < s1; s++) {
    local_score_assemble(W, L, N, w->out + (size_t)(s - s0) * R * run, c->v + (size_t)s * win);
    if (c->cot) local_score_gather_adjoint(W, L, N, w->dx + (size_t)(s - s0) * R * run, c->g + (size_t)s * win);
  }
  return SB_OK;
}

static int den_call(local_score_denoiser *c, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn,
                    void *cot_ctx, const float *cot, float *g, sb_error *err) {
  c->x = x, c->tau = tau, c->v = v, c->cot = cot, c->g = g, c->cot_fn = cot_fn, c->cot_ctx = cot_ctx;
  return sb_parallel_ranges(B, c->per_task, c->T, NULL, task_run, c, "local score network", err);
}

static int den_v(void *ctx, const float *x, double tau, int B, float *v, sb_error *err) {
  return den_call(ctx, x, tau, B, v, NULL, NULL, NULL, NULL, err);
}

static int den_vjp(void *ctx, const float *x, double tau, int B, float *v, diff_cot_fn cot_fn, void *cot_ctx,
                   float *cot, float *g, sb_error *err) {
  return den_call(ctx, x, tau, B, v, cot_fn, cot_ctx, cot, g, err);
}

void local_score_denoiser_free(local_score_denoiser *c) {
  if (!c) return;
  for (int t = 0; t < SB_THREADS_MAX; t++) {
    free(c->w[t].in); free(c->w[t].out); free(c->w[t].cot); free(c->w[t].dx); free(c->w[t].t);
  }
  free(c);
}

int local_score_denoiser_init(local_score_denoiser **out, const local_score_net *net, int W, long time_index,
                              int B, int threads, diff_denoiser *d, sb_error *err) {
  *out = NULL;
  if (net->L < 3 || W < net->L || net->N < 1 || B < 1)
    return sb_fail(err, SB_EINVAL, "local score: a window of %d states needs runs of length 3..%d", W, W);
  local_score_denoiser *c = calloc(1, sizeof *c);
  if (!c) return sb_fail(err, SB_ENOMEM, "out of memory");
  c->net = *net;
  c->W = W;
  c->R = W - net->L + 1;
  c->time_index = time_index;
  c->per_task = LOCAL_RUN_CHUNK / c->R > 1 ? LOCAL_RUN_CHUNK / c->R : 1;
  c->cap = c->per_task * c->R; /* runs of one task */
  c->T = sb_threads(threads, (B + c->per_task - 1) / c->per_task);
  const size_t run = (size_t)net->L * net->N;
  for (int t = 0; t < c->T; t++) {
    ls_worker *w = &c->w[t];
    w->in = malloc(sizeof(float) * c->cap * run);
    w->out = malloc(sizeof(float) * c->cap * run);
    w->cot = malloc(sizeof(float) * c->cap * run);
    w->dx = malloc(sizeof(float) * c->cap * run);
    w->t = malloc(sizeof(long) * (size_t)c->cap);
    if (!w->in || !w->out || !w->cot || !w->dx || !w->t) {
      local_score_denoiser_free(c);
      return sb_fail(err, SB_ENOMEM, "out of memory for the local score of a window of %d x %d", W, net->N);
    }
  }
  *d = (diff_denoiser){W * net->N, c, den_v, den_vjp};
  *out = c;
  return SB_OK;
}

int local_score_workers(const local_score_denoiser *c) { return c->T; }

// ----------------------------------------------------------------------------
// the model's network at state size N

typedef struct model_net {
  const model *m;
  nn_model at;    /* the model's network at N (shares the weights) */
  int ns;
  double t_max;
  nn_workspace ws[SB_THREADS_MAX];
  float *scal[SB_THREADS_MAX];
} model_net;

static int mn_forward(model_net *c, int wi, const float *in, const long *t, int n, double tau, float *out) {
  float *sc = c->scal[wi];
  for (int i = 0; i < n; i++) {
    sc[(size_t)i * c->ns] = (float)tau;
    if (c->ns > 1) sc[(size_t)i * c->ns + 1] = (float)((double)t[i] / c->t_max);
  }
  return nn_forward(&c->at, &c->ws[wi], in, sc, n, out);
}

static int mn_v(void *ctx, int wi, const float *in, const long *t, int n, double tau, float *out, sb_error *err) {
  (void)err;
  return mn_forward(ctx, wi, in, t, n, tau, out);
}

static int mn_vjp(void *ctx, int wi, const float *in, const long *t, int n, double tau, float *out, const float *cot,
                  float *dx, sb_error *err) {
  (void)err;
  model_net *c = ctx;
  int rc = mn_forward(c, wi, in, t, n, tau, out);
  if (rc) return rc;
  memset(dx, 0, sizeof(float) * (size_t)n * c->at.rc.cin * c->at.rc.w);
  return nn_backward(&c->at, &c->ws[wi], cot, NULL, dx);
}

static int mn_back(void *ctx, int wi, int n, const float *cot, float *dx, sb_error *err) {
  (void)err;
  model_net *c = ctx;
  memset(dx, 0, sizeof(float) * (size_t)n * c->at.rc.cin * c->at.rc.w);
  return nn_backward(&c->at, &c->ws[wi], cot, NULL, dx);
}

static void mn_free(model_net *c) {
  for (int t = 0; t < SB_THREADS_MAX; t++) {
    nn_workspace_free(&c->ws[t]);
    free(c->scal[t]);
  }
}

static int mn_init(model_net *c, const model *m, int N, int workers, int vjp, sb_error *err) {
  memset(c, 0, sizeof *c);
  c->m = m;
  c->at = m->net; /* shallow: the same weights at another width */
  c->at.rc.w = N;
  c->ns = nn_n_scalars(&m->net);
  c->t_max = m->sim->t_max > 0 ? (double)m->sim->t_max : 1.0;
  for (int t = 0; t < workers; t++) {
    int rc = nn_workspace_init(&c->ws[t], &c->at, LOCAL_RUN_CHUNK, vjp, err);
    if (rc) return rc;
    c->scal[t] = malloc(sizeof(float) * LOCAL_RUN_CHUNK * (c->ns > 0 ? c->ns : 1));
    if (!c->scal[t]) return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  return SB_OK;
}

// ----------------------------------------------------------------------------
// the estimator

static int check_problem(const estimator *e, const est_problem *p, sb_error *err) {
  const model *m = e->impl;
  long values = (long)p->window * p->sim->dim;
  if (values > LOCAL_SCORE_MAX_VALUES)
    return sb_fail(err, SB_EINVAL, "estimator %s: a window of %d states of %d nodes is %ld values, more than the %d "
                   "a local-score request may have", e->name, p->window, p->sim->dim, values, LOCAL_SCORE_MAX_VALUES);
  if (p->sim->channels != 1 || p->sim->height != 1)
    return sb_fail(err, SB_EINVAL, "estimator %s serves 1D states only", e->name);
  (void)m;
  return SB_OK;
}

void local_score_serve_ranges(const model *m, estimator *e) {
  e->window = 0;
  e->window_min = m->W;
  e->window_max = LOCAL_SCORE_MAX_WINDOW;
  e->dim_min = LOCAL_SCORE_MIN_N;
  e->dim_max = LOCAL_SCORE_MAX_N;
  e->check_problem = check_problem;
}

int local_score_estimator_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r,
                                 sb_error *err) {
  const model *m = e->impl;
  const int N = p->sim->dim, W = p->window, S = o->n_samples, D = W * N;
  const double mean = m->mean[0], std = m->std[0]; /* one for every node (checked on load) */
  diff_sampler_config cfg;
  double gamma;
  score_net_settings(m, o->params, &cfg, &gamma);
  local_score_denoiser *den = NULL;
  model_net mn;
  memset(&mn, 0, sizeof mn);
  diff_denoiser d;
  float *x = NULL;
  double *gmean = NULL, *gscale = NULL, *bbuf = NULL;
  diff_background bg = {0};
  json_t *retries = NULL; /* the dynamics term's retries (score_net_diff_sample) */
  local_score_net net = {m->W, N, &mn, mn_v, mn_vjp, mn_back};
  int rc = local_score_denoiser_init(&den, &net, W, p->time_index, S, o->threads, &d, err);
  if (!rc) rc = mn_init(&mn, m, N, local_score_workers(den), 1, err);
  if (rc) goto done;
  x = malloc(sizeof(float) * (size_t)S * D);
  gmean = malloc(sizeof(double) * (size_t)D);
  gscale = malloc(sizeof(double) * (size_t)D);
  if (!x || !gmean || !gscale) {
    rc = sb_fail(err, SB_ENOMEM, "out of memory for %d samples of %d x %d", S, W, N);
    goto done;
  }
  for (int i = 0; i < D; i++) gmean[i] = mean, gscale[i] = std;
  if ((rc = score_net_background(p, o->params, &bg, &bbuf, err))) goto done;
  score_net_background_gamma(&bg, gamma);
  diff_dynamics dyn;
  int dyn_on = 0;
  dyn_on = score_net_dynamics(p, o->params, gamma, &dyn);
  diff_guidance g = {p->op, W, p->y, p->noise->std, gmean, gscale, gamma, bg.dim ? &bg : NULL, 0, 0,
                     dyn_on ? &dyn : NULL, 0};
  int warm = 0;
  if ((rc = score_net_warm_start(p, o, W, 0, gmean, gscale, x, &cfg, &warm, err))) goto done;
  if ((rc = score_net_diff_sample(&d, &g, dyn_on ? &dyn : NULL, &cfg, o, x, &retries, err))) goto done;
  if ((rc = est_result_alloc(r, S, N, W, o->want_window, 0, err))) goto done;
  for (int s = 0; s < S; s++) {
    const float *xs = x + (size_t)s * D;
    for (int n = 0; n < N; n++) r->samples[(size_t)s * N + n] = mean + std * xs[(size_t)(W - 1) * N + n];
    if (o->want_window)
      for (int i = 0; i < D; i++) r->window_samples[(size_t)s * D + i] = mean + std * xs[i];
  }
  {
    double *win = malloc(sizeof(double) * (size_t)S * D);
    if (!win) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      goto done;
    }
    for (size_t i = 0; i < (size_t)S * D; i++) win[i] = mean + std * x[i];
    rc = score_net_residual_diag(r->diagnostics, p->sim, win, S, W, err);
    free(win);
    if (rc) goto done;
  }
  int bad = 0;
  json_t *sj = json_pack("{s:i, s:i, s:f, s:f}", "steps", cfg.steps, "corrections", cfg.corrections, "tau_l",
                         cfg.tau_l, "gamma", gamma);
  if (sj && cfg.gamma_floor) json_object_set_new(sj, "gamma_floor", json_integer(cfg.gamma_floor));
  if (warm) jb_set_real(sj, "warm_start", cfg.start, &bad);
  score_net_gamma_used(sj, &g, &cfg, gamma);
  jb_set(r->diagnostics, "sampler", sj, &bad);
  jb_set(r->diagnostics, "local",
         json_pack("{s:i, s:i, s:i, s:i}", "k", m->W / 2, "run_length", m->W, "runs", W - m->W + 1, "state_dim", N),
         &bad);
  if (bg.dim) jb_set(r->diagnostics, "background", score_net_background_json(&bg, o->params), &bad);
  if (dyn_on) jb_set(r->diagnostics, "dynamics", score_net_dynamics_json(&dyn, retries), &bad);
  retries = NULL;
  if (bad) rc = sb_fail(err, SB_ENOMEM, "out of memory for the diagnostics");
done:
  json_decref(retries);
  local_score_denoiser_free(den);
  mn_free(&mn);
  free(x); free(gmean); free(gscale); free(bbuf);
  return rc;
}
