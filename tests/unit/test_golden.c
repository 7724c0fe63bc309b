/* test_golden.c: the redesign changed no bit of what sbida computes. For every
 * model kind, training a tiny config gives the very tensors the pre-redesign
 * build trained (tests/data/golden/README.md), and sampling its model, like
 * the three baselines, gives the same samples, densities and diagnostics, on
 * 1 and on 3 threads. Float results depend on OpenBLAS's kernel and thread
 * count, so bits are compared only where those match the golden data's.
 *
 * SBIDA_GOLDEN_WRITE=kind,kind,... rewrites those kinds' files from this
 * build instead of comparing them (only for a deliberate change of the
 * numerics, said in tests/data/golden/README.md; run it with the kernel and
 * threads of tests/data/golden/openblas_core, e.g. OPENBLAS_CORETYPE=Zen). */
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
#include "train/train.h"
#include "util/fileio.h"
#include "testutil.h"

#define GOLDEN "tests/data/golden/"
#define S 12

char *openblas_get_corename(void);
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
static int blas_default_threads; /* OpenBLAS's own thread count, as `sbida train` runs it */

/* 1: same sgemm kernel as the golden data, compare bits; 0: compare with a tolerance */
static int exact(void) {
  static int v = -1;
  if (v < 0) {
    unsigned char *want = NULL;
    size_t n = 0;
    sb_error err;
    char here[128];
    snprintf(here, sizeof here, "%s %d\n", openblas_get_corename(), blas_default_threads);
    v = !sb_read_file(GOLDEN "openblas_core", &want, &n, 256, &err) && n == strlen(here) && !memcmp(want, here, n);
    if (!v) print_message("OpenBLAS kernel and threads (%.*s) differ from the golden data's: comparing with a tolerance\n",
                          (int)strlen(here) - 1, here);
    free(want);
  }
  return v;
}

/* 1 when SBIDA_GOLDEN_WRITE names the golden file stem's kind */
static int rewriting(const char *kind) {
  const char *list = getenv("SBIDA_GOLDEN_WRITE");
  size_t n = strlen(kind);
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && !strncmp(p, kind, n)) return 1;
    p = end ? end + 1 : p + len;
  }
  return 0;
}

static void write_or_fail(const char *path, const void *buf, size_t n) {
  sb_error err = {0};
  if (sb_write_file(path, buf, n, &err)) fail_msg("%s: %s", path, err.msg);
  print_message("rewrote %s\n", path);
}

static void same_doubles(const double *a, const double *b, size_t n, const char *what) {
  if (exact()) {
    if (memcmp(a, b, n * sizeof(double))) fail_msg("%s differ from the golden data", what);
  } else if (tu_max_scaled_err(a, b, n, 1e-3, 1e-3) > 1) {
    fail_msg("%s differ from the golden data beyond the tolerance", what);
  }
}

/* The problem of the golden program: one simulated window, its operator and noise. */
typedef struct golden_problem {
  obs_op *op;
  obs_noise nz;
  double *y;
  est_problem p;
} golden_problem;

static void problem_init(golden_problem *g, estimator *e) {
  sb_error err = {0};
  memset(g, 0, sizeof *g);
  int window = e->window > 0 ? e->window : 10;
  long t = e->sim->stationary ? window - 1 : 500;
  if (e->fixed_op) {
    json_t *j = obs_to_json(e->fixed_op);
    assert_int_equal(obs_from_json(&g->op, j, e->sim->channels, e->sim->height, e->sim->width, &err), 0);
    json_decref(j);
  } else {
    assert_int_equal(obs_from_string(&g->op, "{\"type\":\"subsample\",\"stride\":2}", e->sim->channels,
                                     e->sim->height, e->sim->width, &err), 0);
  }
  if (e->fixed_noise) {
    json_t *j = obs_noise_to_json(e->fixed_noise);
    assert_int_equal(obs_noise_from_json(&g->nz, j, g->op->n_obs, &err), 0);
    json_decref(j);
  } else {
    assert_int_equal(obs_noise_scalar(&g->nz, 1.0, g->op->n_obs, &err), 0);
  }
  double *x = malloc(sizeof(double) * e->sim->dim);
  g->y = malloc(sizeof(double) * (size_t)window * g->op->n_obs);
  assert_int_equal(sim_sample_at(e->sim, x, 1, t - window + 1, 42, 0, &err), 0);
  for (int w = 0; w < window; w++) {
    if (w) assert_int_equal(e->sim->advance(e->sim, x, 1, 1, &err), 0);
    obs_apply(g->op, x, g->y + (size_t)w * g->op->n_obs, 1);
  }
  obs_add_noise(&g->nz, g->y, window, 43, 0);
  g->y[3] = NAN;
  g->p = (est_problem){e->sim, g->op, &g->nz, window, t, g->y, NULL};
  free(x);
}

static void problem_free(golden_problem *g) {
  obs_free(g->op);
  obs_noise_free(&g->nz);
  free(g->y);
}

