/* test_eval.c: the evaluation loop: reproduction of the windowed-ETKF
 * reference, determinism for any thread count, a test set independent of the
 * estimator. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "eval/eval.h"
#include "util/rng.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

typedef struct setup {
  estimator *e;
  obs_op *op;
  obs_noise nz;
  eval_cases cs;
} setup;

static void setup_open(setup *s, const char *spec, const char *preset, int N, const char *op, double sd, int W, int C,
                       long t_lo, long t_hi, uint64_t seed) {
  sb_error err;
  memset(s, 0, sizeof *s);
  if (est_open(&s->e, spec, preset, N, &err)) fail_msg("%s", err.msg);
  if (obs_from_string(&s->op, op, 1, 1, s->e->sim->dim, &err)) fail_msg("%s", err.msg);
  assert_int_equal(obs_noise_scalar(&s->nz, sd, s->op->n_obs, &err), 0);
  if (eval_make_cases(&s->cs, s->e->sim, s->op, &s->nz, W, C, t_lo, t_hi, seed, &err)) fail_msg("%s", err.msg);
}

static void setup_close(setup *s) {
  eval_cases_free(&s->cs);
  obs_noise_free(&s->nz);
  obs_free(s->op);
  est_free(s->e);
}

static double run(setup *s, const char *params, int S, int threads, eval_summary *sum) {
  json_error_t je;
  json_t *pj = params ? json_loads(params, 0, &je) : NULL;
  eval_config cfg = {.n_samples = S, .threads = threads, .seed = 1, .params = pj};
  sb_error err;
  if (eval_run(s->e, &s->cs, s->op, &s->nz, &cfg, sum, &err)) fail_msg("%s", err.msg);
  json_decref(pj);
  return sum->rmse;
}

/* tests/data/reference/windowed_etkf_l96.json at W = 10 (the full table is
 * tests/eval/windowed_etkf_table.sh). Sanitized builds run 40 windows and
 * only check the ballpark. */
static void test_windowed_etkf_reference(void **state) {
  (void)state;
  json_error_t je;
  json_t *ref = json_load_file("tests/data/reference/windowed_etkf_l96.json", 0, &je);
  if (!ref) fail_msg("cannot read the reference (run from the repository root): %s", je.text);
  const char *names[2] = {"full_s1", "half_s1.5"};
  const char *ops[2] = {"{\"type\":\"identity\"}", "{\"type\":\"subsample\",\"stride\":2,\"offset\":0}"};
  const char *params[2] = {"{\"inflation\":1.02}", "{\"inflation\":1.04}"};
  double sds[2] = {1.0, 1.5};
  int C = SANITIZED ? 40 : 300;
  double tol = SANITIZED ? 0.25 : 0.07;
  for (int k = 0; k < 2; k++) {
    setup s;
    setup_open(&s, "etkf", "l96-sakov", 40, ops[k], sds[k], 10, C, 9, 9, 1);
    eval_summary sum;
    run(&s, params[k], 100, 2, &sum);
    json_t *row = json_object_get(json_object_get(json_object_get(ref, "table"), names[k]), "10");
    double rr = json_number_value(json_object_get(row, "rmse")), rs = json_number_value(json_object_get(row, "spread"));
    print_message("%s W=10: rmse %.3f (reference %.3f, %+.1f%%), spread %.3f (reference %.3f), %.1f s\n", names[k],
                  sum.rmse, rr, 100 * (sum.rmse / rr - 1), sum.spread, rs, sum.seconds);
    assert_true(fabs(sum.rmse / rr - 1) < tol);
    assert_true(fabs(sum.spread / rs - 1) < tol);
    eval_summary_free(&sum);
    setup_close(&s);
  }
  json_decref(ref);
}

