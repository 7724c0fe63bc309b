/* The local-score kind: the assembly of per-run outputs into the score of a
 * window (a synthetic per-run "network" whose output says which run and
 * position it came from), its VJP against finite differences, the
 * independence of the thread count, the same weights at several N, and the
 * ranges a model accepts (errors that say why). No trained model: the
 * model file comes from a few training steps, and only shapes, finiteness
 * and the rules are checked. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "catalog/catalog.h"
#include "kinds/kinds.h"
#include "kinds/local_score/local_score.h"
#include "nn/nn_model.h"
#include "util/rng.h"
#include "testutil.h"

/* Which run state w of a window of W takes its output from, written out by
 * hand from the rule (first k from run 0, middle state w from run w - k,
 * last k from run W - L). */
static const int RUN_W10_L7[10] = {0, 0, 0, 0, 1, 2, 3, 3, 3, 3};
static const int RUN_W5_L3[5] = {0, 0, 1, 2, 2};
static const int RUN_W9_L5[9] = {0, 0, 0, 1, 2, 3, 4, 4, 4};
/* an even run (k = L / 2 = 2; a composed-score model written as a local score, sbida model --as-local-score) */
static const int RUN_W10_L4[10] = {0, 0, 0, 1, 2, 3, 4, 5, 6, 6};

static void test_run_of_by_hand(void **state) {
  (void)state;
  for (int w = 0; w < 10; w++) assert_int_equal(local_score_run_of(w, 10, 7), RUN_W10_L7[w]);
  for (int w = 0; w < 5; w++) assert_int_equal(local_score_run_of(w, 5, 3), RUN_W5_L3[w]);
  for (int w = 0; w < 9; w++) assert_int_equal(local_score_run_of(w, 9, 5), RUN_W9_L5[w]);
  for (int w = 0; w < 7; w++) assert_int_equal(local_score_run_of(w, 7, 7), 0); /* one run */
  for (int w = 0; w < 10; w++) assert_int_equal(local_score_run_of(w, 10, 4), RUN_W10_L4[w]);
  for (int w = 0; w < 10; w++) assert_int_equal(local_score_run_of(w, 10, 10), 0);
}

/* The synthetic network: out[l][n] = in[l][n] + mark * (100 l + t_mark * t)
 *   + curv * sin(in[l+1][n]) * in[l][n+1]      (l + 1 < L; n + 1 circular)
 * so an assembled output says which position (and run time) it came from,
 * and with curv != 0 it mixes neighbouring states and nodes (for the VJP). */
typedef struct synth {
  int L, N;
  double mark, t_mark, curv;
  int calls;
  int forwards;               /* forward passes (synth_v and synth_vjp) */
  const float *last_in[8];    /* per worker: the input of its last synth_v (synth_back) */
  int last_n[8];
} synth;

static void synth_fwd(const synth *s, const float *in, const long *t, int n, float *out) {
  const int L = s->L, N = s->N;
  for (int b = 0; b < n; b++)
    for (int l = 0; l < L; l++)
      for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)b * L * N;
        double v = x[l * N + i] + s->mark * (100.0 * l + s->t_mark * (double)t[b]);
        if (l + 1 < L) v += s->curv * sin(x[(l + 1) * N + i]) * x[l * N + (i + 1) % N];
        out[((size_t)b * L + l) * N + i] = (float)v;
      }
}

static int synth_v(void *ctx, int worker, const float *in, const long *t, int n, double tau, float *out,
                   sb_error *err) {
  (void)worker, (void)tau, (void)err;
  synth *s = ctx;
  assert_true(n >= 1 && n <= 32);
  synth_fwd(s, in, t, n, out);
  __atomic_fetch_add(&s->forwards, 1, __ATOMIC_RELAXED); /* the denoiser calls this from its worker threads */
  assert_true(worker >= 0 && worker < 8);
  s->last_in[worker] = in, s->last_n[worker] = n;
  return SB_OK;
}

static void synth_grad(const synth *s, const float *in, int n, const float *cot, float *dx);

/* run_back: the VJP of the worker's last synth_v call, from its input. */
static int synth_back(void *ctx, int worker, int n, const float *cot, float *dx, sb_error *err) {
  (void)err;
  synth *s = ctx;
  assert_int_equal(n, s->last_n[worker]);
  synth_grad(s, s->last_in[worker], n, cot, dx);
  return SB_OK;
}

