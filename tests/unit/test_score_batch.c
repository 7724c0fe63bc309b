/* test_score_batch.c: dynamic batching (core/kinds/score/score_batch.h).
 * Calls on the shipped posterior-score model give bit-identical samples
 * alone (batching off) and run at the same time with batching on, with
 * different sample counts (so a call's rows sit at other places in the
 * packed chunks than alone), different step counts (so one pass mixes rows
 * at different tau) and different windows; and the merged passes did carry
 * several calls' rows at once. Packed chunks (score_batch_config.pack)
 * give samples within a stated bound of alone. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "catalog/catalog.h"
#include "kinds/score/score_batch.h"
#include "kinds/kinds.h"
#include "testutil.h"

void openblas_set_num_threads(int n);

#define MODEL "models/l96-sakov-w10-posterior-score.safetensors"
#define NCALLS 4

typedef struct call {
  estimator *e;
  est_problem p;
  double *truth;
  int S;
  json_t *params;
  uint64_t seed;
  est_result alone, together;
  int rc;
  sb_error err;
} call;

static void *run_together(void *arg) {
  call *c = arg;
  est_options o = {.n_samples = c->S, .seed = c->seed, .threads = 1, .params = c->params};
  c->rc = est_sample(c->e, &c->p, &o, &c->together, &c->err);
  return NULL;
}

/* Runs the calls at once with cfg; their samples must equal alone: bit for
 * bit (tol 0) or within tol (absolute, in the state's units). Returns the
 * largest difference. */
static double run_batched(call *calls, int n, const score_batch_config *cfg, score_batch_stats *delta, double tol) {
  score_batch_stats s0, s1;
  score_batch_configure(cfg);
  score_batch_get_stats(&s0);
  pthread_t th[NCALLS];
  for (int i = 0; i < n; i++) assert_int_equal(pthread_create(&th[i], NULL, run_together, &calls[i]), 0);
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  score_batch_get_stats(&s1);
  score_batch_configure(&(score_batch_config){0, 0, 1, 0});
  delta->passes = s1.passes - s0.passes, delta->requests = s1.requests - s0.requests, delta->rows = s1.rows - s0.rows;
  double worst = 0;
  for (int i = 0; i < n; i++) {
    if (calls[i].rc) fail_msg("call %d: %s", i, calls[i].err.msg);
    call *c = &calls[i];
    assert_int_equal(c->together.n_samples, c->alone.n_samples);
    size_t nv = (size_t)c->S * c->alone.dim;
    double md = 0;
    for (size_t k = 0; k < nv; k++) md = fmax(md, fabs(c->together.samples[k] - c->alone.samples[k]));
    if (tol == 0 && memcmp(c->together.samples, c->alone.samples, nv * sizeof(double)))
      fail_msg("call %d (S %d): batched samples differ from alone (max |diff| %g)", i, c->S, md);
    if (!(md <= tol)) fail_msg("call %d (S %d): batched samples differ from alone by %g > %g", i, c->S, md, tol);
    worst = fmax(worst, md);
    est_result_free(&c->together);
  }
  return worst;
}