static void assert_same_summary(const eval_summary *a, const eval_summary *b) {
  assert_true(a->rmse == b->rmse && a->spread == b->spread && a->crps == b->crps && a->rank_p == b->rank_p);
  assert_memory_equal(a->coverage, b->coverage, sizeof a->coverage);
  assert_memory_equal(a->rank_hist, b->rank_hist, sizeof(long) * (a->n_samples + 1));
  assert_memory_equal(a->ex_mean, b->ex_mean, sizeof(double) * a->dim);
  char *da = json_dumps(a->diagnostics, JSON_SORT_KEYS), *db = json_dumps(b->diagnostics, JSON_SORT_KEYS);
  assert_string_equal(da, db);
  free(da);
  free(db);
}

/* The summary's RMSE, spread and CRPS recomputed here from the estimator's
 * own samples, case by case (documented protocol: seed eval_case_seed(seed,
 * c), truth = last window state), with textbook formulas: spread from the
 * S - 1 variance, CRPS = E|X - x*| - E|X - X'|/2 over all sample pairs.
 * Tolerance 1e-12 relative: the same sums in another order. */
static void check_summary_values(setup *s, const char *params, int S, const eval_summary *sum) {
  json_t *pj = params ? json_loads(params, 0, NULL) : NULL;
  int C = s->cs.n_cases, W = s->cs.window, n = s->cs.dim, p = s->cs.n_obs;
  double rmse = 0, spread = 0, crps = 0;
  long ranks = 0;
  for (int c = 0; c < C; c++) {
    est_problem pr = {.sim = s->e->sim, .op = s->op, .noise = &s->nz, .window = W, .time_index = s->cs.t[c],
                      .y = s->cs.y + (size_t)c * W * p};
    est_options o = {.n_samples = S, .seed = eval_case_seed(1, c), .threads = 1, .params = pj};
    est_result r;
    sb_error err;
    if (est_sample(s->e, &pr, &o, &r, &err)) fail_msg("%s", err.msg);
    const double *truth = s->cs.truth + ((size_t)c * W + W - 1) * n;
    double se = 0, var = 0, cr = 0;
    for (int i = 0; i < n; i++) {
      double m = 0, v = 0, e1 = 0, e2 = 0;
      for (int a = 0; a < S; a++) m += r.samples[a * n + i] / S;
      for (int a = 0; a < S; a++) {
        double xa = r.samples[a * n + i];
        v += (xa - m) * (xa - m) / (S - 1);
        e1 += fabs(xa - truth[i]) / S;
        for (int b = 0; b < S; b++) e2 += fabs(xa - r.samples[b * n + i]) / ((double)S * S);
      }
      se += (m - truth[i]) * (m - truth[i]);
      var += v;
      cr += e1 - 0.5 * e2;
    }
    rmse += sqrt(se / n) / C;
    spread += sqrt(var / n) / C;
    crps += cr / n / C;
    est_result_free(&r);
  }
  for (int k = 0; k <= S; k++) ranks += sum->rank_hist[k];
  print_message("%s: rmse %.6f (by hand %.6f), spread %.6f (%.6f), crps %.6f (%.6f)\n", s->e->kind, sum->rmse, rmse,
                sum->spread, spread, sum->crps, crps);
  assert_true(fabs(sum->rmse - rmse) < 1e-12 * rmse);
  assert_true(fabs(sum->spread - spread) < 1e-12 * spread);
  assert_true(fabs(sum->crps - crps) < 1e-12 * crps);
  assert_true(ranks == (long)C * n); /* one rank per component and case */
  assert_true(fabs(sum->spread_skill - spread / rmse) < 1e-12 * spread / rmse);
  json_decref(pj);
}

static void test_thread_count_invariance(void **state) {
  (void)state;
  const char *specs[3] = {"etkf", "letkf", "pf"};
  const char *params[3] = {NULL, "{\"radius\":6}", "{\"particles\":200,\"jitter\":0.05}"};
  for (int k = 0; k < 3; k++) {
    setup s;
    setup_open(&s, specs[k], "l96-thesis", 16, "{\"type\":\"subsample\",\"stride\":2}", 0.5, 4, 9, 10, 200, 5);
    eval_summary a, b;
    run(&s, params[k], 20, 1, &a);
    run(&s, params[k], 20, 3, &b);
    assert_same_summary(&a, &b);
    assert_true(a.rmse > 0 && isfinite(a.crps));
    check_summary_values(&s, params[k], 20, &a);
    if (k == 2) assert_non_null(json_object_get(a.diagnostics, "ess_final"));
    eval_summary_free(&a);
    eval_summary_free(&b);
    setup_close(&s);
  }
}