/* Exact input VJP of the synthetic network. */
static int synth_vjp(void *ctx, int worker, const float *in, const long *t, int n, double tau, float *out,
                     const float *cot, float *dx, sb_error *err) {
  (void)worker, (void)tau, (void)err;
  synth *s = ctx;
  synth_fwd(s, in, t, n, out);
  __atomic_fetch_add(&s->forwards, 1, __ATOMIC_RELAXED); /* the denoiser calls this from its worker threads */
  synth_grad(s, in, n, cot, dx);
  return SB_OK;
}

static void synth_grad(const synth *s, const float *in, int n, const float *cot, float *dx) {
  const int L = s->L, N = s->N;
  memset(dx, 0, sizeof(float) * (size_t)n * L * N);
  for (int b = 0; b < n; b++) {
    const float *x = in + (size_t)b * L * N, *c = cot + (size_t)b * L * N;
    float *g = dx + (size_t)b * L * N;
    for (int l = 0; l < L; l++)
      for (int i = 0; i < N; i++) {
        double ci = c[l * N + i];
        g[l * N + i] += (float)ci;
        if (l + 1 < L) {
          int i1 = (i + 1) % N;
          g[(l + 1) * N + i] += (float)(ci * s->curv * cos(x[(l + 1) * N + i]) * x[l * N + i1]);
          g[l * N + i1] += (float)(ci * s->curv * sin(x[(l + 1) * N + i]));
        }
      }
  }
}

static void fill_normal(float *x, size_t n, uint64_t stream) {
  rng r;
  rng_init(&r, 77, stream);
  for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(&r);
}

/* Every assembled state is its own input plus the mark of the position (and
 * the run's time) it was taken from, for every sample of the batch. */
static void check_assembly(int W, int L, int N, const int *run_of) {
  synth s = {L, N, 1.0, 0.001, 0.0, 0, 0, {0}, {0}};
  local_score_net net = {L, N, &s, synth_v, synth_vjp, NULL};
  const int B = 5, D = W * N;
  const long T = 500;
  local_score_denoiser *den;
  diff_denoiser d;
  sb_error err;
  assert_int_equal(local_score_denoiser_init(&den, &net, W, T, B, 2, &d, &err), 0);
  assert_int_equal(d.dim, D);
  float *x = malloc(sizeof(float) * B * D), *v = malloc(sizeof(float) * B * D);
  fill_normal(x, (size_t)B * D, 1);
  assert_int_equal(d.v(d.ctx, x, 0.5, B, v, &err), 0);
  const int R = W - L + 1;
  for (int b = 0; b < B; b++)
    for (int w = 0; w < W; w++) {
      int r = run_of[w], pos = w - r;
      long t_run = T - (R - 1 - r); /* time index of the run's last state */
      for (int n = 0; n < N; n++) {
        double want = x[(size_t)b * D + w * N + n] + 100.0 * pos + 0.001 * (double)t_run;
        assert_float_equal(v[(size_t)b * D + w * N + n], want, 1e-3);
      }
    }
  free(x);
  free(v);
  local_score_denoiser_free(den);
}

static void test_assembly_synthetic(void **state) {
  (void)state;
  check_assembly(10, 7, 6, RUN_W10_L7);
  check_assembly(5, 3, 4, RUN_W5_L3);
  check_assembly(9, 5, 8, RUN_W9_L5);
  check_assembly(10, 4, 6, RUN_W10_L4);
  int one[10] = {0};
  check_assembly(7, 7, 5, one);
  check_assembly(10, 10, 5, one); /* an even run over the whole window: the network's own score */
  /* many runs per sample: more than one network batch per task */
  int run40[40];
  for (int w = 0; w < 40; w++) run40[w] = w < 1 ? 0 : w > 38 ? 37 : w - 1;
  check_assembly(40, 3, 4, run40);
}

/* The two adjoints are the transposes of gather and assemble:
 * <assemble(a), c> = <a, assemble_adjoint(c)>, <gather(x), r> = <x, gather_adjoint(r)>. */