static void check_sampling(const char *spec, const char *preset, const char *name, int rewrite) {
  sb_error err = {0};
  openblas_set_num_threads(1); /* as the golden program, sbida eval and the daemon sample */
  estimator *e;
  if (est_open(&e, spec, preset, 0, &err)) fail_msg("%s: %s", spec, err.msg);
  golden_problem g;
  problem_init(&g, e);
  char path[256];
  unsigned char *want = NULL, *want_diag = NULL;
  size_t n_want = 0, n_diag = 0;
  snprintf(path, sizeof path, GOLDEN "%s.samples", name);
  assert_int_equal(sb_read_file(path, &want, &n_want, 1 << 20, &err), 0);
  snprintf(path, sizeof path, GOLDEN "%s.diag", name);
  assert_int_equal(sb_read_file(path, &want_diag, &n_diag, 1 << 20, &err), 0);
  for (int threads = 1; threads <= 3; threads += 2) {
    est_options o = {.n_samples = S, .seed = 7, .threads = threads, .want_window = e->has_window};
    est_result r;
    if (est_sample(e, &g.p, &o, &r, &err)) fail_msg("%s: %s", name, err.msg);
    size_t ns = (size_t)S * r.dim, nw = r.window_samples ? ns * r.window : 0, nd = r.log_density ? S : 0;
    if (rewrite && threads == 1) { /* the 3-thread draw below must then equal it */
      free(want);
      n_want = sizeof(double) * (ns + nw + nd);
      want = malloc(n_want);
      memcpy(want, r.samples, sizeof(double) * ns);
      if (nw) memcpy(want + sizeof(double) * ns, r.window_samples, sizeof(double) * nw);
      if (nd) memcpy(want + sizeof(double) * (ns + nw), r.log_density, sizeof(double) * nd);
      snprintf(path, sizeof path, GOLDEN "%s.samples", name);
      write_or_fail(path, want, n_want);
    }
    assert_int_equal(n_want, sizeof(double) * (ns + nw + nd));
    const double *w = (const double *)want;
    same_doubles(r.samples, w, ns, name);
    if (nw) same_doubles(r.window_samples, w + ns, nw, name);
    if (nd) same_doubles(r.log_density, w + ns + nw, nd, name);
    /* diagnostics added after the golden build, each tested where it is made:
     * dynamics_residual (session 13; test_score, test_local_score) */
    json_object_del(r.diagnostics, "dynamics_residual");
    char *d = json_dumps(r.diagnostics, JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (rewrite && threads == 1) {
      free(want_diag);
      size_t nd2 = strlen(d) + 2;
      want_diag = malloc(nd2);
      snprintf((char *)want_diag, nd2, "%s\n", d);
      snprintf(path, sizeof path, GOLDEN "%s.diag", name);
      write_or_fail(path, want_diag, strlen((char *)want_diag));
    }
    if (exact() && strncmp(d, (char *)want_diag, strlen(d))) fail_msg("%s: diagnostics %s, golden %s", name, d, want_diag);
    free(d);
    if (e->log_prob) {
      double lp[S];
      unsigned char *want_lp = NULL;
      size_t n_lp = 0;
      assert_int_equal(e->log_prob(e, &g.p, &o, r.samples, S, lp, &err), 0);
      snprintf(path, sizeof path, GOLDEN "%s.logprob", name);
      if (rewrite && threads == 1) write_or_fail(path, lp, sizeof lp);
      assert_int_equal(sb_read_file(path, &want_lp, &n_lp, 1 << 20, &err), 0);
      assert_int_equal(n_lp, sizeof lp);
      same_doubles(lp, (const double *)want_lp, S, name);
      free(want_lp);
    }
    est_result_free(&r);
  }
  free(want);
  free(want_diag);
  problem_free(&g);
  est_free(e);
}

static void check_training(const char *kind) {
  char cfg_path[256], golden[256], out[512];
  snprintf(cfg_path, sizeof cfg_path, GOLDEN "tiny-%s.json", kind);
  snprintf(golden, sizeof golden, GOLDEN "tiny-%s.safetensors", kind);
  snprintf(out, sizeof out, "%s/golden-%s.safetensors", tu_tmpdir(), kind);
  openblas_set_num_threads(blas_default_threads);
  tu_train(tu_load_json(cfg_path), out);
  model a, b;
  sb_error err;
  if (rewriting(kind)) {
    unsigned char *buf = NULL;
    size_t n = 0;
    assert_int_equal(sb_read_file(out, &buf, &n, 1 << 30, &err), 0);
    write_or_fail(golden, buf, n);
    free(buf);
  }
  assert_int_equal(model_load(&a, golden, &err), 0);
  assert_int_equal(model_load(&b, out, &err), 0);
  assert_ptr_equal(a.kind, b.kind);
  assert_int_equal(a.net.n_params, b.net.n_params);
  if (exact()) {
    assert_memory_equal(a.net.params, b.net.params, sizeof(float) * a.net.n_params);
    assert_memory_equal(a.mean, b.mean, sizeof(double) * a.N);
    assert_memory_equal(a.std, b.std, sizeof(double) * a.N);
  }
  model_free(&a);
  model_free(&b);
}

/* state: the kind's name; its golden files are tiny-<kind>.* */
static void test_kind(void **state) {
  const char *kind = *state;
  char path[256], name[64];
  check_training(kind);
  snprintf(name, sizeof name, "tiny-%s", kind);
  snprintf(path, sizeof path, GOLDEN "%s.safetensors", name);
  check_sampling(path, NULL, name, rewriting(kind));
}

static void test_baselines(void **state) {
  (void)state;
  check_sampling("etkf", "l96-thesis", "etkf-l96-thesis", rewriting("etkf"));
  check_sampling("letkf", "l96-thesis", "letkf-l96-thesis", rewriting("letkf"));
  check_sampling("pf", "l96-thesis", "pf-l96-thesis", rewriting("pf"));
}

int main(void) {
  blas_default_threads = openblas_get_num_threads();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_kind, "posterior-score"), cmocka_unit_test_prestate(test_kind, "composed-score"),
      cmocka_unit_test_prestate(test_kind, "npe"),             cmocka_unit_test_prestate(test_kind, "nre"),
      cmocka_unit_test(test_baselines),
  };
  return cmocka_run_group_tests_name("golden", tests, NULL, NULL);
}
