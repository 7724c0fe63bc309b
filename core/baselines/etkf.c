/* etkf.c: windowed ETKF and LETKF baselines (see baselines.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/baselines.h"
#include "util/jsonb.h"
#include "util/rng.h"
#include "util/symeig.h"

// ----------------------------------------------------------------------------
// analysis

double gaspari_cohn(double r) {
  r = fabs(r);
  if (r >= 2.0) return 0.0;
  double r2 = r * r, r3 = r2 * r, r4 = r3 * r, r5 = r4 * r;
  if (r <= 1.0) return -0.25 * r5 + 0.5 * r4 + 0.625 * r3 - 5.0 / 3.0 * r2 + 1.0;
  return r5 / 12.0 - 0.5 * r4 + 0.625 * r3 + 5.0 / 3.0 * r2 - 5.0 * r + 4.0 - 2.0 / (3.0 * r);
}

/* Workspace for ensemble size K, state size n and p observations. One
 * malloc; every array is a pointer into it. */
typedef struct etkf_ws {
  int K, n, p;
  double *mem;
  double *xb;    /* (n) forecast mean */
  double *A;     /* (K,n) inflated anomalies */
  double *HX;    /* (K,p) observed members */
  double *hb;    /* (p) observed mean */
  double *Y;     /* (K,q) inflated observation anomalies, q <= p */
  double *C;     /* (K,q) Y R^-1 */
  double *d;     /* (q) innovation */
  double *rinv;  /* (q) R^-1 diagonal (tapered for letkf) */
  double *M;     /* (K,K) (K-1) I + Y R^-1 Y^T, then its eigenvectors */
  double *lam;   /* (K) eigenvalues */
  double *work;  /* (K) */
  double *U;     /* (K,K) */
  double *Wt;    /* (K,K) Wt[j][i]: weight of anomaly j in member i */
  double *bv;    /* (K) */
  double *wm;    /* (K) mean weights */
  double *fv;    /* (K) low-rank transform factors */
  int rank;      /* low-rank path: number of columns of U in use, -1 = full path */
  int *valid;    /* (p) indices of observed rows */
  double *loc;   /* (p,2) grid location of each observation (letkf) */
} etkf_ws;

static void ws_free(etkf_ws *w) {
  free(w->mem);
  free(w->valid);
  free(w->loc);
  memset(w, 0, sizeof *w);
}

static int ws_init(etkf_ws *w, int K, int n, int p, sb_error *err) {
  memset(w, 0, sizeof *w);
  w->K = K;
  w->n = n;
  w->p = p;
  size_t k = (size_t)K, N = (size_t)n, P = (size_t)p;
  size_t total = N + k * N + k * P + P + k * P + k * P + P + P + k * k + k + k + k * k + k * k + k + k + k;
  w->mem = malloc(total * sizeof(double));
  w->valid = malloc((P ? P : 1) * sizeof(int));
  w->loc = malloc((P ? P : 1) * 2 * sizeof(double));
  if (!w->mem || !w->valid || !w->loc) {
    ws_free(w);
    return sb_fail(err, SB_ENOMEM, "out of memory for an ensemble of %d members of %d values", K, n);
  }
  double *m = w->mem;
  w->xb = m; m += N;
  w->A = m; m += k * N;
  w->HX = m; m += k * P;
  w->hb = m; m += P;
  w->Y = m; m += k * P;
  w->C = m; m += k * P;
  w->d = m; m += P;
  w->rinv = m; m += P;
  w->M = m; m += k * k;
  w->lam = m; m += k;
  w->work = m; m += k;
  w->U = m; m += k * k;
  w->Wt = m; m += k * k;
  w->bv = m; m += k;
  w->wm = m; m += k;
  w->fv = m;
  return SB_OK;
}

/* Ensemble-space transform (Hunt et al. 2007, eqs. 21-24) from the q
 * observations in w->Y, w->d, w->rinv: fills w->Wt with
 *   Wt = wmean 1^T + sqrt(K-1) [ (K-1) I + Y R^-1 Y^T ]^{-1/2}. */