static void test_adjoints_are_transposes(void **state) {
  (void)state;
  const int W = 11, L = 5, N = 6, R = W - L + 1;
  size_t nw = (size_t)W * N, nr = (size_t)R * L * N;
  float *x = malloc(sizeof(float) * nw), *c = malloc(sizeof(float) * nw), *a = malloc(sizeof(float) * nr),
        *r = malloc(sizeof(float) * nr), *t1 = malloc(sizeof(float) * nr), *t2 = malloc(sizeof(float) * nw);
  fill_normal(x, nw, 2), fill_normal(c, nw, 3), fill_normal(a, nr, 4), fill_normal(r, nr, 5);
  local_score_assemble(W, L, N, a, t2);
  local_score_assemble_adjoint(W, L, N, c, t1);
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < nw; i++) lhs += (double)t2[i] * c[i];
  for (size_t i = 0; i < nr; i++) rhs += (double)a[i] * t1[i];
  assert_true(fabs(lhs - rhs) < 1e-4 * (1 + fabs(lhs)));
  local_score_gather(W, L, N, x, t1);
  local_score_gather_adjoint(W, L, N, r, t2);
  lhs = rhs = 0;
  for (size_t i = 0; i < nr; i++) lhs += (double)t1[i] * r[i];
  for (size_t i = 0; i < nw; i++) rhs += (double)x[i] * t2[i];
  assert_true(fabs(lhs - rhs) < 1e-4 * (1 + fabs(lhs)));
  /* every state appears in min(w + 1, R, W - w, L) runs: gather_adjoint of ones counts them */
  for (size_t i = 0; i < nr; i++) r[i] = 1;
  local_score_gather_adjoint(W, L, N, r, t2);
  for (int w = 0; w < W; w++) {
    int cnt = 0;
    for (int j = 0; j < R; j++) cnt += w >= j && w < j + L;
    assert_float_equal(t2[w * N], cnt, 0);
  }
  free(x), free(c), free(a), free(r), free(t1), free(t2);
}

/* The window VJP against central finite differences of the assembled
 * window function, along random directions. */
static void check_vjp_fd(const int W, const int L, const int N, const int B) {
  const int D = W * N;
  synth s = {L, N, 0.0, 0.0, 0.7, 0, 0, {0}, {0}};
  local_score_net net = {L, N, &s, synth_v, synth_vjp, NULL};
  local_score_denoiser *den;
  diff_denoiser d;
  sb_error err;
  assert_int_equal(local_score_denoiser_init(&den, &net, W, 20, B, 1, &d, &err), 0);
  size_t n = (size_t)B * D;
  float *x = malloc(sizeof(float) * n), *cot = malloc(sizeof(float) * n), *dir = malloc(sizeof(float) * n),
        *v = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n), *xp = malloc(sizeof(float) * n),
        *vp = malloc(sizeof(float) * n), *vm = malloc(sizeof(float) * n);
  fill_normal(x, n, 10), fill_normal(cot, n, 11);
  assert_int_equal(d.v_vjp(d.ctx, x, 0.3, B, v, NULL, NULL, cot, g, &err), 0);
  for (int trial = 0; trial < 4; trial++) {
    fill_normal(dir, n, 20 + (uint64_t)trial);
    const double h = 1e-2;
    for (size_t i = 0; i < n; i++) xp[i] = (float)(x[i] + h * dir[i]);
    assert_int_equal(d.v(d.ctx, xp, 0.3, B, vp, &err), 0);
    for (size_t i = 0; i < n; i++) xp[i] = (float)(x[i] - h * dir[i]);
    assert_int_equal(d.v(d.ctx, xp, 0.3, B, vm, &err), 0);
    double fd = 0, an = 0;
    for (size_t i = 0; i < n; i++) fd += cot[i] * ((double)vp[i] - vm[i]) / (2 * h), an += (double)g[i] * dir[i];
    print_message("vjp direction %d: finite differences %.5f, vjp %.5f\n", trial, fd, an);
    assert_true(fabs(fd - an) < 2e-3 * (1 + fabs(an)));
  }
  /* single coordinates: a state in the overlap of several runs, the first and the last */
  int coords[3] = {4 * N + 2, 0, (W - 1) * N + N - 1};
  for (int c = 0; c < 3; c++) {
    const double h = 1e-2;
    memcpy(xp, x, sizeof(float) * n);
    xp[coords[c]] += (float)h;
    assert_int_equal(d.v(d.ctx, xp, 0.3, B, vp, &err), 0);
    xp[coords[c]] -= (float)(2 * h);
    assert_int_equal(d.v(d.ctx, xp, 0.3, B, vm, &err), 0);
    double fd = 0;
    for (size_t i = 0; i < n; i++) fd += cot[i] * ((double)vp[i] - vm[i]) / (2 * h);
    assert_true(fabs(fd - g[coords[c]]) < 2e-3 * (1 + fabs(fd)));
  }
  free(x), free(cot), free(dir), free(v), free(g), free(xp), free(vp), free(vm);
  local_score_denoiser_free(den);
}

