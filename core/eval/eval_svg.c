/* eval_svg.c: dependency-free SVG plots of an evaluation: coverage curve
 * against the diagonal, rank histogram, and one example case. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/eval.h"
#include "util/fileio.h"

// ----------------------------------------------------------------------------
// a growing string

typedef struct sbuf {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int k = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
      b->oom = 1;
      return;
    }
    if (b->p && (size_t)k < room) {
      b->len += (size_t)k;
      return;
    }
    size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)k;
    char *np = realloc(b->p, nc);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
}

/* Appends text with XML special characters escaped. */
static void sb_text(sbuf *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': sb_printf(b, "&lt;"); break;
    case '>': sb_printf(b, "&gt;"); break;
    case '&': sb_printf(b, "&amp;"); break;
    case '"': sb_printf(b, "&quot;"); break;
    default: sb_printf(b, "%c", *s);
    }
  }
}

static char *sb_finish(sbuf *b) {
  if (b->oom) {
    free(b->p);
    return NULL;
  }
  return b->p;
}

// ----------------------------------------------------------------------------
// a frame with axes

enum { WID = 560, HEI = 420, ML = 70, MR = 20, MT = 40, MB = 55 };

typedef struct frame {
  double x0, x1, y0, y1;
} frame;

static double px(const frame *f, double x) { return ML + (x - f->x0) / (f->x1 - f->x0) * (WID - ML - MR); }
static double py(const frame *f, double y) { return HEI - MB - (y - f->y0) / (f->y1 - f->y0) * (HEI - MT - MB); }

static void nice_ticks(double lo, double hi, double *step) {
  double span = hi - lo, raw = span / 5, mag = pow(10, floor(log10(raw))), r = raw / mag;
  *step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

static void begin(sbuf *b, const frame *f, const char *title, const char *xl, const char *yl) {
  sb_printf(b,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            WID, HEI, WID, HEI);
  sb_printf(b, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">", WID / 2);
  sb_text(b, title);
  sb_printf(b, "</text>\n");
  double st;
  nice_ticks(f->x0, f->x1, &st);
  for (double t = ceil(f->x0 / st - 1e-9) * st; t <= f->x1 + 1e-9 * st; t += st) {
    double X = px(f, t);
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", X, MT, X, HEI - MB);
    sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", X, HEI - MB + 16, fabs(t) < 1e-12 ? 0 : t);
  }
  nice_ticks(f->y0, f->y1, &st);
  for (double t = ceil(f->y0 / st - 1e-9) * st; t <= f->y1 + 1e-9 * st; t += st) {
    double Y = py(f, t);
    sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML, Y, WID - MR, Y);
    sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6, Y + 4, fabs(t) < 1e-12 ? 0 : t);
  }
  sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", ML, MT,
            WID - ML - MR, HEI - MT - MB);
  sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (ML + WID - MR) / 2, HEI - 15);
  sb_text(b, xl);
  sb_printf(b, "</text>\n<text x=\"18\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 18 %d)\">",
            (MT + HEI - MB) / 2, (MT + HEI - MB) / 2);
  sb_text(b, yl);
  sb_printf(b, "</text>\n");
}

static void legend(sbuf *b, int row, const char *color, const char *dash, const char *label) {
  int y = MT + 14 + 16 * row;
  sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", ML + 10, y - 4,
            ML + 34, y - 4, color, dash);
  sb_printf(b, "<text x=\"%d\" y=\"%d\">", ML + 40, y);
  sb_text(b, label);
  sb_printf(b, "</text>\n");
}

char *eval_svg_coverage(const eval_summary *s, const char *title) {
  sbuf b = {0};
  frame f = {0, 1, 0, 1};
  char t[256];
  snprintf(t, sizeof t, "%s: marginal coverage (max |error| %.3f)", title, s->coverage_max_abs_error);
  begin(&b, &f, t, "credibility level (central interval)", "observed coverage");
  sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"gray\" stroke-dasharray=\"5,4\"/>\n",
            px(&f, 0), py(&f, 0), px(&f, 1), py(&f, 1));
  sb_printf(&b, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"%.1f,%.1f", px(&f, 0), py(&f, 0));
  for (int i = 0; i < EVAL_N_LEVELS; i++) sb_printf(&b, " %.1f,%.1f", px(&f, eval_level(i)), py(&f, s->coverage[i]));
  sb_printf(&b, " %.1f,%.1f\"/>\n", px(&f, 1), py(&f, 1));
  for (int i = 0; i < EVAL_N_LEVELS; i++)
    sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#1f77b4\"/>\n", px(&f, eval_level(i)),
              py(&f, s->coverage[i]));
  if (s->has_hpd) {
    sb_printf(&b, "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"%.1f,%.1f", px(&f, 0),
              py(&f, 0));
    for (int i = 0; i < EVAL_N_LEVELS; i++)
      sb_printf(&b, " %.1f,%.1f", px(&f, eval_level(i)), py(&f, s->hpd_coverage[i]));
    sb_printf(&b, " %.1f,%.1f\"/>\n", px(&f, 1), py(&f, 1));
    legend(&b, 2, "#d62728", "", "HPD expected coverage");
  }
  legend(&b, 0, "#1f77b4", "", "marginal (from ranks)");
  legend(&b, 1, "gray", " stroke-dasharray=\"5,4\"", "calibrated");
  sb_printf(&b, "</svg>\n");
  return sb_finish(&b);
}