static int etkf_weights(etkf_ws *w, int q, sb_error *err) {
  int K = w->K;
  const double *Y = w->Y;
  double *C = w->C, *M = w->M, *U = w->U, *Wt = w->Wt;
  for (int j = 0; j < K; j++)
    for (int k = 0; k < q; k++) C[(size_t)j * q + k] = Y[(size_t)j * q + k] * w->rinv[k];
  for (int i = 0; i < K; i++) {
    const double *ci = C + (size_t)i * q;
    for (int j = i; j < K; j++) {
      const double *yj = Y + (size_t)j * q;
      double s = 0.0;
      for (int k = 0; k < q; k++) s += ci[k] * yj[k];
      if (i == j) s += (double)(K - 1);
      M[(size_t)i * K + j] = s;
      M[(size_t)j * K + i] = s;
    }
  }
  for (int j = 0; j < K; j++) {
    double s = 0.0;
    for (int k = 0; k < q; k++) s += C[(size_t)j * q + k] * w->d[k];
    w->bv[j] = s;
  }
  int rc = symeig(M, w->lam, w->work, K, err);
  if (rc) return rc;
  /* M now holds V (columns are eigenvectors); all lam >= K-1 > 0 */
  for (int m = 0; m < K; m++) {
    if (!(w->lam[m] > 0.0)) return sb_fail(err, SB_ENUMERIC, "ETKF: non-positive eigenvalue %g", w->lam[m]);
    double s = 0.0;
    for (int j = 0; j < K; j++) s += M[(size_t)j * K + m] * w->bv[j];
    w->work[m] = s / w->lam[m];
  }
  for (int j = 0; j < K; j++) {
    double s = 0.0;
    for (int m = 0; m < K; m++) s += M[(size_t)j * K + m] * w->work[m];
    w->wm[j] = s;
  }
  for (int j = 0; j < K; j++)
    for (int m = 0; m < K; m++) U[(size_t)j * K + m] = M[(size_t)j * K + m] * sqrt((double)(K - 1) / w->lam[m]);
  for (int j = 0; j < K; j++) {
    const double *uj = U + (size_t)j * K;
    for (int i = j; i < K; i++) {
      const double *vi = M + (size_t)i * K;
      double s = 0.0;
      for (int m = 0; m < K; m++) s += uj[m] * vi[m];
      Wt[(size_t)j * K + i] = s;
      Wt[(size_t)i * K + j] = s;
    }
  }
  for (int j = 0; j < K; j++)
    for (int i = 0; i < K; i++) Wt[(size_t)j * K + i] += w->wm[j];
  return SB_OK;
}


/* The same transform when q < K, in observation space: with
 * G = Y R^{-1/2} = U diag(s) Q^T (thin SVD through the q x q eigenproblem of
 * G^T G), M = (K-1) I + G G^T gives
 *   sqrt(K-1) M^{-1/2} = I + U diag(f) U^T,  f = sqrt((K-1) / (K-1+s^2)) - 1,
 *   wmean = M^{-1} G R^{-1/2} d = U diag(s / (K-1+s^2)) Q^T R^{-1/2} d.
 * Costs O(K q^2 + q^3) instead of O(K^3). Fills w->U [K][q] (columns 0..rank-1
 * used), w->fv and w->wm; sets w->rank. */