static void test_vjp_finite_differences(void **state) {
  (void)state;
  check_vjp_fd(9, 5, 7, 3);
  check_vjp_fd(10, 4, 7, 3); /* an even run length */
}

/* The guided path: a cotangent computed from v by cot_fn between the forward
 * and the VJP (as the samplers do) gives the same v and g as a cotangent
 * known in advance (here cot = 0.5 v + x, formed from the first call's v). */
typedef struct cot_from_v {
  const float *x, *v;
  float *cot;
  int D, calls;
} cot_from_v;

static void fill_cot(void *ctx, int b0, int b1) {
  cot_from_v *c = ctx;
  for (size_t i = (size_t)b0 * c->D; i < (size_t)b1 * c->D; i++) c->cot[i] = 0.5f * c->v[i] + c->x[i];
  c->calls++;
}

static void test_vjp_with_cotangent_callback(void **state) {
  (void)state;
  const int W = 10, L = 3, N = 6, B = 5, D = W * N;
  synth s = {L, N, 0.0, 0.0, 0.6, 0, 0, {0}, {0}};
  local_score_net net = {L, N, &s, synth_v, synth_vjp, NULL};
  local_score_denoiser *den, *den_plain;
  diff_denoiser d, d_plain;
  sb_error err;
  assert_int_equal(local_score_denoiser_init(&den, &net, W, 30, B, 2, &d, &err), 0);
  size_t n = (size_t)B * D;
  float *x = malloc(sizeof(float) * n), *v1 = malloc(sizeof(float) * n), *g1 = malloc(sizeof(float) * n),
        *cot1 = malloc(sizeof(float) * n), *v2 = malloc(sizeof(float) * n), *g2 = malloc(sizeof(float) * n),
        *cot2 = malloc(sizeof(float) * n);
  fill_normal(x, n, 40);
  cot_from_v c = {x, v1, cot1, D, 0};
  assert_int_equal(d.v_vjp(d.ctx, x, 0.4, B, v1, fill_cot, &c, cot1, g1, &err), 0);
  assert_true(c.calls >= 1);
  for (size_t i = 0; i < n; i++) cot2[i] = 0.5f * v1[i] + x[i];
  assert_int_equal(d.v_vjp(d.ctx, x, 0.4, B, v2, NULL, NULL, cot2, g2, &err), 0);
  assert_memory_equal(v1, v2, sizeof(float) * n);
  assert_memory_equal(cot1, cot2, sizeof(float) * n);
  assert_memory_equal(g1, g2, sizeof(float) * n);
  local_score_denoiser_free(den);
  /* with run_back (a net that keeps its activations) the guided call makes
   * one forward per task instead of two, with the same v and g */
  synth s2 = {L, N, 0.0, 0.0, 0.6, 0, 0, {0}, {0}};
  local_score_net net2 = {L, N, &s2, synth_v, synth_vjp, synth_back};
  assert_int_equal(local_score_denoiser_init(&den, &net2, W, 30, B, 2, &d, &err), 0);
  s.forwards = 0;
  assert_int_equal(local_score_denoiser_init(&den_plain, &net, W, 30, B, 2, &d_plain, &err), 0);
  assert_int_equal(d_plain.v_vjp(d_plain.ctx, x, 0.4, B, v2, fill_cot, &c, cot2, g2, &err), 0);
  local_score_denoiser_free(den_plain);
  cot_from_v c2 = {x, v2, cot2, D, 0};
  assert_int_equal(d.v_vjp(d.ctx, x, 0.4, B, v2, fill_cot, &c2, cot2, g2, &err), 0);
  print_message("guided call: %d forward passes without run_back, %d with\n", s.forwards, s2.forwards);
  assert_int_equal(s2.forwards * 2, s.forwards);
  assert_memory_equal(v1, v2, sizeof(float) * n);
  assert_memory_equal(cot1, cot2, sizeof(float) * n);
  assert_memory_equal(g1, g2, sizeof(float) * n);
  free(x), free(v1), free(g1), free(cot1), free(v2), free(g2), free(cot2);
  local_score_denoiser_free(den);
  /* a window of more runs than one network batch (W = 40: 38 runs of 3 > 32):
   * the forward is run again in chunks, so run_back (the last chunk's
   * activations only) must not be used; same v and g as without it */
  const int W2 = 40, D2 = W2 * N, B2 = 2;
  size_t n2 = (size_t)B2 * D2;
  float *y = malloc(sizeof(float) * n2), *va = malloc(sizeof(float) * n2), *ga = malloc(sizeof(float) * n2),
        *ca = malloc(sizeof(float) * n2), *vb = malloc(sizeof(float) * n2), *gb = malloc(sizeof(float) * n2),
        *cb = malloc(sizeof(float) * n2);
  fill_normal(y, n2, 41);
  local_score_net nets[2] = {net, net2};
  float *vs[2] = {va, vb}, *gs[2] = {ga, gb}, *cs[2] = {ca, cb};
  for (int k = 0; k < 2; k++) {
    assert_int_equal(local_score_denoiser_init(&den, &nets[k], W2, 60, B2, 1, &d, &err), 0);
    cot_from_v ck = {y, vs[k], cs[k], D2, 0};
    assert_int_equal(d.v_vjp(d.ctx, y, 0.4, B2, vs[k], fill_cot, &ck, cs[k], gs[k], &err), 0);
    local_score_denoiser_free(den);
  }
  assert_memory_equal(va, vb, sizeof(float) * n2);
  assert_memory_equal(ga, gb, sizeof(float) * n2);
  free(y), free(va), free(ga), free(ca), free(vb), free(gb), free(cb);
}