static void test_same_samples(void **state) {
  (void)state;
  openblas_set_num_threads(1); /* as the daemon */
  sb_error err = {0};
  estimator *e;
  if (est_open(&e, MODEL, NULL, 0, &err)) fail_msg("%s", err.msg);
  static const int Ss[NCALLS] = {12, 7, 33, 20};
  static const char *params[NCALLS] = {"{}", "{\"steps\":8}", "{}", "{\"steps\":5}"};
  call calls[NCALLS];
  memset(calls, 0, sizeof calls);
  score_batch_configure(&(score_batch_config){0, 0, 1, 0}); /* alone: off */
  for (int i = 0; i < NCALLS; i++) {
    call *c = &calls[i];
    c->e = e, c->S = Ss[i], c->seed = 100 + (uint64_t)i;
    c->params = json_loads(params[i], 0, NULL);
    tu_truth_problem(e, "{\"type\":\"identity\"}", 1.0, e->window, 500 + 13 * i, 5, (uint64_t)i, &c->truth, &c->p);
    est_options o = {.n_samples = c->S, .seed = c->seed, .threads = 1, .params = c->params};
    if (est_sample(e, &c->p, &o, &c->alone, &err)) fail_msg("alone %d: %s", i, err.msg);
  }
  score_batch_stats d;
  /* a long wait: the calls gather, passes carry several calls' rows */
  run_batched(calls, NCALLS, &(score_batch_config){1024, 0.5, 2, 0}, &d, 0);
  print_message("max 1024 rows: %ld passes, %ld requests, %ld rows\n", d.passes, d.requests, d.rows);
  assert_true(d.passes > 0);
  assert_true(d.requests > d.passes); /* merged */
  /* a small maximum: calls split over passes in other groupings */
  run_batched(calls, NCALLS, &(score_batch_config){40, 0.5, 3, 0}, &d, 0);
  print_message("max 40 rows: %ld passes, %ld requests, %ld rows\n", d.passes, d.requests, d.rows);
  assert_true(d.rows <= 40 * d.passes + 33 * d.passes); /* one request over the max goes alone */
  /* no wait: whatever happens to be pending */
  run_batched(calls, NCALLS, &(score_batch_config){1024, 0, 1, 0}, &d, 0);
  assert_true(d.passes > 0);
  /* packed chunks: rows of several calls in one GEMM. OpenBLAS sums a
   * column in an order that depends on its place in the matrix, so the
   * samples equal alone only to float rounding, carried through the
   * sampler's steps: bound the difference (the state's std is 3.6; float
   * rounding of one evaluation is ~1e-6 of that). */
  double md = run_batched(calls, NCALLS, &(score_batch_config){1024, 0.5, 2, 1}, &d, 1e-3);
  print_message("packed: max |diff| %g over %ld passes, %ld requests\n", md, d.passes, d.requests);
  assert_true(d.requests > d.passes);
  for (int i = 0; i < NCALLS; i++) {
    est_result_free(&calls[i].alone);
    tu_problem_free(&calls[i].p);
    free(calls[i].truth);
    json_decref(calls[i].params);
  }
  est_free(e);
}

/* Batching is off by default and a join then returns NULL; a lone joined
 * call's request runs at once (every joined call is waiting: no wait for the
 * deadline) and gives the network's own output. */
typedef struct fixed_rows {
  int in, ns;
} fixed_rows;

static void fill_fixed(void *owner, int row, float *in, float *scal) {
  const fixed_rows *f = owner;
  for (int i = 0; i < f->in; i++) in[i] = (float)sin(0.1 * i + row);
  for (int k = 0; k < f->ns; k++) scal[k] = 0.25f + 0.1f * (float)row;
}

static void test_off_and_alone(void **state) {
  (void)state;
  openblas_set_num_threads(1);
  score_batch_config c;
  score_batch_get_config(&c);
  assert_int_equal(c.max_rows, 0);
  nn_model dummy;
  assert_null(score_batch_join(&dummy));
  model m;
  sb_error err = {0};
  assert_int_equal(model_load(&m, MODEL, &err), 0);
  score_batch_configure(&(score_batch_config){64, 30.0, 1, 0});
  score_batch *b = score_batch_join(&m.net);
  assert_non_null(b);
  fixed_rows f = {nn_in_size(&m.net), nn_n_scalars(&m.net)};
  const int out = nn_out_size(&m.net), R = 3;
  float *o = malloc(sizeof(float) * R * out), *want = malloc(sizeof(float) * R * out);
  float *in = malloc(sizeof(float) * R * f.in), *scal = malloc(sizeof(float) * R * 2);
  assert_true(o && want && in && scal);
  for (int r = 0; r < R; r++) fill_fixed(&f, r, in + (size_t)r * f.in, scal + (size_t)r * f.ns);
  nn_workspace ws;
  assert_int_equal(nn_workspace_init(&ws, &m.net, R, 0, &err), 0);
  assert_int_equal(nn_forward(&m.net, &ws, in, scal, R, want), 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  score_batch_req r = {.owner = &f, .fill = fill_fixed, .rows = R, .out = o};
  assert_int_equal(score_batch_run(b, &r, &err), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true((double)(t1.tv_sec - t0.tv_sec) < 20); /* not the 30 s deadline */
  assert_memory_equal(o, want, sizeof(float) * R * out);
  score_batch_leave(b);
  score_batch_configure(&(score_batch_config){0, 0, 1, 0});
  nn_workspace_free(&ws);
  free(o), free(want), free(in), free(scal);
  model_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_off_and_alone),
      cmocka_unit_test(test_same_samples),
  };
  return cmocka_run_group_tests_name("score_batch", tests, NULL, NULL);
}