static int etkf_lowrank(etkf_ws *w, int q, sb_error *err) {
  int K = w->K;
  double *G = w->C, *Q = w->M, *U = w->U;
  for (int j = 0; j < K; j++)
    for (int k = 0; k < q; k++) G[(size_t)j * q + k] = w->Y[(size_t)j * q + k] * sqrt(w->rinv[k]);
  for (int a = 0; a < q; a++)
    for (int b = a; b < q; b++) {
      double s = 0.0;
      for (int j = 0; j < K; j++) s += G[(size_t)j * q + a] * G[(size_t)j * q + b];
      Q[(size_t)a * q + b] = s;
      Q[(size_t)b * q + a] = s;
    }
  int rc = symeig(Q, w->lam, w->work, q, err);
  if (rc) return rc;
  double smax = w->lam[q - 1] > 0 ? w->lam[q - 1] : 0.0;
  /* dt = R^{-1/2} d projected: work[m] = (Q^T dt)_m */
  int r = 0;
  for (int m = q - 1; m >= 0; m--) {
    double s2 = w->lam[m];
    if (!(s2 > 1e-13 * smax) || s2 <= 0.0) break;
    double sv = sqrt(s2), pr = 0.0;
    for (int k = 0; k < q; k++) pr += Q[(size_t)k * q + m] * w->d[k] * sqrt(w->rinv[k]);
    for (int j = 0; j < K; j++) {
      double u = 0.0;
      for (int k = 0; k < q; k++) u += G[(size_t)j * q + k] * Q[(size_t)k * q + m];
      U[(size_t)j * q + r] = u / sv;
    }
    w->fv[r] = sqrt((double)(K - 1) / (K - 1 + s2)) - 1.0;
    w->work[r] = pr * sv / (K - 1 + s2);
    r++;
  }
  for (int j = 0; j < K; j++) {
    double s = 0.0;
    for (int m = 0; m < r; m++) s += U[(size_t)j * q + m] * w->work[m];
    w->wm[j] = s;
  }
  w->rank = r;
  return SB_OK;
}

/* Chooses the cheaper path; afterwards transform_col / Wt apply it. */
int etkf_path_override = 0;

static int etkf_transform(etkf_ws *w, int q, int want_full, sb_error *err) {
  if (q < w->K && etkf_path_override != 1) {
    int rc = etkf_lowrank(w, q, err);
    if (rc || !want_full) return rc;
    int K = w->K, r = w->rank;
    for (int j = 0; j < K; j++)
      for (int i = j; i < K; i++) {
        double s = i == j ? 1.0 : 0.0;
        for (int m = 0; m < r; m++) s += w->U[(size_t)j * q + m] * w->fv[m] * w->U[(size_t)i * q + m];
        w->Wt[(size_t)j * K + i] = s + w->wm[j];
        w->Wt[(size_t)i * K + j] = s + w->wm[i];
      }
    w->rank = -1;
    return SB_OK;
  }
  w->rank = -1;
  return etkf_weights(w, q, err);
}

/* out[i] = xb + sum_j Wt[j][i] a[j] for a = one column of anomalies (K);
 * works for both paths (q = stride of U). */
static void transform_col(etkf_ws *w, int q, const double *a, double xb, double *out) {
  int K = w->K;
  if (w->rank >= 0) {
    double wa = 0.0, *tm = w->lam; /* eigenvalues are no longer needed */
    for (int j = 0; j < K; j++) wa += w->wm[j] * a[j];
    for (int m = 0; m < w->rank; m++) {
      double s = 0.0;
      for (int j = 0; j < K; j++) s += w->U[(size_t)j * q + m] * a[j];
      tm[m] = s * w->fv[m];
    }
    for (int i = 0; i < K; i++) {
      double s = xb + wa + a[i];
      for (int m = 0; m < w->rank; m++) s += w->U[(size_t)i * q + m] * tm[m];
      out[i] = s;
    }
    return;
  }
  for (int i = 0; i < K; i++) {
    double s = xb;
    for (int j = 0; j < K; j++) s += w->Wt[(size_t)j * K + i] * a[j];
    out[i] = s;
  }
}