/* The result does not depend on the number of threads (tasks by index). */
static void test_threads_bit_identical(void **state) {
  (void)state;
  const int W = 12, L = 3, N = 5, B = 37, D = W * N;
  synth s = {L, N, 1.0, 0.0, 0.4, 0, 0, {0}, {0}};
  local_score_net net = {L, N, &s, synth_v, synth_vjp, NULL};
  size_t n = (size_t)B * D;
  float *x = malloc(sizeof(float) * n), *cot = malloc(sizeof(float) * n), *v[2], *g[2];
  fill_normal(x, n, 30), fill_normal(cot, n, 31);
  for (int k = 0; k < 2; k++) {
    local_score_denoiser *den;
    diff_denoiser d;
    sb_error err;
    v[k] = malloc(sizeof(float) * n), g[k] = malloc(sizeof(float) * n);
    assert_int_equal(local_score_denoiser_init(&den, &net, W, 40, B, k ? 3 : 1, &d, &err), 0);
    assert_int_equal(d.v_vjp(d.ctx, x, 0.5, B, v[k], NULL, NULL, cot, g[k], &err), 0);
    local_score_denoiser_free(den);
  }
  assert_memory_equal(v[0], v[1], sizeof(float) * n);
  assert_memory_equal(g[0], g[1], sizeof(float) * n);
  free(x), free(cot), free(v[0]), free(v[1]), free(g[0]), free(g[1]);
}

/* The network's weights at another N: on a state made of two copies of an
 * N = 16 state, the network at N = 32 returns two copies of its output at
 * N = 16 (circular convolutions, GroupNorm over space, no dense layer). */