/* --first-case: a test set made from case F on holds cases F..F+C-1 of the
 * set made from 0 (truth, observations, time indices), and each case's
 * estimator seed is that case's, so a split evaluation scores every case
 * exactly as one run does (per-case RMSE equal bit for bit; the pf draws its
 * particles from the seed, so a wrong seed changes them). */
static void test_first_case_splits(void **state) {
  (void)state;
  setup a, b;
  setup_open(&a, "pf", "l96-thesis", 16, "{\"type\":\"identity\"}", 0.5, 3, 5, 10, 500, 7);
  setup_open(&b, "pf", "l96-thesis", 16, "{\"type\":\"identity\"}", 0.5, 3, 1, 10, 500, 7);
  eval_cases_free(&b.cs);
  sb_error err;
  assert_int_equal(eval_make_cases_at(&b.cs, b.e->sim, b.op, &b.nz, 3, 3, 2, 10, 500, 7, &err), 0);
  size_t per = (size_t)3 * 16;
  assert_memory_equal(b.cs.truth, a.cs.truth + 2 * per, 3 * per * sizeof(double));
  assert_memory_equal(b.cs.y, a.cs.y + 2 * per, 3 * per * sizeof(double));
  assert_memory_equal(b.cs.t, a.cs.t + 2, 3 * sizeof(long));
  eval_summary sa, sb;
  run(&a, "{\"particles\":100}", 16, 1, &sa);
  run(&b, "{\"particles\":100}", 16, 2, &sb);
  for (int c = 0; c < 3; c++) assert_true(sb.ex_rmse_by_case[c] == sa.ex_rmse_by_case[2 + c]);
  assert_true(sa.ex_rmse_by_case[2] != sa.ex_rmse_by_case[3]);
  eval_summary_free(&sa);
  eval_summary_free(&sb);
  eval_cases cs;
  assert_int_equal(eval_make_cases_at(&cs, a.e->sim, a.op, &a.nz, 3, 2, -1, 10, 500, 7, &err), SB_ERANGE);
  assert_int_equal(eval_make_cases_at(&cs, a.e->sim, a.op, &a.nz, 3, 2, (long)1 << 38, 10, 500, 7, &err), SB_ERANGE);
  setup_close(&a);
  setup_close(&b);
}

/* A case whose sampler ran again (score_net_diff_sample's dynamics fallback)
 * is named in the summary by its index in the seed's set, with the gamma that
 * ran, whichever case it is (case 0's diagnostics alone would hide it): the
 * estimator is wrapped to report retries on two chosen cases (found by their
 * time index), in a set that starts at case 4. */
static long retried_t[2];
static int (*inner_sample)(estimator *, const est_problem *, const est_options *, est_result *, sb_error *);

static int retrying_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  int rc = inner_sample(e, p, o, r, err);
  if (rc) return rc;
  int hit = p->time_index == retried_t[0] || p->time_index == retried_t[1];
  json_t *d = hit ? json_pack("{s:f, s:f, s:[{s:f, s:s}]}", "q", 1e-4, "gamma", 0.3, "retries", "gamma", 0.1, "error",
                              "sampler produced a non-finite value")
                  : json_pack("{s:f, s:f}", "q", 1e-4, "gamma", 0.1);
  json_object_set_new(r->diagnostics, "dynamics", d);
  return SB_OK;
}

