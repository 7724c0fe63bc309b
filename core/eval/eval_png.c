/* eval_png.c: the 2D pictures of an evaluation (issue #12): per case the
 * vorticity of truth, posterior mean, posterior std and error side by side as
 * a PNG (libpng), and the energy spectra as an SVG line plot.
 *
 * Colours: truth, mean and error share one diverging scale (blue - white -
 * red, +-max |truth vorticity|), so an error panel as pale as the others are
 * strong is a good analysis; std has its own sequential scale (white - dark
 * green, 0..max(max std, max |error|)) so std and error compare by eye too.
 * Each panel is labelled with a tiny built-in bitmap font. */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "util/fileio.h"

void eval_energy_spectrum(const double *x, int H, int W, double *E) {
  int kmax = (H < W ? H : W) / 2;
  for (int k = 0; k <= kmax; k++) E[k] = 0;
  /* separable DFT of each channel: rows (along W), then columns (along H) */
  double *re = malloc(sizeof(double) * 4 * (size_t)H * W);
  if (!re) return;
  double *im = re + (size_t)H * W, *re2 = im + (size_t)H * W, *im2 = re2 + (size_t)H * W;
  for (int c = 0; c < 2; c++) {
    const double *f = x + (size_t)c * H * W;
    for (int i = 0; i < H; i++)
      for (int kx = 0; kx < W; kx++) {
        double a = 0, b = 0;
        for (int j = 0; j < W; j++) {
          double t = -2 * M_PI * kx * j / W;
          a += f[(size_t)i * W + j] * cos(t);
          b += f[(size_t)i * W + j] * sin(t);
        }
        re[(size_t)i * W + kx] = a, im[(size_t)i * W + kx] = b;
      }
    for (int ky = 0; ky < H; ky++)
      for (int kx = 0; kx < W; kx++) {
        double a = 0, b = 0;
        for (int i = 0; i < H; i++) {
          double t = -2 * M_PI * ky * i / H, cs = cos(t), sn = sin(t);
          a += re[(size_t)i * W + kx] * cs - im[(size_t)i * W + kx] * sn;
          b += re[(size_t)i * W + kx] * sn + im[(size_t)i * W + kx] * cs;
        }
        re2[(size_t)ky * W + kx] = a, im2[(size_t)ky * W + kx] = b;
      }
    double norm = 0.5 / ((double)H * W * (double)H * W);
    for (int ky = 0; ky < H; ky++)
      for (int kx = 0; kx < W; kx++) {
        int qy = ky <= H / 2 ? ky : ky - H, qx = kx <= W / 2 ? kx : kx - W;
        int k = (int)lround(sqrt((double)qx * qx + (double)qy * qy));
        double p = (re2[(size_t)ky * W + kx] * re2[(size_t)ky * W + kx] + im2[(size_t)ky * W + kx] * im2[(size_t)ky * W + kx]) * norm;
        if (k <= kmax) E[k] += p;
        else E[kmax] += p; /* the corners beyond the largest full shell */
      }
  }
  free(re);
}

// ----------------------------------------------------------------------------
// a tiny 3x5 font for the panel labels (the letters they use)

/* rows of 3, top first */
static const char *glyph(char ch) {
  switch (ch) {
    case 'a': return "..." ".##" "#.#" "#.#" ".##";
    case 'd': return "..#" "..#" ".##" "#.#" ".##";
    case 'e': return "..." ".##" "###" "#.." ".##";
    case 'h': return "#.." "#.." "##." "#.#" "#.#";
    case 'm': return "..." "#.#" "###" "#.#" "#.#";
    case 'n': return "..." "##." "#.#" "#.#" "#.#";
    case 'o': return "..." ".#." "#.#" "#.#" ".#.";
    case 'r': return "..." "#.#" "##." "#.." "#..";
    case 's': return ".##" "#.." ".#." "..#" "##.";
    case 't': return ".#." "###" ".#." ".#." "..#";
    case 'u': return "..." "#.#" "#.#" "#.#" "###";
    default: return "...............";
  }
}

static void put(unsigned char *img, int w, int h, int x, int y, const unsigned char c[3]) {
  if (x < 0 || y < 0 || x >= w || y >= h) return;
  memcpy(img + ((size_t)y * w + x) * 3, c, 3);
}