static void test_network_any_n(void **state) {
  (void)state;
  nn_resnet_config rc = {.dims = 1, .h = 1, .w = 16, .cin = 5, .cout = 5, .width = 16, .blocks = 2, .groups = 4,
                         .n_scalars = 1, .emb_dim = 8};
  nn_model m;
  sb_error err;
  assert_int_equal(nn_resnet_init(&m, &rc, &err), 0);
  nn_model_init_params(&m, 3);
  nn_model m2 = m;
  m2.rc.w = 32;
  nn_workspace w1, w2;
  assert_int_equal(nn_workspace_init(&w1, &m, 2, 0, &err), 0);
  assert_int_equal(nn_workspace_init(&w2, &m2, 2, 0, &err), 0);
  float x1[2 * 5 * 16], x2[2 * 5 * 32], o1[2 * 5 * 16], o2[2 * 5 * 32], tau[2] = {0.3f, 0.8f};
  fill_normal(x1, 2 * 5 * 16, 40);
  for (int b = 0; b < 2; b++)
    for (int c = 0; c < 5; c++)
      for (int i = 0; i < 32; i++) x2[(b * 5 + c) * 32 + i] = x1[(b * 5 + c) * 16 + i % 16];
  assert_int_equal(nn_forward(&m, &w1, x1, tau, 2, o1), 0);
  assert_int_equal(nn_forward(&m2, &w2, x2, tau, 2, o2), 0);
  double maxabs = 0;
  for (int b = 0; b < 2; b++)
    for (int c = 0; c < 5; c++)
      for (int i = 0; i < 32; i++) {
        double a = o2[(b * 5 + c) * 32 + i], e = o1[(b * 5 + c) * 16 + i % 16];
        assert_true(fabs(a - e) < 1e-4 * (1 + fabs(e)));
        if (fabs(e) > maxabs) maxabs = fabs(e);
      }
  assert_true(maxabs > 1e-3); /* not trivially zero */
  nn_workspace_free(&w1);
  nn_workspace_free(&w2);
  nn_model_free(&m);
}

static char model_path[512];

static int setup_model(void **state) {
  (void)state;
  snprintf(model_path, sizeof model_path, "%s/tiny-local.safetensors", tu_tmpdir());
  json_t *c = json_pack("{s:s, s:s, s:i, s:i, s:{s:i, s:i, s:i, s:i}, s:{s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:i}, "
                        "s:{s:i}}",
                        "kind", "local-score", "preset", "l96-sakov", "N", 16, "window", 5, "arch", "width", 16,
                        "blocks", 2, "groups", 4, "emb_dim", 8, "train", "steps", 20, "batch", 16, "lr", 3e-3,
                        "warmup", 2, "pool", 8, "refresh", 1, "val_windows", 16, "val_every", 1000, "sampler",
                        "steps", 6);
  double v = tu_train(c, model_path);
  return isfinite(v) ? 0 : -1;
}

/* A problem at state size N and window W: every second node observed. */
static void problem_at(estimator *e, int N, int W, sim **s, obs_op **op, obs_noise *nz, double **y,
                       est_problem *p) {
  sb_error err;
  assert_int_equal(sim_create(s, "l96-sakov", N, &err), 0);
  assert_int_equal(obs_from_string(op, "{\"type\":\"subsample\",\"stride\":2}", 1, 1, N, &err), 0);
  assert_int_equal(obs_noise_scalar(nz, 1.5, (*op)->n_obs, &err), 0);
  *y = malloc(sizeof(double) * (size_t)W * (*op)->n_obs);
  for (int i = 0; i < W * (*op)->n_obs; i++) (*y)[i] = 2.0 + 3.0 * sin(0.7 * i);
  *p = (est_problem){*s, *op, nz, W, W - 1 + 100, *y, NULL};
  (void)e;
}

/* The same weights at N = 8, 32 and 64 (trained at 16) and windows 5..20:
 * finite samples of the right shape; a longer window changes the answer. */