static int analysis_ws(etkf_ws *w, double *X, const obs_op *op, const double *y, const double *std,
                       double infl, double radius, sb_error *err) {
  int K = w->K, n = w->n, p = w->p;
  int q = 0;
  for (int k = 0; k < p; k++)
    if (!isnan(y[k])) w->valid[q++] = k;
  if (q == 0) return SB_OK; /* nothing observed: pure forecast */
  for (int c = 0; c < n; c++) w->xb[c] = 0.0;
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++) w->xb[c] += X[(size_t)i * n + c];
  for (int c = 0; c < n; c++) w->xb[c] /= K;
  for (int i = 0; i < K; i++)
    for (int c = 0; c < n; c++) w->A[(size_t)i * n + c] = infl * (X[(size_t)i * n + c] - w->xb[c]);
  obs_apply(op, X, w->HX, (size_t)K);
  for (int k = 0; k < p; k++) w->hb[k] = 0.0;
  for (int i = 0; i < K; i++)
    for (int k = 0; k < p; k++) w->hb[k] += w->HX[(size_t)i * p + k];
  for (int k = 0; k < p; k++) w->hb[k] /= K;

  if (radius <= 0.0) {
    for (int i = 0; i < K; i++)
      for (int k = 0; k < q; k++) {
        int v = w->valid[k];
        w->Y[(size_t)i * q + k] = infl * (w->HX[(size_t)i * p + v] - w->hb[v]);
      }
    for (int k = 0; k < q; k++) {
      int v = w->valid[k];
      w->d[k] = y[v] - w->hb[v];
      w->rinv[k] = 1.0 / (std[v] * std[v]);
    }
    int rc = etkf_transform(w, q, 1, err);
    if (rc) return rc;
    for (int i = 0; i < K; i++) {
      double *xi = X + (size_t)i * n;
      for (int c = 0; c < n; c++) xi[c] = w->xb[c];
      for (int j = 0; j < K; j++) {
        double wt = w->Wt[(size_t)j * K + i];
        const double *aj = w->A + (size_t)j * n;
        for (int c = 0; c < n; c++) xi[c] += wt * aj[c];
      }
    }
    return SB_OK;
  }

  /* LETKF: one local analysis per grid point g (obs.h's locations and torus
   * distance; a 1D state is a ring). Column c of X depends only on column c
   * of A and xb, so X can be overwritten as we go; every channel of a point
   * shares its location and therefore its transform. */
  for (int k = 0; k < q; k++) obs_location(op, w->valid[k], w->loc + 2 * k);
  int G = op->H * op->W;
  double half = radius / 2.0;
  for (int g = 0; g < G; g++) {
    double at[2];
    obs_state_location(op, g, at);
    int ql = 0;
    for (int k = 0; k < q; k++)
      if (obs_distance(op, w->loc + 2 * k, at) < radius) ql++;
    if (ql == 0) continue;
    int kk = 0;
    for (int k = 0; k < q; k++) {
      double dd = obs_distance(op, w->loc + 2 * k, at);
      if (!(dd < radius)) continue;
      int v = w->valid[k];
      double taper = gaspari_cohn(dd / half);
      for (int i = 0; i < K; i++) w->Y[(size_t)i * ql + kk] = infl * (w->HX[(size_t)i * p + v] - w->hb[v]);
      w->d[kk] = y[v] - w->hb[v];
      w->rinv[kk] = taper / (std[v] * std[v]);
      kk++;
    }
    int rc = etkf_transform(w, ql, 0, err);
    if (rc) return rc;
    for (int c = g; c < n; c += G) {
      for (int j = 0; j < K; j++) w->bv[j] = w->A[(size_t)j * n + c];
      transform_col(w, ql, w->bv, w->xb[c], w->work);
      for (int i = 0; i < K; i++) X[(size_t)i * n + c] = w->work[i];
    }
  }
  return SB_OK;
}

int etkf_analysis(double *X, int K, int n, const obs_op *op, const double *y, const double *std, double inflation,
                  double radius, sb_error *err) {
  if (K < 2) return sb_fail(err, SB_EINVAL, "ETKF needs at least 2 members, got %d", K);
  if (op->state_dim != n) return sb_fail(err, SB_EINVAL, "operator is for %d components, state has %d", op->state_dim, n);
  etkf_ws w;
  int rc = ws_init(&w, K, n, op->n_obs, err);
  if (rc) return rc;
  rc = analysis_ws(&w, X, op, y, std, inflation, radius, err);
  ws_free(&w);
  return rc;
}