static void text(unsigned char *img, int w, int h, int x0, int y0, const char *s, int px) {
  static const unsigned char ink[3] = {0, 0, 0};
  for (int i = 0; s[i]; i++) {
    const char *g = glyph(s[i]);
    for (int r = 0; r < 5; r++)
      for (int q = 0; q < 3; q++)
        if (g[r * 3 + q] == '#')
          for (int a = 0; a < px; a++)
            for (int b = 0; b < px; b++) put(img, w, h, x0 + (i * 4 + q) * px + b, y0 + r * px + a, ink);
  }
}

/* diverging: v in [-1, 1] -> blue, white, red */
static void diverging(double v, unsigned char c[3]) {
  v = v < -1 ? -1 : v > 1 ? 1 : v;
  unsigned char lo = (unsigned char)lround(255 * (1 - fabs(v)));
  c[0] = v >= 0 ? 255 : lo;
  c[1] = lo;
  c[2] = v >= 0 ? lo : 255;
}

/* sequential: v in [0, 1] -> white to dark green */
static void sequential(double v, unsigned char c[3]) {
  v = v < 0 ? 0 : v > 1 ? 1 : v;
  c[0] = (unsigned char)lround(255 * (1 - v));
  c[1] = (unsigned char)lround(255 - 155 * v);
  c[2] = (unsigned char)lround(255 * (1 - v));
}

unsigned char *eval_vorticity_image(const eval_summary *s, int c, int cell, int *w, int *h) {
  if (c < 0 || c >= s->n_plot || cell < 1) return NULL;
  const int H = s->plot_h, W = s->plot_w, G = H * W, gap = 2 * cell, top = 7 * 2 + 6;
  const int pw = W * cell, ph = H * cell;
  *w = 4 * pw + 5 * gap;
  *h = top + ph + gap;
  unsigned char *img = malloc((size_t)*w * *h * 3);
  if (!img) return NULL;
  memset(img, 255, (size_t)*w * *h * 3);
  const double *tv = s->plot_vort + (size_t)c * 3 * G, *mv = tv + G, *sv = mv + G;
  double vmax = 0, smax = 0;
  for (int g = 0; g < G; g++) {
    vmax = fmax(vmax, fabs(tv[g]));
    smax = fmax(smax, fmax(sv[g], fabs(mv[g] - tv[g])));
  }
  if (!(vmax > 0)) vmax = 1;
  if (!(smax > 0)) smax = 1;
  static const char *const label[4] = {"truth", "mean", "std", "error"};
  for (int p = 0; p < 4; p++) {
    int x0 = gap + p * (pw + gap);
    text(img, *w, *h, x0, 4, label[p], 2);
    for (int i = 0; i < H; i++)
      for (int j = 0; j < W; j++) {
        int g = i * W + j;
        unsigned char col[3];
        if (p == 0) diverging(tv[g] / vmax, col);
        else if (p == 1) diverging(mv[g] / vmax, col);
        else if (p == 2) sequential(sv[g] / smax, col);
        else diverging((mv[g] - tv[g]) / vmax, col);
        /* row i = 0 (y = 0) at the bottom, as in a plot of the flow */
        for (int a = 0; a < cell; a++)
          for (int b = 0; b < cell; b++) put(img, *w, *h, x0 + j * cell + b, top + (H - 1 - i) * cell + a, col);
      }
  }
  return img;
}

int eval_png_write(const char *path, const unsigned char *rgb, int w, int h, sb_error *err) {
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  im.width = (png_uint_32)w;
  im.height = (png_uint_32)h;
  im.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&im, path, 0, rgb, 0, NULL)) {
    int rc = sb_fail(err, SB_EIO, "cannot write %s: %s", path, im.message);
    png_image_free(&im);
    return rc;
  }
  return SB_OK;
}

// ----------------------------------------------------------------------------
// energy spectrum, SVG (log-log)