static void test_model_any_n_and_window(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, model_path, NULL, 0, &err), 0);
  assert_string_equal(e->kind, "local-score");
  assert_int_equal(e->window, 0);
  assert_int_equal(e->window_min, 5);
  assert_int_equal(e->window_max, LOCAL_SCORE_MAX_WINDOW);
  assert_int_equal(e->dim_min, LOCAL_SCORE_MIN_N);
  assert_int_equal(e->dim_max, LOCAL_SCORE_MAX_N);
  const int Ns[3] = {8, 32, 64}, Ws[3] = {5, 9, 20};
  for (int a = 0; a < 3; a++) {
    int N = Ns[a], W = Ws[a];
    sim *s;
    obs_op *op;
    obs_noise nz;
    double *y;
    est_problem p;
    problem_at(e, N, W, &s, &op, &nz, &y, &p);
    json_t *params = json_pack("{s:i}", "steps", 4);
    est_options o = {.n_samples = 6, .seed = 5, .want_window = 1, .threads = 2, .params = params};
    est_result r;
    assert_int_equal(est_sample(e, &p, &o, &r, &err), 0);
    assert_int_equal(r.dim, N);
    assert_int_equal(r.window, W);
    assert_int_equal(r.n_samples, 6);
    for (int i = 0; i < 6 * N; i++) assert_true(isfinite(r.samples[i]));
    for (int i = 0; i < 6 * W * N; i++) assert_true(isfinite(r.window_samples[i]));
    /* x_t is the window's last state */
    for (int sI = 0; sI < 6; sI++)
      for (int n = 0; n < N; n++)
        assert_float_equal(r.samples[sI * N + n], r.window_samples[((size_t)sI * W + W - 1) * N + n], 1e-9);
    json_t *loc = json_object_get(r.diagnostics, "local");
    assert_int_equal(json_integer_value(json_object_get(loc, "runs")), W - 5 + 1);
    /* the dynamical residual of the window samples, by hand (a step of the problem's simulator) */
    double res2 = 0, *xs = malloc(sizeof(double) * N);
    for (int sI = 0; sI < 6; sI++)
      for (int k = 0; k + 1 < W; k++) {
        memcpy(xs, r.window_samples + ((size_t)sI * W + k) * N, sizeof(double) * N);
        assert_int_equal(s->advance(s, xs, 1, 1, &err), 0);
        for (int n = 0; n < N; n++) {
          double d = r.window_samples[((size_t)sI * W + k + 1) * N + n] - xs[n];
          res2 += d * d;
        }
      }
    free(xs);
    double res = json_real_value(json_object_get(r.diagnostics, "dynamics_residual"));
    assert_true(res > 0 && fabs(res - sqrt(res2 / (6.0 * (W - 1) * N))) < 1e-9 * (1 + res));
    est_result_free(&r);
    json_decref(params);
    free(y);
    obs_noise_free(&nz);
    obs_free(op);
    sim_free(s);
  }
  est_free(e);
}

/* A background for the first state reaches the local score's guidance
 * (the same term as composed-score, tested exactly in test_diff_bg.c): an
 * ensemble of 8 members spread 0.2 around a state 1.5 away from the
 * observations' level pulls the first state's sample mean to within 0.5
 * RMS of the background mean (measured in the print) and at most half as
 * far as without it. With params.warm_start 0.1 the sampler starts from the
 * members forecast through the window (score_net_warm_start, tested value
 * by value in test_score.c): the diagnostics say so and the first state
 * stays as near. */
static void test_model_background(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, model_path, NULL, 0, &err), 0);
  assert_true(e->accepts_background);
  const int N = 16, W = 5, S = 24, K = 8;
  sim *s;
  obs_op *op;
  obs_noise nz;
  double *y, mem[8 * 16], bm[16];
  est_problem p;
  problem_at(e, N, W, &s, &op, &nz, &y, &p);
  rng g;
  rng_init(&g, 4, 1);
  for (int i = 0; i < N; i++) bm[i] = 0.5 + 2.0 * cos(0.9 * i);
  for (int k = 0; k < K; k++)
    for (int i = 0; i < N; i++) mem[k * N + i] = bm[i] + 0.2 * rng_normal(&g);
  for (int i = 0; i < N; i++) { /* bm: the members' own mean */
    bm[i] = 0;
    for (int k = 0; k < K; k++) bm[i] += mem[k * N + i] / K;
  }
  est_background bg = {.n_members = K, .members = mem};
  json_t *params = json_pack("{s:i, s:f}", "steps", 32, "gamma", 1.0);
  est_options o = {.n_samples = S, .seed = 5, .want_window = 1, .params = params};
  est_result r0, r1;
  assert_int_equal(est_sample(e, &p, &o, &r0, &err), 0);
  p.background = &bg;
  if (est_sample(e, &p, &o, &r1, &err)) fail_msg("%s", err.msg);
  json_t *d = json_object_get(r1.diagnostics, "background");
  assert_int_equal(json_integer_value(json_object_get(d, "members")), K);
  double d0 = tu_rmse_of_mean(r0.window_samples, S, (size_t)W * N, N, bm, NULL);
  double d1 = tu_rmse_of_mean(r1.window_samples, S, (size_t)W * N, N, bm, NULL);
  print_message("local-score: first state's mean to the background mean: %.3f with it, %.3f without\n", d1, d0);
  assert_true(d1 < 0.5 && d1 < 0.5 * d0);
  json_object_set_new(params, "warm_start", json_real(0.1));
  est_result r2;
  if (est_sample(e, &p, &o, &r2, &err)) fail_msg("%s", err.msg);
  assert_true(json_real_value(json_object_get(json_object_get(r2.diagnostics, "sampler"), "warm_start")) == 0.1);
  double d2 = tu_rmse_of_mean(r2.window_samples, S, (size_t)W * N, N, bm, NULL);
  print_message("local-score, warm start 0.1: first state's mean to the background mean: %.3f\n", d2);
  assert_true(d2 < 0.5 && d2 < 0.5 * d0);
  est_result_free(&r2);
  est_result_free(&r0);
  est_result_free(&r1);
  json_decref(params);
  free(y);
  obs_noise_free(&nz);
  obs_free(op);
  sim_free(s);
  est_free(e);
}