static void test_retried_cases_named(void **state) {
  (void)state;
  setup a;
  setup_open(&a, "etkf", "l96-sakov", 8, "{\"type\":\"identity\"}", 1.0, 3, 1, 10, 500, 7);
  eval_cases_free(&a.cs);
  sb_error err;
  assert_int_equal(eval_make_cases_at(&a.cs, a.e->sim, a.op, &a.nz, 3, 5, 4, 10, 500, 7, &err), 0);
  retried_t[0] = a.cs.t[1], retried_t[1] = a.cs.t[3];
  assert_true(a.cs.t[1] != a.cs.t[3] && a.cs.t[0] != a.cs.t[1] && a.cs.t[0] != a.cs.t[3]);
  inner_sample = a.e->sample;
  a.e->sample = retrying_sample;
  for (int threads = 1; threads <= 2; threads++) {
    eval_summary sum;
    run(&a, NULL, 8, threads, &sum);
    const json_t *rt = json_object_get(sum.diagnostics, "dynamics_retried");
    assert_int_equal(json_array_size(rt), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rt, 0), "case")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rt, 1), "case")), 7);
    assert_true(json_number_value(json_object_get(json_array_get(rt, 1), "dynamics_gamma")) == 0.3);
    eval_summary_free(&sum);
  }
  retried_t[0] = retried_t[1] = -1; /* none retried: no entry */
  eval_summary sum;
  run(&a, NULL, 8, 1, &sum);
  assert_null(json_object_get(sum.diagnostics, "dynamics_retried"));
  eval_summary_free(&sum);
  a.e->sample = inner_sample;
  setup_close(&a);
}

static void test_cases_independent_of_estimator(void **state) {
  (void)state;
  setup a, b, c;
  setup_open(&a, "etkf", "l96-thesis", 16, "{\"type\":\"identity\"}", 0.5, 3, 5, 10, 500, 7);
  setup_open(&b, "pf", "l96-thesis", 16, "{\"type\":\"identity\"}", 0.5, 3, 5, 10, 500, 7);
  setup_open(&c, "pf", "l96-thesis", 16, "{\"type\":\"identity\"}", 0.5, 3, 5, 10, 500, 8);
  size_t nt = (size_t)5 * 3 * 16;
  assert_memory_equal(a.cs.truth, b.cs.truth, nt * sizeof(double));
  assert_memory_equal(a.cs.y, b.cs.y, nt * sizeof(double));
  assert_memory_equal(a.cs.t, b.cs.t, 5 * sizeof(long));
  assert_true(memcmp(a.cs.truth, c.cs.truth, nt * sizeof(double)) != 0);
  for (int i = 0; i < 5; i++) assert_true(a.cs.t[i] >= 10 && a.cs.t[i] <= 500);
  /* observations are truth + noise of the right size */
  double ss = 0;
  for (size_t i = 0; i < nt; i++) ss += (a.cs.y[i] - a.cs.truth[i]) * (a.cs.y[i] - a.cs.truth[i]);
  assert_true(fabs(sqrt(ss / nt) - 0.5) < 0.1);
  setup_close(&a);
  setup_close(&b);
  setup_close(&c);
  /* bad time ranges are refused */
  setup d;
  setup_open(&d, "etkf", "l96-thesis", 16, "{\"type\":\"identity\"}", 0.5, 3, 2, 10, 10, 1);
  eval_cases cs;
  sb_error err;
  assert_int_equal(eval_make_cases(&cs, d.e->sim, d.op, &d.nz, 3, 2, 1, 10, 1, &err), SB_ERANGE);
  assert_int_equal(eval_make_cases(&cs, d.e->sim, d.op, &d.nz, 3, 2, 10, 2000, 1, &err), SB_ERANGE);
  setup_close(&d);
}

static void test_svg_documents(void **state) {
  (void)state;
  setup s;
  setup_open(&s, "etkf", "l96-sakov", 12, "{\"type\":\"stations\",\"indices\":[0,5,7]}", 1.0, 3, 4, 2, 2, 1);
  eval_summary sum;
  run(&s, NULL, 10, 1, &sum);
  char *docs[3] = {eval_svg_coverage(&sum, "a <b> & c"), eval_svg_ranks(&sum, "t"), eval_svg_example(&sum, s.op, "t")};
  for (int i = 0; i < 3; i++) {
    assert_non_null(docs[i]);
    assert_true(strncmp(docs[i], "<?xml", 5) == 0);
    assert_non_null(strstr(docs[i], "</svg>\n"));
    assert_null(strstr(docs[i], "nan"));
    free(docs[i]);
  }
  eval_summary_free(&sum);
  setup_close(&s);
}