// ----------------------------------------------------------------------------
// estimator

typedef struct etkf_cfg {
  int localize;
  double radius, inflation; /* defaults: per system (ETKF_2D_* for 2D states) */
} etkf_cfg;

/* 2D defaults (Kolmogorov flow, 2 x 32 x 32): the best of the search in
 * docs/kolmogorov.md ("Choosing radius and inflation") for coarsen 4, sigma 0.1. */
#define LETKF_2D_RADIUS 8.0
#define LETKF_2D_INFLATION 1.1

typedef struct etkf_params {
  double inflation;
  int ensemble_size;
  double radius;
} etkf_params;

/* letkf's parameters; etkf's are the same without the first (radius) */
static const params_spec letkf_spec[] = {
    {"radius", PARAM_NUM, 0, INFINITY, 1}, {"inflation", PARAM_NUM, 1, 10, 0},
    {"ensemble_size", PARAM_INT, 2, 100000, 0}, {NULL, 0, 0, 0, 0},
};

/* j was checked against e->params by est_sample */
static void parse_params(const estimator *e, const json_t *j, int S, etkf_params *pp) {
  const etkf_cfg *cfg = e->impl;
  pp->inflation = params_num(j, "inflation", cfg->inflation);
  pp->ensemble_size = (int)params_int(j, "ensemble_size", S);
  pp->radius = cfg->localize ? params_num(j, "radius", cfg->radius) : 0.0;
}

/* Returns S samples from the K members: the members themselves when K == S,
 * else draws from N(mean, anomalies^T anomalies / (K-1)) with coefficients z
 * shared across the window times (stream 2^40 of seed). */
static void emit(const double *X, int K, int n, double *out, int S, size_t out_stride, const double *Z) {
  if (K == S) {
    for (int i = 0; i < S; i++) memcpy(out + (size_t)i * out_stride, X + (size_t)i * n, sizeof(double) * (size_t)n);
    return;
  }
  for (int i = 0; i < S; i++) {
    double *o = out + (size_t)i * out_stride;
    for (int c = 0; c < n; c++) {
      double m = 0.0;
      for (int j = 0; j < K; j++) m += X[(size_t)j * n + c];
      m /= K;
      double s = m;
      for (int j = 0; j < K; j++) s += Z[(size_t)i * K + j] * (X[(size_t)j * n + c] - m) / sqrt((double)(K - 1));
      o[c] = s;
    }
  }
}

/* Draws the K initial members X [K][n] from a background (est.h): the
 * members themselves when K equals their count; otherwise
 * mean + sum_j z_j (x_j - mean) / sqrt(S_b - 1) with z standard normal, so
 * the draws stay in the background's subspace with its covariance; for a
 * mean+std background mean + std * z. z comes from stream 2^41 of seed (the
 * emission uses 2^40). */
static int background_members(const est_background *b, double *X, int K, int n, uint64_t seed, sb_error *err) {
  if (b->members && b->n_members == K) {
    memcpy(X, b->members, sizeof(double) * (size_t)K * (size_t)n);
    return SB_OK;
  }
  rng g;
  rng_init(&g, seed, (uint64_t)1 << 41);
  if (!b->members) {
    for (int i = 0; i < K; i++)
      for (int c = 0; c < n; c++) X[(size_t)i * n + c] = b->mean[c] + b->std[c] * rng_normal(&g);
    return SB_OK;
  }
  int Sb = b->n_members;
  double *mean = calloc((size_t)n, sizeof(double)), *z = malloc(sizeof(double) * (size_t)Sb);
  if (!mean || !z) {
    free(mean);
    free(z);
    return sb_fail(err, SB_ENOMEM, "out of memory for a background of %d members", Sb);
  }
  for (int j = 0; j < Sb; j++)
    for (int c = 0; c < n; c++) mean[c] += b->members[(size_t)j * n + c] / Sb;
  double scale = 1.0 / sqrt((double)(Sb - 1));
  for (int i = 0; i < K; i++) {
    double *xi = X + (size_t)i * n;
    rng_fill_normal(&g, z, (size_t)Sb);
    for (int c = 0; c < n; c++) xi[c] = mean[c];
    for (int j = 0; j < Sb; j++) {
      const double *bj = b->members + (size_t)j * n;
      double zj = z[j] * scale;
      for (int c = 0; c < n; c++) xi[c] += zj * (bj[c] - mean[c]);
    }
  }
  free(mean);
  free(z);
  return SB_OK;
}