static void expect_refused(estimator *e, int N, int W, const char *says) {
  sim *s;
  obs_op *op;
  obs_noise nz;
  double *y;
  est_problem p;
  sb_error err = {0};
  problem_at(e, N, W, &s, &op, &nz, &y, &p);
  assert_int_not_equal(est_check_problem(e, &p, &err), 0);
  print_message("N = %d, W = %d: %s\n", N, W, err.msg);
  assert_non_null(strstr(err.msg, says));
  free(y);
  obs_noise_free(&nz);
  obs_free(op);
  sim_free(s);
}

/* What a model does not accept, each with a reason. */
static void test_ranges_refused_with_reason(void **state) {
  (void)state;
  estimator *e;
  sb_error err = {0};
  assert_int_equal(est_open(&e, model_path, NULL, 0, &err), 0);
  expect_refused(e, 32, 4, "needs a window of 5..256 observations, got 4");
  expect_refused(e, 32, 257, "got 257");
  expect_refused(e, 1024, 100, "more than the 65536");
  expect_refused(e, 6, 10, "8..1024 nodes, not l96-sakov with 6");
  est_free(e);
  /* est_open at an N: the estimator's default system becomes that N */
  assert_int_equal(est_open(&e, model_path, NULL, 48, &err), 0);
  assert_int_equal(e->sim->dim, 48);
  est_free(e);
  assert_int_not_equal(est_open(&e, model_path, NULL, 2000, &err), 0);
  assert_null(e);
  assert_int_not_equal(est_open(&e, model_path, "l96-sakov", 6, &err), 0);
  assert_non_null(strstr(err.msg, "8..1024"));
}

/* A local-score model file whose nodes have different normalizations is
 * refused: per-node values would not carry over to another N; so is one
 * whose run length is out of range. */
static void test_per_node_normalization_refused(void **state) {
  (void)state;
  model m;
  sb_error err;
  assert_int_equal(model_load(&m, model_path, &err), 0);
  assert_float_equal(m.mean[0], m.mean[7], 0);
  m.std[3] *= 1.5;
  char bad[600];
  snprintf(bad, sizeof bad, "%s/tiny-local-pernode.safetensors", tu_tmpdir());
  assert_int_equal(model_save(&m, 0, bad, &err), 0);
  model_free(&m);
  assert_int_not_equal(model_load(&m, bad, &err), 0);
  assert_non_null(strstr(err.msg, "one normalization for every node"));
  /* a run length outside 3..LOCAL_SCORE_MAX_RUN is refused with the range */
  const int Ls[2] = {2, LOCAL_SCORE_MAX_RUN + 1};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(model_load(&m, model_path, &err), 0);
    m.W = Ls[i];
    snprintf(bad, sizeof bad, "%s/tiny-local-run%d.safetensors", tu_tmpdir(), Ls[i]);
    assert_int_equal(model_save(&m, 0, bad, &err), 0);
    model_free(&m);
    assert_int_not_equal(model_load(&m, bad, &err), 0);
    print_message("run length %d: %s\n", Ls[i], err.msg);
    assert_non_null(strstr(err.msg, "run length, 3..64 states"));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_run_of_by_hand),
      cmocka_unit_test(test_assembly_synthetic),
      cmocka_unit_test(test_adjoints_are_transposes),
      cmocka_unit_test(test_vjp_finite_differences),
      cmocka_unit_test(test_vjp_with_cotangent_callback),
      cmocka_unit_test(test_threads_bit_identical),
      cmocka_unit_test(test_network_any_n),
      cmocka_unit_test(test_model_any_n_and_window),
      cmocka_unit_test(test_model_background),
      cmocka_unit_test(test_ranges_refused_with_reason),
      cmocka_unit_test(test_per_node_normalization_refused),
  };
  return cmocka_run_group_tests(tests, setup_model, NULL);
}