// ----------------------------------------------------------------------------
// A mock estimator with a known, exactly calibrated answer: under a flat
// prior and identity observations the posterior of x_t is N(y_t, sd^2 I), and
// x_t - y_t ~ N(0, sd^2 I) holds for every truth, so the evaluator must report
// calibrated coverage (marginal and HPD). `shrink` < 1 makes it over-confident.

static double mock_shrink = 1.0;

static double mock_logq(const est_problem *p, const double *x) {
  int n = p->sim->dim;
  const double *y = p->y + (size_t)(p->window - 1) * n;
  double lq = 0;
  for (int i = 0; i < n; i++) {
    double sd = p->noise->std[i] * mock_shrink, z = (x[i] - y[i]) / sd;
    lq += -0.5 * z * z - log(sd) - 0.5 * log(2 * M_PI);
  }
  return lq;
}

static int mock_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  (void)e;
  int n = p->sim->dim, S = o->n_samples;
  int rc = est_result_alloc(r, S, n, p->window, 0, 1, err);
  if (rc) return rc;
  const double *y = p->y + (size_t)(p->window - 1) * n;
  for (int s = 0; s < S; s++) {
    rng g;
    rng_init(&g, o->seed, (uint64_t)s);
    for (int i = 0; i < n; i++) r->samples[s * n + i] = y[i] + mock_shrink * p->noise->std[i] * rng_normal(&g);
    r->log_density[s] = mock_logq(p, r->samples + s * n);
  }
  return SB_OK;
}

static int mock_log_prob(estimator *e, const est_problem *p, const est_options *o, const double *x, int n,
                         double *out, sb_error *err) {
  (void)e;
  (void)o;
  (void)err;
  for (int k = 0; k < n; k++) out[k] = mock_logq(p, x + (size_t)k * p->sim->dim);
  return SB_OK;
}

/* Expected HPD coverage of the mock with std factor k in n = 20 dimensions
 * (written out here, independent of eval_run.c): with D* = |x* - y|^2 /
 * (k sd)^2 = X / k^2, X ~ chi2_20, and each sample's D_s ~ chi2_20, a sample
 * has log q >= log q(x*) iff D_s <= D*, so the truth's level is
 * Binomial(S, F(X / k^2)) / S, F the chi2_20 CDF
 * 1 - e^{-x/2} sum_{j<10} (x/2)^j / j!; coverage(a) = P(level <= a), averaged
 * over X (trapezoid rule on [0, 150], 6000 steps). */
static double chi2_20_cdf(double x) {
  double t = 1, s = 0;
  for (int j = 0; j < 10; j++) s += t, t *= 0.5 * x / (j + 1);
  double f = 1 - exp(-0.5 * x) * s; /* clamp the rounding near 0 */
  return f < 0 ? 0 : f > 1 ? 1 : f;
}

static double expected_hpd(double k, int S, double a) {
  double acc = 0, h = 150.0 / 6000;
  int kmax = (int)floor(a * S + 1e-9);
  for (int j = 1; j <= 6000; j++) {
    double x = j * h, dens = exp(9 * log(x) - 0.5 * x - 10 * log(2.0) - lgamma(10.0)) * h * (j == 6000 ? 0.5 : 1);
    double q = chi2_20_cdf(x / (k * k)), cdf = 0;
    for (int r = 0; r <= kmax; r++) {
      double lp = lgamma(S + 1.0) - lgamma(r + 1.0) - lgamma(S - r + 1.0);
      cdf += r == 0 ? pow(1 - q, S) : exp(lp + r * log(q) + (S - r) * log1p(-q));
    }
    acc += dens * cdf;
  }
  return acc;
}