static int etkf_check_options(const estimator *e, const est_options *o, sb_error *err) {
  etkf_params pp;
  parse_params(e, o->params, o->n_samples, &pp);
  if (pp.ensemble_size < 2)
    return sb_fail(err, SB_EINVAL, "%s needs an ensemble of at least 2 members (n_samples or params.ensemble_size)",
                   e->kind);
  return SB_OK;
}

/* Workspace (ws_init), members, the draws Z; the initial members (the
 * climatological prior, or from the background: K x S_b draws); per time:
 * the forecast, the analysis (ensemble space when q >= K, else observation
 * space; per node for letkf) and the emission of S samples from K members. */
static void etkf_cost(const estimator *e, const est_problem *p, const est_options *o, est_cost *c) {
  const etkf_cfg *cfg = e->impl;
  etkf_params pp;
  parse_params(e, o->params, o->n_samples, &pp);
  double K = pp.ensemble_size, S = o->n_samples, n = p->sim->dim, q = p->op->n_obs, W = p->window;
  double ws = n + K * n + 3 * K * q + 3 * q + 3 * K * K + 6 * K;
  c->bytes += 8.0 * (K * n + (K != S ? S * K : 0) + ws) + 8.0 * q;
  double r = q < K ? q : K;
  double analysis = 2 * K * q * r + 10 * r * r * r + 2 * K * K * n + 4 * K * q;
  if (cfg->localize) analysis *= n;
  double t0 = (double)(p->time_index - p->window + 1);
  double prior = K * (p->sim->flops_init + (p->sim->stationary ? 0 : t0 * p->sim->flops_step));
  if (p->background) {
    const est_background *b = p->background;
    prior = b->members ? (b->n_members == K ? K * n : 2 * K * n * b->n_members + 2 * n * b->n_members) : 2 * K * n;
    if (b->members) c->bytes += 8.0 * (n + b->n_members);
  }
  double emit = K != S ? 2 * S * n * K * (o->want_window ? W + 1 : 1) : S * n;
  c->flops += prior + W * (K * p->sim->flops_step + analysis) + emit;
}