char *eval_svg_ranks(const eval_summary *s, const char *title) {
  int S = s->n_samples, R = S + 1;
  int K = R > 50 ? 50 : R;
  double *h = calloc((size_t)K, sizeof(double));
  int *w = calloc((size_t)K, sizeof(int));
  if (!h || !w) {
    free(h);
    free(w);
    return NULL;
  }
  long total = 0;
  for (int r = 0; r <= S; r++) {
    int k = (int)((long)r * K / R);
    h[k] += (double)s->rank_hist[r];
    w[k]++;
    total += s->rank_hist[r];
  }
  double ymax = 0;
  for (int k = 0; k < K; k++) {
    h[k] = w[k] ? h[k] / w[k] : 0; /* mean count per rank in the group */
    if (h[k] > ymax) ymax = h[k];
  }
  double expct = (double)total / R;
  if (expct * 1.5 > ymax) ymax = expct * 1.5;
  if (ymax <= 0) ymax = 1;
  sbuf b = {0};
  frame f = {0, R, 0, ymax * 1.08};
  char t[256];
  snprintf(t, sizeof t, "%s: rank of the truth among %d samples (p = %.3g)", title, S, s->rank_p);
  begin(&b, &f, t, K < R ? "rank (grouped)" : "rank", "count per rank");
  for (int k = 0, r0 = 0; k < K; r0 += w[k], k++) {
    double x0 = px(&f, r0), x1 = px(&f, r0 + w[k]);
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#9ecae1\" stroke=\"#3182bd\"/>\n",
              x0, py(&f, h[k]), x1 - x0, py(&f, 0) - py(&f, h[k]));
  }
  sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-dasharray=\"5,4\"/>\n",
            px(&f, 0), py(&f, expct), px(&f, R), py(&f, expct));
  legend(&b, 0, "black", " stroke-dasharray=\"5,4\"", "uniform (calibrated)");
  sb_printf(&b, "</svg>\n");
  free(h);
  free(w);
  return sb_finish(&b);
}

static int node_of_row(const obs_op *op, int row) {
  int best = -1;
  double bv = -1;
  for (int e = op->row_ptr[row]; e < op->row_ptr[row + 1]; e++)
    if (fabs(op->val[e]) > bv) {
      bv = fabs(op->val[e]);
      best = op->col[e];
    }
  return best;
}

char *eval_svg_example(const eval_summary *s, const obs_op *op, const char *title) {
  int n = s->dim;
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++) {
    lo = fmin(lo, fmin(s->ex_truth[i], s->ex_mean[i] - 2 * s->ex_std[i]));
    hi = fmax(hi, fmax(s->ex_truth[i], s->ex_mean[i] + 2 * s->ex_std[i]));
  }
  for (int k = 0; k < s->n_obs; k++)
    if (!isnan(s->ex_y[k])) {
      lo = fmin(lo, s->ex_y[k]);
      hi = fmax(hi, s->ex_y[k]);
    }
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  double pad = 0.08 * (hi - lo);
  sbuf b = {0};
  frame f = {0, n > 1 ? n - 1 : 1, lo - pad, hi + pad * 3};
  char t[256];
  snprintf(t, sizeof t, "%s: example case (first window), state at time t", title);
  begin(&b, &f, t, "node", "value");
  sb_printf(&b, "<polygon fill=\"#1f77b4\" fill-opacity=\"0.2\" stroke=\"none\" points=\"");
  for (int i = 0; i < n; i++) sb_printf(&b, "%.1f,%.1f ", px(&f, i), py(&f, s->ex_mean[i] + 2 * s->ex_std[i]));
  for (int i = n - 1; i >= 0; i--) sb_printf(&b, "%.1f,%.1f ", px(&f, i), py(&f, s->ex_mean[i] - 2 * s->ex_std[i]));
  sb_printf(&b, "\"/>\n<polyline fill=\"none\" stroke=\"black\" stroke-width=\"2\" points=\"");
  for (int i = 0; i < n; i++) sb_printf(&b, "%.1f,%.1f ", px(&f, i), py(&f, s->ex_truth[i]));
  sb_printf(&b, "\"/>\n<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
  for (int i = 0; i < n; i++) sb_printf(&b, "%.1f,%.1f ", px(&f, i), py(&f, s->ex_mean[i]));
  sb_printf(&b, "\"/>\n");
  for (int k = 0; k < s->n_obs; k++) {
    int node = node_of_row(op, k);
    if (node < 0 || isnan(s->ex_y[k])) continue;
    sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n",
              px(&f, node % n), py(&f, s->ex_y[k]));
  }
  legend(&b, 0, "black", "", "truth");
  legend(&b, 1, "#1f77b4", "", "posterior mean, band = mean +/- 2 std");
  legend(&b, 2, "#d62728", "", "observations at time t (at their main node)");
  sb_printf(&b, "</svg>\n");
  return sb_finish(&b);
}

int eval_write_svgs(const eval_summary *s, const obs_op *op, const char *dir, const char *title, sb_error *err) {
  int mrc = sb_mkdirs(dir, err);
  if (mrc) return mrc;
  const char *names[3] = {"coverage.svg", "ranks.svg", "example.svg"};
  for (int i = 0; i < 3; i++) {
    char *doc = i == 0 ? eval_svg_coverage(s, title) : i == 1 ? eval_svg_ranks(s, title) : eval_svg_example(s, op, title);
    if (!doc) return sb_fail(err, SB_ENOMEM, "out of memory for %s", names[i]);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    int rc = sb_write_file(path, doc, strlen(doc), err);
    free(doc);
    if (rc) return rc;
  }
  return SB_OK;
}