static char *spectrum_svg(const eval_summary *s, int c, const char *title) {
  const int nk = s->plot_kmax + 1;
  const double *sp = s->plot_spec + (size_t)c * 3 * nk;
  double lo = INFINITY, hi = 0;
  for (int q = 0; q < 3; q++)
    for (int k = 1; k < nk - 1; k++)
      if (sp[q * nk + k] > 0) lo = fmin(lo, sp[q * nk + k]), hi = fmax(hi, sp[q * nk + k]);
  if (!(hi > 0)) hi = 1, lo = 0.1;
  double ylo = floor(log10(lo)), yhi = ceil(log10(hi));
  if (yhi <= ylo) yhi = ylo + 1;
  /* k = 1 .. kmax - 1: the last shell also holds the corners |k| > kmax */
  const int kend = nk - 1;
  const double X0 = 70, X1 = 560, Y0 = 50, Y1 = 370, xl = log10((double)(kend - 1));
  size_t cap = 16384;
  char *b = malloc(cap);
  if (!b) return NULL;
  size_t n = 0;
#define OUT(...) n += (size_t)snprintf(b + n, n < cap ? cap - n : 0, __VA_ARGS__)
  OUT("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"420\" font-family=\"sans-serif\" font-size=\"12\">\n");
  OUT("<rect width=\"600\" height=\"420\" fill=\"white\"/>\n");
  OUT("<text x=\"300\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">%s: energy spectrum, case %d</text>\n", title, c);
  OUT("<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n", X0, Y0, X1 - X0, Y1 - Y0);
  for (int e = (int)ylo; e <= (int)yhi; e++) {
    double y = Y1 - (e - ylo) / (yhi - ylo) * (Y1 - Y0);
    OUT("<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n",
        X0, X1, y, y, X0 - 6, y + 4, e);
  }
  for (int k = 1; k < kend; k *= 2) {
    double x = X0 + log10((double)k) / xl * (X1 - X0);
    OUT("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%g\" y2=\"%g\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%d</text>\n",
        x, x, Y0, Y1, x, Y1 + 16, k);
  }
  OUT("<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">wavenumber k</text>\n", (X0 + X1) / 2, Y1 + 36);
  OUT("<text x=\"18\" y=\"%g\" transform=\"rotate(-90 18 %g)\" text-anchor=\"middle\">E(k)</text>\n", (Y0 + Y1) / 2,
      (Y0 + Y1) / 2);
  static const char *const col[3] = {"black", "#d62728", "#1f77b4"};
  static const char *const name[3] = {"truth", "posterior mean field", "samples (mean of their spectra)"};
  for (int q = 0; q < 3; q++) {
    OUT("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", col[q], q == 2 ? " stroke-dasharray=\"6 3\"" : "");
    for (int k = 1; k < kend; k++) {
      double v = sp[q * nk + k] > 0 ? log10(sp[q * nk + k]) : ylo;
      double x = X0 + log10((double)k) / xl * (X1 - X0), y = Y1 - (v - ylo) / (yhi - ylo) * (Y1 - Y0);
      OUT("%.1f,%.1f ", x, y);
    }
    OUT("\"/>\n<text x=\"%g\" y=\"%d\" fill=\"%s\">%s</text>\n", X0 + 12, (int)Y0 + 18 + 16 * q, col[q], name[q]);
  }
  OUT("</svg>\n");
#undef OUT
  if (n >= cap) {
    free(b);
    return NULL;
  }
  return b;
}

int eval_write_plots(const eval_summary *s, const char *dir, const char *title, sb_error *err) {
  if (s->n_plot < 1) return sb_fail(err, SB_EINVAL, "no 2D pictures: they need a [2][H][W] velocity state");
  int rc = sb_mkdirs(dir, err);
  if (rc) return rc;
  for (int c = 0; c < s->n_plot && !rc; c++) {
    char path[4096];
    int w, h;
    unsigned char *img = eval_vorticity_image(s, c, 8, &w, &h);
    if (!img) return sb_fail(err, SB_ENOMEM, "out of memory for a picture");
    snprintf(path, sizeof path, "%s/case%02d-vorticity.png", dir, c);
    rc = eval_png_write(path, img, w, h, err);
    free(img);
    if (rc) break;
    char *doc = spectrum_svg(s, c, title);
    if (!doc) return sb_fail(err, SB_ENOMEM, "out of memory for a spectrum plot");
    snprintf(path, sizeof path, "%s/case%02d-spectrum.svg", dir, c);
    rc = sb_write_file(path, doc, strlen(doc), err);
    free(doc);
  }
  return rc;
}