static void test_known_answer_end_to_end(void **state) {
  (void)state;
  setup s;
  setup_open(&s, "etkf", "l96-sakov", 20, "{\"type\":\"identity\"}", 0.7, 2, 150, 1, 1, 3);
  estimator *mock = calloc(1, sizeof *mock);
  snprintf(mock->name, sizeof mock->name, "mock");
  snprintf(mock->kind, sizeof mock->kind, "mock");
  sb_error err;
  assert_int_equal(sim_create(&mock->sim, "l96-sakov", 20, &err), 0);
  mock->has_density = 1;
  mock->sample = mock_sample;
  mock->log_prob = mock_log_prob;
  double shrinks[3] = {1.0, 0.6, 1.6};
  for (int k = 0; k < 3; k++) {
    mock_shrink = shrinks[k];
    eval_summary sum;
    eval_config cfg = {.n_samples = 40, .threads = 2, .seed = 9};
    if (eval_run(mock, &s.cs, s.op, &s.nz, &cfg, &sum, &err)) fail_msg("%s", err.msg);
    assert_true(sum.has_hpd);
    double hpd_err = 0;
    for (int i = 0; i < EVAL_N_LEVELS; i++) hpd_err = fmax(hpd_err, fabs(sum.hpd_coverage[i] - eval_level(i)));
    print_message("mock x%.1f: coverage err %.3f, rank p %.3g, hpd err %.3f, spread/skill %.3f\n", mock_shrink,
                  sum.coverage_max_abs_error, sum.rank_p, hpd_err, sum.spread_skill);
    if (k == 0) {
      assert_true(sum.coverage_max_abs_error < 0.03);
      assert_true(sum.rank_p > 1e-3);
      assert_true(hpd_err < 0.12); /* 150 cases: binomial noise ~0.04 */
      assert_true(fabs(sum.spread_skill - 1) < 0.1);
    } else {
      assert_true(sum.coverage_max_abs_error > 0.15);
      assert_true(sum.rank_p < 1e-6);
      assert_true(hpd_err > 0.3);
    }
    /* HPD coverage against its exact expectation, and its direction: too
     * narrow (0.6) puts the truth in the tails (level near 1, coverage below
     * alpha), too wide (1.6) near the mode (coverage above alpha); a
     * flipped level comparison swaps them. Tolerance 0.13: about 3 binomial
     * standard errors of 150 cases (<= 0.041). Marginal coverage likewise
     * below (over-confident) or above (under-confident) alpha at every level
     * from 0.2 on (tolerance 0.02: it is averaged over 3000 components). */
    double hpd_exp_err = 0;
    for (int i = 0; i < EVAL_N_LEVELS; i++) {
      double a = eval_level(i), want = expected_hpd(mock_shrink, 40, a);
      double e = fabs(sum.hpd_coverage[i] - want);
      if (!(e <= hpd_exp_err)) hpd_exp_err = e; /* NaN fails */
      if (k == 1 && a >= 0.2) assert_true(sum.hpd_coverage[i] < a - 0.1 && sum.coverage[i] < a - 0.02);
      if (k == 2 && a >= 0.2 && a <= 0.9) assert_true(sum.hpd_coverage[i] > a + 0.05 && sum.coverage[i] > a + 0.02);
    }
    print_message("  hpd: max |coverage - exact expectation| %.3f\n", hpd_exp_err);
    assert_true(hpd_exp_err < 0.13);
    char *doc = eval_svg_coverage(&sum, "mock");
    assert_non_null(strstr(doc, "HPD"));
    free(doc);
    eval_summary_free(&sum);
  }
  est_free(mock);
  setup_close(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cases_independent_of_estimator),
      cmocka_unit_test(test_first_case_splits),
      cmocka_unit_test(test_retried_cases_named),
      cmocka_unit_test(test_thread_count_invariance),
      cmocka_unit_test(test_svg_documents),
      cmocka_unit_test(test_known_answer_end_to_end),
      cmocka_unit_test(test_windowed_etkf_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
