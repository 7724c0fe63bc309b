#include "eval/eval_metrics.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

double eval_level(int i) { return 0.05 * (double)(i + 1); }

double eval_rank_coverage(double r, int S, double alpha) {
  double lo = 0.5 * (S + 1) * (1.0 - alpha), hi = 0.5 * (S + 1) * (1.0 + alpha);
  double a = r > lo ? r : lo, b = (r + 1.0) < hi ? (r + 1.0) : hi;
  return b > a ? b - a : 0.0;
}

static int cmp_double(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

double eval_crps_sorted(const double *xs, int S, double x) {
  double e1 = 0.0, e2 = 0.0;
  for (int k = 0; k < S; k++) {
    e1 += fabs(xs[k] - x);
    e2 += (2.0 * k - S + 1.0) * xs[k];
  }
  /* sum_{i,j} |x_i - x_j| = 2 sum_k (2k - S + 1) x_(k) */
  return e1 / S - e2 / ((double)S * S);
}

void eval_score_case(const double *samples, int S, int n, const double *truth, eval_case_stats *out,
                     long *rank_hist, double *mean, double *std, double *work) {
  double se = 0.0, var = 0.0, crps = 0.0;
  for (int i = 0; i < EVAL_N_LEVELS; i++) out->coverage[i] = 0.0;
  for (int c = 0; c < n; c++) {
    double m = 0.0;
    for (int s = 0; s < S; s++) {
      work[s] = samples[(size_t)s * n + c];
      m += work[s];
    }
    m /= S;
    double v = 0.0;
    for (int s = 0; s < S; s++) v += (work[s] - m) * (work[s] - m);
    v = S > 1 ? v / (S - 1) : 0.0;
    if (mean) mean[c] = m;
    if (std) std[c] = sqrt(v);
    se += (m - truth[c]) * (m - truth[c]);
    var += v;
    qsort(work, (size_t)S, sizeof(double), cmp_double);
    double x = truth[c];
    crps += eval_crps_sorted(work, S, x);
    /* rank: number below, ties count half */
    int lo = 0, hi = S;
    while (lo < hi) {
      int mid = (lo + hi) / 2;
      if (work[mid] < x) lo = mid + 1; else hi = mid;
    }
    int below = lo;
    hi = S;
    while (lo < hi) {
      int mid = (lo + hi) / 2;
      if (work[mid] <= x) lo = mid + 1; else hi = mid;
    }
    int ties = lo - below;
    double r = below + 0.5 * ties;
    if (rank_hist) rank_hist[below + ties / 2]++;
    for (int i = 0; i < EVAL_N_LEVELS; i++) out->coverage[i] += eval_rank_coverage(r, S, eval_level(i));
  }
  out->rmse = sqrt(se / n);
  out->spread = sqrt(var / n);
  out->crps = crps / n;
}

/* Series for P(a, x), x < a + 1 (Numerical Recipes gser). */
static double gamma_p_series(double a, double x) {
  double ap = a, sum = 1.0 / a, del = sum;
  for (int n = 0; n < 1000; n++) {
    ap += 1.0;
    del *= x / ap;
    sum += del;
    if (fabs(del) < fabs(sum) * 1e-16) break;
  }
  return sum * exp(-x + a * log(x) - lgamma(a));
}

/* Continued fraction for Q(a, x), x >= a + 1 (modified Lentz, NR gcf). */
static double gamma_q_cf(double a, double x) {
  const double tiny = DBL_MIN / DBL_EPSILON;
  double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 1000; i++) {
    double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1.0) < 1e-16) break;
  }
  return exp(-x + a * log(x) - lgamma(a)) * h;
}

double eval_gamma_q(double a, double x) {
  if (!(a > 0.0) || isnan(x)) return NAN;
  if (x <= 0.0) return 1.0;
  if (x < a + 1.0) return 1.0 - gamma_p_series(a, x);
  return gamma_q_cf(a, x);
}

double eval_rank_uniformity_p(const long *hist, int S, int *bins_used) {
  long total = 0;
  for (int r = 0; r <= S; r++) total += hist[r];
  int K = S + 1;
  if (K > 20) K = 20;
  if (total / 5 < K) K = (int)(total / 5);
  if (K < 2) {
    if (bins_used) *bins_used = 0;
    return 1.0;
  }
  if (bins_used) *bins_used = K;
  double chi2 = 0.0;
  int r = 0;
  for (int k = 0; k < K; k++) {
    long obs = 0;
    int width = 0;
    /* ranks r with floor(r * K / (S + 1)) == k */
    while (r <= S && (long)r * K / (S + 1) == k) {
      obs += hist[r];
      width++;
      r++;
    }
    double expct = (double)total * width / (S + 1);
    if (expct > 0) chi2 += (obs - expct) * (obs - expct) / expct;
  }
  return eval_gamma_q(0.5 * (K - 1), 0.5 * chi2);
}

void eval_hpd_coverage(const double *level, int n_cases, double *coverage) {
  for (int i = 0; i < EVAL_N_LEVELS; i++) {
    double a = eval_level(i);
    int k = 0;
    for (int c = 0; c < n_cases; c++) k += level[c] <= a + 1e-12;
    coverage[i] = n_cases ? (double)k / n_cases : 0.0;
  }
}
