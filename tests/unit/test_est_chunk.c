/* A window answered in chunks (est_chunk.h, params "chunk"), checked with
 * the ETKF (it takes a background and is cheap):
 * - the chunked call equals the cycle written out by hand, bit for bit: each
 *   chunk's rows, time index, seed and background (the previous chunk's
 *   samples advanced ONE step) as documented; a slicing, timing or seeding
 *   error changes the samples;
 * - it is a filter: l96-sakov N = 40, every node sigma = 1, W = 50 in chunks
 *   of 1 (the cycled ETKF over the window) is far better than the last row
 *   alone from climatology, and no worse than the 50-row windowed ETKF;
 * - the layout (the first chunk takes the rows left over, merged into the
 *   next when the estimator needs more) and the refusals: no background
 *   (pf), one sample, a chunk that is not an integer, a chunk the estimator
 *   cannot answer. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "catalog/catalog.h"
#include "est/est_chunk.h"

typedef struct fix {
  estimator *e;
  obs_op *op;
  obs_noise nz;
  int W;
  double *x, *y; /* truth [W][40], observations [W][40] */
} fix;

static void fix_open(fix *f, int W, uint64_t seed) {
  sb_error err;
  memset(f, 0, sizeof *f);
  f->W = W;
  assert_int_equal(est_open(&f->e, "etkf", "l96-sakov", 40, &err), 0);
  assert_int_equal(obs_from_string(&f->op, "{\"type\":\"identity\"}", 1, 1, 40, &err), 0);
  assert_int_equal(obs_noise_scalar(&f->nz, 1.0, 40, &err), 0);
  f->x = malloc(sizeof(double) * 40 * (size_t)W);
  f->y = malloc(sizeof(double) * 40 * (size_t)W);
  const sim *s = f->e->sim;
  assert_int_equal(s->init(s, f->x, 1, seed, 1u << 20, &err), 0);
  for (int t = 1; t < W; t++) {
    memcpy(f->x + (size_t)t * 40, f->x + (size_t)(t - 1) * 40, sizeof(double) * 40);
    assert_int_equal(s->advance(s, f->x + (size_t)t * 40, 1, 1, &err), 0);
  }
  obs_apply(f->op, f->x, f->y, (size_t)W);
  obs_add_noise(&f->nz, f->y, (size_t)W, seed, 1u << 21);
}

static void fix_close(fix *f) {
  est_free(f->e);
  obs_free(f->op);
  obs_noise_free(&f->nz);
  free(f->x);
  free(f->y);
}

static double rmse_of_mean(const double *s, int S, const double *truth) {
  double se = 0;
  for (int n = 0; n < 40; n++) {
    double m = 0;
    for (int k = 0; k < S; k++) m += s[(size_t)k * 40 + n];
    m /= S;
    se += (m - truth[n]) * (m - truth[n]);
  }
  return sqrt(se / 40);
}

/* W = 12 in chunks of 5: rows 0..1, 2..6, 7..11, by hand against the call */
static void test_chunk_equals_hand_cycle(void **state) {
  (void)state;
  sb_error err;
  fix f;
  fix_open(&f, 12, 3);
  const int S = 16;
  json_t *pc = json_pack("{s:f, s:i}", "inflation", 1.02, "chunk", 5), *pp = json_pack("{s:f}", "inflation", 1.02);
  est_problem p = {f.e->sim, f.op, &f.nz, 12, 11, f.y, NULL};
  est_options o = {.n_samples = S, .seed = 77, .params = pc, .want_window = 1};
  est_result r;
  assert_int_equal(est_sample(f.e, &p, &o, &r, &err), 0);
  assert_non_null(r.window_samples);
  json_t *ch = json_object_get(r.diagnostics, "chunked");
  assert_int_equal(json_integer_value(json_object_get(ch, "chunks")), 3);
  assert_int_equal(json_integer_value(json_object_get(ch, "first_rows")), 2);

  const int a[3] = {0, 2, 7}, len[3] = {2, 5, 5};
  double *fc = malloc(sizeof(double) * S * 40);
  est_background bg = {.n_members = S, .members = fc};
  est_result h = {0};
  for (int c = 0; c < 3; c++) {
    est_problem q = {f.e->sim, f.op, &f.nz, len[c], a[c] + len[c] - 1, f.y + (size_t)a[c] * 40, c ? &bg : NULL};
    est_options qo = {.n_samples = S, .seed = c ? 77u * 1000003u + (uint64_t)c : 77u, .params = pp, .want_window = 1};
    if (c) est_result_free(&h);
    assert_int_equal(est_sample(f.e, &q, &qo, &h, &err), 0);
    /* each chunk's window samples sit at its rows of the whole window's */
    for (int s = 0; s < S; s++)
      assert_memory_equal(r.window_samples + ((size_t)s * 12 + a[c]) * 40, h.window_samples + (size_t)s * len[c] * 40,
                          sizeof(double) * (size_t)len[c] * 40);
    memcpy(fc, h.samples, sizeof(double) * S * 40);
    assert_int_equal(f.e->sim->advance(f.e->sim, fc, S, 1, &err), 0);
  }
  assert_memory_equal(r.samples, h.samples, sizeof(double) * S * 40);
  est_result_free(&h);
  est_result_free(&r);
  free(fc);
  json_decref(pc);
  json_decref(pp);
  fix_close(&f);
}

