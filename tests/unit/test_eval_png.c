/* test_eval_png.c: the 2D pictures of sbida eval (issue #12): the vorticity
 * picture decodes as a PNG (libpng's reader) of the documented size, is not
 * constant and puts the right colour where the field is positive or negative;
 * the energy spectrum puts a single Fourier mode's energy in its shell and
 * sums to the mean energy (Parseval); eval_run fills the plot arrays for a
 * real 2D case. */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "eval/eval.h"
#include "util/rng.h"

enum { H = 8, W = 8, G = H * W };

/* A summary with one plotted case: truth vorticity +1 on the left half (columns
 * 0..3) and -1 on the right, mean = truth + 0.25 on row 0 only, std 0.5. */
static void fake_summary(eval_summary *s, double *vort, double *spec) {
  memset(s, 0, sizeof *s);
  s->n_plot = 1, s->plot_h = H, s->plot_w = W, s->plot_kmax = 4;
  for (int g = 0; g < G; g++) {
    vort[g] = g % W < 4 ? 1.0 : -1.0;
    vort[G + g] = vort[g] + (g / W == 0 ? 0.25 : 0.0);
    vort[2 * G + g] = 0.5;
  }
  for (int k = 0; k < 3 * 5; k++) spec[k] = 1.0 / (1 + k % 5);
  s->plot_vort = vort;
  s->plot_spec = spec;
}

static void test_vorticity_png(void **state) {
  (void)state;
  double vort[3 * G], spec[15];
  eval_summary s;
  fake_summary(&s, vort, spec);
  char dir[] = "/tmp/sbida-png-XXXXXX";
  assert_non_null(mkdtemp(dir));
  sb_error err;
  assert_int_equal(eval_write_plots(&s, dir, "test", &err), 0);
  char path[256];
  snprintf(path, sizeof path, "%s/case00-vorticity.png", dir);
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  assert_true(png_image_begin_read_from_file(&im, path));
  im.format = PNG_FORMAT_RGB;
  /* 4 panels of 8 x 8 cells of 8 pixels, gaps of 16, a 20-pixel title band */
  const int cell = 8, gap = 16, top = 20, pw = W * cell;
  assert_int_equal(im.width, 4 * pw + 5 * gap);
  assert_int_equal(im.height, top + H * cell + gap);
  unsigned char *px = malloc(PNG_IMAGE_SIZE(im));
  assert_true(png_image_finish_read(&im, NULL, px, 0, NULL));
  int w = (int)im.width, h = (int)im.height;
  size_t distinct = 0;
  for (size_t i = 3; i < (size_t)w * h * 3; i += 3) distinct += memcmp(px + i, px + i - 3, 3) != 0;
  assert_true(distinct > 100); /* not a constant picture */
#define PX(x, y) (px + ((size_t)(y) * w + (x)) * 3)
  /* truth panel: left half red (positive), right half blue; the middle row */
  int y = top + 4 * cell + 3;
  unsigned char *l = PX(gap + 1 * cell + 3, y), *r = PX(gap + 6 * cell + 3, y);
  assert_true(l[0] == 255 && l[1] == 0 && l[2] == 0);
  assert_true(r[0] == 0 && r[1] == 0 && r[2] == 255);
  /* error panel (4th): zero (white) except row 0, drawn at the bottom: +0.25, pale red */
  int x4 = gap + 3 * (pw + gap);
  unsigned char *e_mid = PX(x4 + 3, y), *e_row0 = PX(x4 + 3, top + (H - 1) * cell + 3);
  assert_true(e_mid[0] == 255 && e_mid[1] == 255 && e_mid[2] == 255);
  assert_true(e_row0[0] == 255 && e_row0[1] > 150 && e_row0[1] < 255 && e_row0[1] == e_row0[2]);
  /* std panel (3rd): std 0.5 of a scale max(std, |error|) = 0.5: the darkest green */
  unsigned char *sd = PX(gap + 2 * (pw + gap) + 3, y);
  assert_true(sd[1] > sd[0] && sd[0] == 0);
  free(px);
  snprintf(path, sizeof path, "%s/case00-spectrum.svg", dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  assert_non_null(strstr(buf, "<svg") && strstr(buf, "</svg>") ? buf : NULL);
  assert_non_null(strstr(buf, "polyline"));
  unlink(path);
  snprintf(path, sizeof path, "%s/case00-vorticity.png", dir);
  unlink(path);
  rmdir(dir);
  /* no 2D pictures: an error, not empty files */
  s.n_plot = 0;
  assert_int_equal(eval_write_plots(&s, dir, "test", &err), SB_EINVAL);
}

static void test_energy_spectrum(void **state) {
  (void)state;
  enum { N = 16 };
  double x[2 * N * N], E[N / 2 + 1];
  /* u = 2 cos(3 y): energy <u^2>/2 = 1, all in shell 3 */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      x[i * N + j] = 2 * cos(3 * 2 * M_PI * i / N);
      x[N * N + i * N + j] = 0;
    }
  eval_energy_spectrum(x, N, N, E);
  for (int k = 0; k <= N / 2; k++) assert_true(fabs(E[k] - (k == 3 ? 1.0 : 0.0)) < 1e-12);
  /* v = sin(3 x + 4 y): |k| = 5, energy 1/4 */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      x[i * N + j] = 0;
      x[N * N + i * N + j] = sin(2 * M_PI * (3.0 * j + 4.0 * i) / N);
    }
  eval_energy_spectrum(x, N, N, E);
  for (int k = 0; k <= N / 2; k++) assert_true(fabs(E[k] - (k == 5 ? 0.25 : 0.0)) < 1e-12);
  /* Parseval for a random field: sum_k E(k) = <u^2 + v^2> / 2 */
  rng r;
  rng_init(&r, 3, 0);
  double e = 0, sum = 0;
  for (int i = 0; i < 2 * N * N; i++) x[i] = rng_normal(&r), e += x[i] * x[i] / (2.0 * N * N);
  eval_energy_spectrum(x, N, N, E);
  for (int k = 0; k <= N / 2; k++) sum += E[k];
  assert_true(fabs(sum - e) < 1e-12 * e);
}