static int etkf_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r, sb_error *err) {
  const etkf_cfg *cfg = e->impl;
  etkf_params pp;
  int S = o->n_samples;
  parse_params(e, o->params, S, &pp);
  int rc = SB_OK;
  int K = pp.ensemble_size, n = p->sim->dim, W = p->window;
  if (K < 2) return sb_fail(err, SB_EINVAL, "%s needs an ensemble of at least 2 members (n_samples or ensemble_size)", e->kind);
  rc = est_result_alloc(r, S, n, W, o->want_window, 0, err);
  if (rc) return rc;
  double *X = malloc(sizeof(double) * (size_t)K * (size_t)n);
  double *Z = NULL;
  etkf_ws w;
  memset(&w, 0, sizeof w);
  if (!X) {
    rc = sb_fail(err, SB_ENOMEM, "out of memory for %d members", K);
    goto done;
  }
  if (K != S) {
    Z = malloc(sizeof(double) * (size_t)S * (size_t)K);
    if (!Z) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      goto done;
    }
    rng g;
    rng_init(&g, o->seed, (uint64_t)1 << 40);
    rng_fill_normal(&g, Z, (size_t)S * (size_t)K);
  }
  if ((rc = ws_init(&w, K, n, p->op->n_obs, err))) goto done;
  if (p->background)
    rc = background_members(p->background, X, K, n, o->seed, err);
  else
    rc = est_prior_ensemble(p->sim, X, K, p->time_index - W + 1, o->seed, o->cancel, err);
  if (rc) goto done;
  for (int t = 0; t < W; t++) {
    if (sb_cancelled(o->cancel)) {
      rc = sb_fail(err, SB_ECANCEL, "cancelled");
      goto done;
    }
    if (t > 0 && (rc = est_advance_members(p->sim, X, K, o->cancel, err))) goto done;
    rc = analysis_ws(&w, X, p->op, p->y + (size_t)t * p->op->n_obs, p->noise->std, pp.inflation, pp.radius, err);
    if (rc) goto done;
    if (o->want_window) emit(X, K, n, r->window_samples + (size_t)t * n, S, (size_t)W * n, Z);
    if (o->progress) o->progress(o->progress_ctx, (double)(t + 1) / W);
  }
  emit(X, K, n, r->samples, S, (size_t)n, Z);
  int bad = 0;
  jb_set(r->diagnostics, "ensemble_size", json_integer(K), &bad);
  jb_set_real(r->diagnostics, "inflation", pp.inflation, &bad);
  if (cfg->localize) jb_set_real(r->diagnostics, "radius", pp.radius, &bad);
  jb_set(r->diagnostics, "window_states", json_string("filtered"), &bad);
  jb_set(r->diagnostics, "prior", json_string(p->background ? "background" : "climatology"), &bad);
  if (bad) rc = sb_fail(err, SB_ENOMEM, "out of memory for the diagnostics");
done:
  ws_free(&w);
  free(X);
  free(Z);
  return rc;
}

static void etkf_destroy(estimator *e) {
  free(e->impl);
  e->impl = NULL;
}

int est_etkf_create(estimator **out, sim *s, int localize, sb_error *err) {
  *out = NULL;
  estimator *e = calloc(1, sizeof *e);
  etkf_cfg *cfg = calloc(1, sizeof *cfg);
  json_t *info = json_object();
  if (!e || !cfg || !info) {
    free(e);
    free(cfg);
    json_decref(info);
    sim_free(s);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  cfg->localize = localize;
  int is2d = s->height > 1;
  cfg->radius = is2d ? LETKF_2D_RADIUS : 10.0;
  cfg->inflation = is2d && localize ? LETKF_2D_INFLATION : 1.02;
  const char *kind = localize ? "letkf" : "etkf";
  snprintf(e->kind, sizeof e->kind, "%s", kind);
  snprintf(e->name, sizeof e->name, "%s-%s", s->preset, kind);
  e->sim = s;
  e->window = 0;
  e->has_density = 0;
  e->has_window = 1;
  e->accepts_background = 1;
  int bad = 0;
  jb_set(info, "description",
         json_string(localize ? "windowed LETKF (Gaspari-Cohn localization), filtered window states"
                              : "windowed ETKF (symmetric square root), filtered window states"),
         &bad);
  json_t *defaults = jb_object(&bad);
  jb_set_real(defaults, "inflation", cfg->inflation, &bad);
  jb_set(defaults, "ensemble_size", json_string("n_samples"), &bad);
  if (localize) jb_set_real(defaults, "radius", cfg->radius, &bad);
  jb_set(info, "params", defaults, &bad);
  e->info = info;
  e->impl = cfg;
  e->sample = etkf_sample;
  e->params = localize ? letkf_spec : letkf_spec + 1;
  e->check_options = etkf_check_options;
  e->cost = etkf_cost;
  e->destroy = etkf_destroy;
  if (bad) {
    est_free(e); /* frees cfg, s and info */
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  *out = e;
  return SB_OK;
}