/* the cycled ETKF over a 50-row window: a filter, not the last row alone */
static void test_chunk_is_a_filter(void **state) {
  (void)state;
  sb_error err;
  double chunked = 0, whole = 0, last = 0;
  const int S = 40, C = 4;
  for (int k = 0; k < C; k++) {
    fix f;
    fix_open(&f, 50, 100 + (uint64_t)k);
    json_t *pc = json_pack("{s:f, s:i}", "inflation", 1.02, "chunk", 1), *pp = json_pack("{s:f}", "inflation", 1.02);
    est_problem p = {f.e->sim, f.op, &f.nz, 50, 49, f.y, NULL};
    est_options o = {.n_samples = S, .seed = 5 + (uint64_t)k, .params = pc};
    est_result r;
    assert_int_equal(est_sample(f.e, &p, &o, &r, &err), 0);
    chunked += rmse_of_mean(r.samples, S, f.x + 49 * 40) / C;
    est_result_free(&r);
    o.params = pp;
    assert_int_equal(est_sample(f.e, &p, &o, &r, &err), 0);
    whole += rmse_of_mean(r.samples, S, f.x + 49 * 40) / C;
    est_result_free(&r);
    est_problem one = {f.e->sim, f.op, &f.nz, 1, 49, f.y + 49 * 40, NULL};
    assert_int_equal(est_sample(f.e, &one, &o, &r, &err), 0);
    last += rmse_of_mean(r.samples, S, f.x + 49 * 40) / C;
    est_result_free(&r);
    json_decref(pc);
    json_decref(pp);
    fix_close(&f);
  }
  print_message("W = 50: chunks of 1 %.3f, one 50-row window %.3f, the last row alone %.3f\n", chunked, whole, last);
  assert_true(chunked < 0.4);
  assert_true(last > 0.6);
  assert_true(chunked < 1.25 * whole);
}

static void test_chunk_layout_and_refusals(void **state) {
  (void)state;
  sb_error err;
  fix f;
  fix_open(&f, 12, 4);
  int first;
  assert_int_equal(est_chunk_layout(f.e, 50, 10, &first), 5);
  assert_int_equal(first, 10);
  assert_int_equal(est_chunk_layout(f.e, 53, 10, &first), 6);
  assert_int_equal(first, 3);
  assert_int_equal(est_chunk_layout(f.e, 12, 12, &first), 1);
  assert_int_equal(first, 12);
  /* an estimator that needs 7 rows at least (the local score's 2k + 1) */
  estimator fake = *f.e;
  fake.window_min = 7, fake.window_max = 1024;
  assert_int_equal(est_chunk_layout(&fake, 53, 10, &first), 5);
  assert_int_equal(first, 13);
  assert_int_equal(est_chunk_layout(&fake, 8, 5, &first), 1);
  assert_int_equal(first, 8);

  est_problem p = {f.e->sim, f.op, &f.nz, 12, 11, f.y, NULL};
  est_result r;
  json_t *bad = json_pack("{s:s}", "chunk", "5");
  est_options o = {.n_samples = 8, .seed = 1, .params = bad};
  assert_int_equal(est_sample(f.e, &p, &o, &r, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "params.chunk must be an integer"));
  json_decref(bad);
  json_t *pc = json_pack("{s:i}", "chunk", 4);
  o.params = pc, o.n_samples = 1;
  assert_int_equal(est_sample(f.e, &p, &o, &r, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "n_samples >= 2"));
  /* a chunk's time index must be valid: the window's last state at 11 and 12 rows */
  o.n_samples = 8;
  p.time_index = 10;
  assert_int_not_equal(est_sample(f.e, &p, &o, &r, &err), 0);
  p.time_index = 11;
  estimator *pf;
  assert_int_equal(est_open(&pf, "pf", "l96-sakov", 40, &err), 0);
  assert_int_equal(est_check_options(pf, &o, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "cannot use a background"));
  est_free(pf);
  /* the other parameters are still checked against the estimator's */
  json_object_set_new(pc, "radius", json_integer(3));
  assert_int_equal(est_check_options(f.e, &o, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "radius"));
  json_decref(pc);
  fix_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunk_equals_hand_cycle),
      cmocka_unit_test(test_chunk_is_a_filter),
      cmocka_unit_test(test_chunk_layout_and_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