/* eval_run keeps the pictures' fields: on kolmogorov-t at t = 0 (cheap, no
 * spin-up), the truth vorticity equals the curl of the truth and the sample std
 * is positive; the plotted spectra sum to the truth's energy. */
static void test_eval_run_fills_plots(void **state) {
  (void)state;
  estimator *e;
  sb_error err;
  assert_int_equal(est_open(&e, "etkf", "kolmogorov-t", 0, &err), 0);
  obs_op *op, *vort;
  assert_int_equal(obs_from_string(&op, "{\"type\":\"coarsen\",\"factor\":4}", 2, 32, 32, &err), 0);
  assert_int_equal(obs_from_string(&vort, "{\"type\":\"vorticity\"}", 2, 32, 32, &err), 0);
  obs_noise nz;
  assert_int_equal(obs_noise_scalar(&nz, 0.1, op->n_obs, &err), 0);
  eval_cases cs;
  assert_int_equal(eval_make_cases(&cs, e->sim, op, &nz, 1, 2, 0, 0, 5, &err), 0);
  eval_config cfg = {.n_samples = 8, .threads = 1, .seed = 5, .plot_cases = 1};
  eval_summary sum;
  assert_int_equal(eval_run(e, &cs, op, &nz, &cfg, &sum, &err), 0);
  assert_int_equal(sum.n_plot, 1);
  assert_int_equal(sum.plot_h, 32);
  double tv[1024];
  obs_apply(vort, cs.truth, tv, 1);
  double dmax = 0, smin = INFINITY, emean = 0, esum = 0;
  for (int g = 0; g < 1024; g++) {
    dmax = fmax(dmax, fabs(tv[g] - sum.plot_vort[g]));
    smin = fmin(smin, sum.plot_vort[2 * 1024 + g]);
  }
  assert_true(dmax < 1e-12 && smin > 0);
  for (int i = 0; i < 2048; i++) emean += cs.truth[i] * cs.truth[i] / 2048.0;
  for (int k = 0; k <= sum.plot_kmax; k++) esum += sum.plot_spec[k];
  assert_true(fabs(esum - emean) < 1e-9 * emean);
  unsigned char *img;
  int w, h;
  assert_non_null(img = eval_vorticity_image(&sum, 0, 2, &w, &h));
  assert_int_equal(w, 4 * 64 + 5 * 4);
  free(img);
  eval_summary_free(&sum);
  eval_cases_free(&cs);
  obs_noise_free(&nz);
  obs_free(vort);
  obs_free(op);
  est_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vorticity_png),
      cmocka_unit_test(test_energy_spectrum),
      cmocka_unit_test(test_eval_run_fills_plots),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
