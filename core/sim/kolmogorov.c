/* kolmogorov.c: the 2D Kolmogorov-flow solver (see kolmogorov.h for the equations, the
 * scheme and the choices). */
#include "sim/kolmogorov.h"

#include <complex.h>
#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"

typedef double complex cplx;

enum { KF_MAX_NSUB = 4096 };

/* i k z without a general complex multiplication (which checks for NaN/Inf in a libcall) */
static inline cplx ik(double k, cplx z) { return CMPLX(-k * cimag(z), k * creal(z)); }

/* FFTW's planner (plan creation and destruction) is not thread-safe. */
static pthread_mutex_t kf_plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* plans for a chunk of nb trajectories */
typedef struct kf_plans {
  int nb;
  fftw_plan inv4;  /* 4 nb spectral fields -> physical (advection terms) */
  fftw_plan inv2;  /* 2 nb spectral fields -> physical (velocity) */
  fftw_plan fwd1;  /* nb physical fields -> spectral (the product) */
  fftw_plan cfwd2; /* 2 nb coarse physical fields -> coarse spectral */
} kf_plans;

struct kf_solver {
  kf_config c;
  int n, m, f, nx;      /* nx = n/2 + 1 */
  size_t S, P;          /* spectral and physical sizes of one field */
  int mx;               /* m/2 + 1 */
  size_t cS, cP;        /* coarse spectral, physical sizes */
  int kmax;             /* largest kept wavenumber */
  double *kx, *ky;      /* per spectral index */
  double *k2inv;        /* 1/k^2 (0 at k = 0) */
  unsigned char *mask;  /* 2/3 rule */
  double *lin;          /* -(nu k^2 + alpha) */
  cplx *G;              /* block-mean transfer, index k + m/2 for k = -m/2..m/2 */
  double dt_default;
  double *E1, *E2;      /* exp(lin dt/2), exp(lin dt) for dt_default */
  kf_plans big, one;
};

/* per-call buffers for up to nb trajectories */
typedef struct kf_work {
  int nb;
  cplx *w, *tmp, *k, *acc; /* [nb][S] */
  cplx *in4;               /* [nb][4][S] */
  double *ph4;             /* [nb][4][P] */
  double *prod;            /* [nb][P] */
  double *cx;              /* [nb][2][cP] */
  cplx *cxh;               /* [nb][2][cS] */
  double *U, *V, *Us, *Vs; /* [nb] */
  double *E1, *E2;         /* [S] for a step size other than the default */
  double dt_e;
} kf_work;

void kf_config_default(kf_config *c) {
  memset(c, 0, sizeof *c);
  c->n = 64;
  c->m = 32;
  c->nu = 1e-3;
  c->alpha = 0.1;
  c->amp = 1.0;
  c->kf = 4;
  c->interval = 0.2;
  c->nsub_min = 10;
  c->cfl = 3.0;
  c->chunk = 4;
  c->init_umax = 3.0;
  c->init_k0 = 4.0;
}

const kf_config *kf_get_config(const kf_solver *s) { return &s->c; }
size_t kf_spec_size(const kf_solver *s) { return s->S; }

// ----------------------------------------------------------------------------
// buffers and plans

static void work_free(kf_work *w) {
  if (!w) return;
  fftw_free(w->w); fftw_free(w->tmp); fftw_free(w->k); fftw_free(w->acc);
  fftw_free(w->in4); fftw_free(w->ph4); fftw_free(w->prod);
  fftw_free(w->cx); fftw_free(w->cxh);
  free(w->U); free(w->V); free(w->Us); free(w->Vs);
  free(w->E1); free(w->E2);
  free(w);
}

static kf_work *work_new(const kf_solver *s, int nb) {
  kf_work *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->nb = nb;
  size_t B = (size_t)nb;
  w->w = fftw_malloc(sizeof(cplx) * B * s->S);
  w->tmp = fftw_malloc(sizeof(cplx) * B * s->S);
  w->k = fftw_malloc(sizeof(cplx) * B * s->S);
  w->acc = fftw_malloc(sizeof(cplx) * B * s->S);
  w->in4 = fftw_malloc(sizeof(cplx) * 4 * B * s->S);
  w->ph4 = fftw_malloc(sizeof(double) * 4 * B * s->P);
  w->prod = fftw_malloc(sizeof(double) * B * s->P);
  w->cx = fftw_malloc(sizeof(double) * 2 * B * s->cP);
  w->cxh = fftw_malloc(sizeof(cplx) * 2 * B * s->cS);
  w->U = malloc(sizeof(double) * B);
  w->V = malloc(sizeof(double) * B);
  w->Us = malloc(sizeof(double) * B);
  w->Vs = malloc(sizeof(double) * B);
  w->E1 = malloc(sizeof(double) * s->S);
  w->E2 = malloc(sizeof(double) * s->S);
  w->dt_e = -1;
  if (!w->w || !w->tmp || !w->k || !w->acc || !w->in4 || !w->ph4 || !w->prod || !w->cx || !w->cxh || !w->U ||
      !w->V || !w->Us || !w->Vs || !w->E1 || !w->E2) {
    work_free(w);
    return NULL;
  }
  return w;
}

static void plans_destroy(kf_plans *p) {
  fftw_plan *all[4] = {&p->inv4, &p->inv2, &p->fwd1, &p->cfwd2};
  for (int i = 0; i < 4; i++)
    if (*all[i]) {
      fftw_destroy_plan(*all[i]);
      *all[i] = NULL;
    }
}

/* caller holds kf_plan_lock */
static int plans_make(const kf_solver *s, kf_plans *p, int nb) {
  p->nb = nb;
  kf_work *w = work_new(s, nb);
  if (!w) return SB_ENOMEM;
  int n2[2] = {s->n, s->n}, m2[2] = {s->m, s->m};
  unsigned fl = FFTW_ESTIMATE;
  p->inv4 = fftw_plan_many_dft_c2r(2, n2, 4 * nb, (fftw_complex *)w->in4, NULL, 1, (int)s->S, w->ph4, NULL, 1,
                                   (int)s->P, fl);
  p->inv2 = fftw_plan_many_dft_c2r(2, n2, 2 * nb, (fftw_complex *)w->in4, NULL, 1, (int)s->S, w->ph4, NULL, 1,
                                   (int)s->P, fl);
  p->fwd1 = fftw_plan_many_dft_r2c(2, n2, nb, w->prod, NULL, 1, (int)s->P, (fftw_complex *)w->k, NULL, 1,
                                   (int)s->S, fl);
  p->cfwd2 = fftw_plan_many_dft_r2c(2, m2, 2 * nb, w->cx, NULL, 1, (int)s->cP, (fftw_complex *)w->cxh, NULL, 1,
                                    (int)s->cS, fl);
  work_free(w);
  if (!p->inv4 || !p->inv2 || !p->fwd1 || !p->cfwd2) {
    plans_destroy(p);
    return SB_ENOTSUP;
  }
  return SB_OK;
}

void kf_free(kf_solver *s) {
  if (!s) return;
  pthread_mutex_lock(&kf_plan_lock);
  plans_destroy(&s->big);
  plans_destroy(&s->one);
  pthread_mutex_unlock(&kf_plan_lock);
  free(s->kx); free(s->ky); free(s->k2inv); free(s->mask); free(s->lin); free(s->G);
  free(s->E1); free(s->E2);
  free(s);
}

static void exps(const kf_solver *s, double dt, double *E1, double *E2) {
  for (size_t i = 0; i < s->S; i++) {
    E1[i] = exp(s->lin[i] * dt * 0.5);
    E2[i] = exp(s->lin[i] * dt);
  }
}

int kf_create(kf_solver **out, const kf_config *c, sb_error *err) {
  *out = NULL;
  if (c->m < 4 || c->m % 2 || c->n < c->m || c->n % c->m || c->n % 2 || c->n > 4096)
    return sb_fail(err, SB_EINVAL, "kolmogorov: need an even state grid m >= 4 and a solver grid n <= 4096 that is "
                                   "an even multiple of m (got n = %d, m = %d)", c->n, c->m);
  if (!(c->nu >= 0) || !(c->alpha >= 0) || !isfinite(c->amp) || c->kf < 0 || 3 * c->kf >= c->n ||
      !(c->interval > 0) || c->nsub_min < 1 || c->nsub_min > KF_MAX_NSUB || !(c->cfl >= 0) || c->chunk < 1 ||
      c->chunk > 1024 || !(c->init_umax > 0) || !(c->init_k0 > 0))
    return sb_fail(err, SB_EINVAL, "kolmogorov: invalid configuration (nu, alpha >= 0, forcing wavenumber below n/3, "
                                   "interval > 0, 1 <= nsub_min <= %d, cfl >= 0, 1 <= chunk <= 1024)", KF_MAX_NSUB);
  kf_solver *s = calloc(1, sizeof *s);
  if (!s) return sb_fail(err, SB_ENOMEM, "out of memory");
  s->c = *c;
  s->n = c->n;
  s->m = c->m;
  s->f = c->n / c->m;
  s->nx = c->n / 2 + 1;
  s->S = (size_t)s->n * s->nx;
  s->P = (size_t)s->n * s->n;
  s->mx = c->m / 2 + 1;
  s->cS = (size_t)s->m * s->mx;
  s->cP = (size_t)s->m * s->m;
  s->kmax = (int)ceil(s->n / 3.0) - 1;
  s->kx = malloc(sizeof(double) * s->S);
  s->ky = malloc(sizeof(double) * s->S);
  s->k2inv = malloc(sizeof(double) * s->S);
  s->mask = malloc(s->S);
  s->lin = malloc(sizeof(double) * s->S);
  s->E1 = malloc(sizeof(double) * s->S);
  s->E2 = malloc(sizeof(double) * s->S);
  s->G = malloc(sizeof(cplx) * (size_t)(s->m + 1));
  if (!s->kx || !s->ky || !s->k2inv || !s->mask || !s->lin || !s->E1 || !s->E2 || !s->G) {
    kf_free(s);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  int n = s->n;
  for (int j = 0; j < n; j++) {
    int ky = j <= n / 2 ? j : j - n;
    for (int i = 0; i < s->nx; i++) {
      size_t q = (size_t)j * s->nx + i;
      double k2 = (double)i * i + (double)ky * ky;
      s->kx[q] = i;
      s->ky[q] = ky;
      s->k2inv[q] = k2 > 0 ? 1.0 / k2 : 0.0;
      s->mask[q] = 3 * i < n && 3 * abs(ky) < n;
      s->lin[q] = -(c->nu * k2 + c->alpha);
    }
  }
  double h = 2 * M_PI / n;
  for (int k = -s->m / 2; k <= s->m / 2; k++) {
    cplx g = 0;
    for (int q = 0; q < s->f; q++) g += cexp(I * (double)k * q * h);
    s->G[k + s->m / 2] = g / s->f;
  }
  s->dt_default = c->interval / c->nsub_min;
  exps(s, s->dt_default, s->E1, s->E2);
  pthread_mutex_lock(&kf_plan_lock);
  int rc = plans_make(s, &s->big, c->chunk);
  if (!rc) rc = plans_make(s, &s->one, 1);
  pthread_mutex_unlock(&kf_plan_lock);
  if (rc) {
    kf_free(s);
    return sb_fail(err, rc, rc == SB_ENOMEM ? "out of memory" : "kolmogorov: FFTW could not plan the transforms");
  }
  *out = s;
  return SB_OK;
}

// ----------------------------------------------------------------------------
// the scheme on a chunk of nb trajectories (plans p, p->nb == nb)

/* dst = rhs(src) for nb trajectories with mean velocities (U, V) */
static void rhs(const kf_solver *s, const kf_plans *p, kf_work *w, const cplx *src, cplx *dst, const double *U,
                const double *V, int nb) {
  const size_t S = s->S, P = s->P;
  const double inv = 1.0 / (double)P;
  for (int b = 0; b < nb; b++) {
    const cplx *wb = src + (size_t)b * S;
    cplx *uh = w->in4 + (size_t)b * 4 * S, *vh = uh + S, *wx = vh + S, *wy = wx + S;
    for (size_t q = 0; q < S; q++) {
      cplx om = wb[q] * inv;
      cplx psi = om * s->k2inv[q];
      uh[q] = ik(s->ky[q], psi);
      vh[q] = ik(-s->kx[q], psi);
      wx[q] = ik(s->kx[q], om);
      wy[q] = ik(s->ky[q], om);
    }
  }
  fftw_execute_dft_c2r(p->inv4, (fftw_complex *)w->in4, w->ph4);
  for (int b = 0; b < nb; b++) {
    const double *u = w->ph4 + (size_t)b * 4 * P, *v = u + P, *gx = v + P, *gy = gx + P;
    double *pr = w->prod + (size_t)b * P, Ub = U[b], Vb = V[b];
    for (size_t q = 0; q < P; q++) pr[q] = (u[q] + Ub) * gx[q] + (v[q] + Vb) * gy[q];
  }
  fftw_execute_dft_r2c(p->fwd1, w->prod, (fftw_complex *)dst);
  const double fz = -s->c.amp * s->c.kf * (double)P / 2; /* curl of (A sin(kf y), 0) */
  const size_t qf1 = (size_t)s->c.kf * s->nx, qf2 = (size_t)(s->n - s->c.kf) * s->nx;
  for (int b = 0; b < nb; b++) {
    cplx *d = dst + (size_t)b * S;
    for (size_t q = 0; q < S; q++) d[q] = s->mask[q] ? -d[q] : 0;
    if (s->c.kf > 0) { /* kf = 0: a uniform force has no curl */
      d[qf1] += fz;
      d[qf2] += fz;
    }
  }
}

/* one Lawson IF-RK4 step of dt on w->w (nb trajectories), mean velocity w->U, w->V */
static void step(const kf_solver *s, const kf_plans *p, kf_work *w, double dt, int nb) {
  const size_t S = s->S, T = (size_t)nb * S;
  const double *E1 = s->E1, *E2 = s->E2;
  if (dt != s->dt_default) {
    if (w->dt_e != dt) {
      exps(s, dt, w->E1, w->E2);
      w->dt_e = dt;
    }
    E1 = w->E1;
    E2 = w->E2;
  }
  const double h1 = exp(-s->c.alpha * dt * 0.5), h2 = h1 * h1;
  cplx *x = w->w, *t = w->tmp, *k = w->k, *a = w->acc;
  const double hd = 0.5 * dt;
  /* k1 */
  rhs(s, p, w, x, k, w->U, w->V, nb);
  for (size_t o = 0; o < T; o += S)
    for (size_t q = 0; q < S; q++) {
      a[o + q] = E2[q] * k[o + q];
      t[o + q] = E1[q] * (x[o + q] + hd * k[o + q]);
    }
  for (int b = 0; b < nb; b++) w->Us[b] = w->U[b] * h1, w->Vs[b] = w->V[b] * h1;
  /* k2 */
  rhs(s, p, w, t, k, w->Us, w->Vs, nb);
  for (size_t o = 0; o < T; o += S)
    for (size_t q = 0; q < S; q++) {
      a[o + q] += 2.0 * E1[q] * k[o + q];
      t[o + q] = E1[q] * x[o + q] + hd * k[o + q];
    }
  /* k3 */
  rhs(s, p, w, t, k, w->Us, w->Vs, nb);
  for (size_t o = 0; o < T; o += S)
    for (size_t q = 0; q < S; q++) {
      a[o + q] += 2.0 * E1[q] * k[o + q];
      t[o + q] = E2[q] * x[o + q] + dt * E1[q] * k[o + q];
    }
  for (int b = 0; b < nb; b++) w->Us[b] = w->U[b] * h2, w->Vs[b] = w->V[b] * h2;
  /* k4 */
  rhs(s, p, w, t, k, w->Us, w->Vs, nb);
  for (size_t o = 0; o < T; o += S)
    for (size_t q = 0; q < S; q++) x[o + q] = E2[q] * x[o + q] + dt / 6.0 * (a[o + q] + k[o + q]);
  for (int b = 0; b < nb; b++) w->U[b] *= h2, w->V[b] *= h2;
}

/* coarse states w->cx [nb][2][cP] -> fine w->w, w->U, w->V */
static void prolong(const kf_solver *s, const kf_plans *p, kf_work *w, int nb) {
  const int m = s->m, n = s->n;
  const double scale = (double)s->P / (double)s->cP;
  fftw_execute_dft_r2c(p->cfwd2, w->cx, (fftw_complex *)w->cxh);
  for (int b = 0; b < nb; b++) {
    const cplx *uc = w->cxh + (size_t)b * 2 * s->cS, *vc = uc + s->cS;
    cplx *wb = w->w + (size_t)b * s->S;
    memset(wb, 0, sizeof(cplx) * s->S);
    for (int j = 0; j < m; j++) {
      int ky = j <= m / 2 ? j : j - m;
      if (2 * abs(ky) >= m) continue;
      for (int i = 0; i < m / 2; i++) {
        cplx g = s->G[i + m / 2] * s->G[ky + m / 2];
        size_t qc = (size_t)j * s->mx + i;
        cplx u = uc[qc] / g * scale, v = vc[qc] / g * scale;
        size_t qf = (size_t)(ky >= 0 ? ky : ky + n) * s->nx + i;
        if (!s->mask[qf]) continue;
        wb[qf] = ik((double)i, v) - ik((double)ky, u);
      }
    }
    w->U[b] = creal(uc[0]) / (double)s->cP;
    w->V[b] = creal(vc[0]) / (double)s->cP;
  }
}

/* fine w->w (+ mean) -> velocity on the solver grid, w->ph4 [b][0..1][P] */
static void velocity(const kf_solver *s, const kf_plans *p, kf_work *w, int nb) {
  const size_t S = s->S;
  const double inv = 1.0 / (double)s->P;
  for (int b = 0; b < nb; b++) {
    const cplx *wb = w->w + (size_t)b * S;
    cplx *uh = w->in4 + (size_t)b * 2 * S, *vh = uh + S;
    for (size_t q = 0; q < S; q++) {
      cplx psi = wb[q] * s->k2inv[q] * inv;
      uh[q] = ik(s->ky[q], psi);
      vh[q] = ik(-s->kx[q], psi);
    }
    uh[0] = w->U[b];
    vh[0] = w->V[b];
  }
  fftw_execute_dft_c2r(p->inv2, (fftw_complex *)w->in4, w->ph4);
}

/* fine -> coarse block means into w->cx */
static void restrict_(const kf_solver *s, const kf_plans *p, kf_work *w, int nb) {
  velocity(s, p, w, nb);
  const int m = s->m, n = s->n, f = s->f;
  const double inv = 1.0 / ((double)f * f);
  for (int b = 0; b < nb; b++)
    for (int c = 0; c < 2; c++) {
      const double *src = w->ph4 + ((size_t)b * 2 + c) * s->P;
      double *dst = w->cx + ((size_t)b * 2 + c) * s->cP;
      for (int J = 0; J < m; J++)
        for (int Iq = 0; Iq < m; Iq++) {
          double sum = 0;
          for (int a = 0; a < f; a++) {
            const double *row = src + (size_t)(J * f + a) * n + (size_t)Iq * f;
            for (int e = 0; e < f; e++) sum += row[e];
          }
          dst[(size_t)J * m + Iq] = sum * inv;
        }
    }
}

/* steps for one interval of a coarse state: from its largest speeds */
static long nsub_for(const kf_solver *s, const double *x) {
  if (s->c.cfl <= 0) return s->c.nsub_min;
  double um = 0, vm = 0;
  for (size_t i = 0; i < s->cP; i++) {
    double a = fabs(x[i]), b = fabs(x[s->cP + i]);
    if (!isfinite(a) || !isfinite(b)) return KF_MAX_NSUB + 1;
    if (a > um) um = a;
    if (b > vm) vm = b;
  }
  double need = ceil(s->c.interval * s->kmax * (um + vm) / s->c.cfl);
  if (!(need <= KF_MAX_NSUB + 1.0)) return KF_MAX_NSUB + 1; /* too fast */
  return need > s->c.nsub_min ? (long)need : s->c.nsub_min;
}

static int all_finite(const double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* one interval for nb trajectories already in w->cx, nsub steps each */
static void interval(const kf_solver *s, const kf_plans *p, kf_work *w, int nb, long nsub) {
  prolong(s, p, w, nb);
  double dt = s->c.interval / (double)nsub;
  for (long i = 0; i < nsub; i++) step(s, p, w, dt, nb);
  restrict_(s, p, w, nb);
}

int kf_advance(const kf_solver *s, double *x, size_t B, long n, sb_error *err) {
  if (n < 0) return sb_fail(err, SB_EINVAL, "cannot advance by a negative number of intervals (%ld)", n);
  if (n == 0 || B == 0) return SB_OK;
  const size_t D = 2 * s->cP;
  const int K = s->big.nb;
  /* buffers for a whole chunk only when one can fill up (B = 1 callers are common) */
  kf_work *w = work_new(s, B >= (size_t)K ? K : 1);
  size_t *idx = malloc(sizeof(size_t) * (size_t)K);
  if (!w || !idx) {
    work_free(w);
    free(idx);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  int rc = SB_OK;
  for (long t = 0; t < n && !rc; t++) {
    int nb = 0;
    for (size_t b = 0; b < B && !rc; b++) {
      double *xb = x + b * D;
      long ns = nsub_for(s, xb);
      if (ns > KF_MAX_NSUB) {
        rc = all_finite(xb, D) ? sb_fail(err, SB_ERANGE, "kolmogorov: state %zu is too fast to integrate (more than "
                                                         "%d steps per interval)", b, KF_MAX_NSUB)
                               : sb_fail(err, SB_ENUMERIC, "kolmogorov: state %zu is not finite", b);
        break;
      }
      if (ns == s->c.nsub_min && K > 1 && w->nb == K) {
        idx[nb++] = b;
        if (nb < K) continue;
        for (int i = 0; i < K; i++) memcpy(w->cx + (size_t)i * D, x + idx[i] * D, sizeof(double) * D);
        interval(s, &s->big, w, K, ns);
        for (int i = 0; i < K; i++) memcpy(x + idx[i] * D, w->cx + (size_t)i * D, sizeof(double) * D);
        nb = 0;
        continue;
      }
      memcpy(w->cx, xb, sizeof(double) * D);
      interval(s, &s->one, w, 1, ns);
      memcpy(xb, w->cx, sizeof(double) * D);
    }
    /* the chunk that did not fill up, one by one */
    for (int i = 0; i < nb && !rc; i++) {
      memcpy(w->cx, x + idx[i] * D, sizeof(double) * D);
      interval(s, &s->one, w, 1, s->c.nsub_min);
      memcpy(x + idx[i] * D, w->cx, sizeof(double) * D);
    }
    for (size_t b = 0; b < B && !rc; b++)
      if (!all_finite(x + b * D, D))
        rc = sb_fail(err, SB_ENUMERIC, "kolmogorov: state %zu blew up in interval %ld of %ld", b, t + 1, n);
  }
  work_free(w);
  free(idx);
  return rc;
}

// ----------------------------------------------------------------------------
// initial fields

/* random smooth field for trajectory b of the chunk into w->w (zero mean) */
static void random_fine(const kf_solver *s, const kf_plans *p, kf_work *w, int nb, uint64_t seed,
                        uint64_t stream0) {
  const int m = s->m, n = s->n;
  const double k0 = s->c.init_k0, scale = (double)s->P / (double)s->cP;
  for (int b = 0; b < nb; b++) {
    rng r;
    rng_init(&r, seed, stream0 + (uint64_t)b);
    rng_fill_normal(&r, w->cx + (size_t)b * 2 * s->cP, s->cP);
    memset(w->cx + ((size_t)b * 2 + 1) * s->cP, 0, sizeof(double) * s->cP);
  }
  fftw_execute_dft_r2c(p->cfwd2, w->cx, (fftw_complex *)w->cxh);
  for (int b = 0; b < nb; b++) {
    const cplx *nh = w->cxh + (size_t)b * 2 * s->cS;
    cplx *wb = w->w + (size_t)b * s->S;
    memset(wb, 0, sizeof(cplx) * s->S);
    for (int j = 0; j < m; j++) {
      int ky = j <= m / 2 ? j : j - m;
      if (2 * abs(ky) >= m) continue;
      for (int i = 0; i < m / 2; i++) {
        double k2 = (double)i * i + (double)ky * ky;
        if (k2 == 0) continue;
        double k = sqrt(k2), r = k / k0;
        double amp = sqrt(r * r * r * r * exp(-2 * r * r) / (k2 * k)); /* |psi| for E(k) */
        size_t qf = (size_t)(ky >= 0 ? ky : ky + n) * s->nx + i;
        if (!s->mask[qf]) continue;
        /* omega = k^2 psi */
        wb[qf] = nh[(size_t)j * s->mx + i] * amp * k2 * scale;
      }
    }
    w->U[b] = w->V[b] = 0;
  }
  velocity(s, p, w, nb);
  for (int b = 0; b < nb; b++) {
    const double *u = w->ph4 + (size_t)b * 2 * s->P, *v = u + s->P;
    double mx = 0;
    for (size_t q = 0; q < s->P; q++) {
      double sp = u[q] * u[q] + v[q] * v[q];
      if (sp > mx) mx = sp;
    }
    double a = mx > 0 ? s->c.init_umax / sqrt(mx) : 0;
    cplx *wb = w->w + (size_t)b * s->S;
    for (size_t q = 0; q < s->S; q++) wb[q] *= a;
  }
}

int kf_init_random(const kf_solver *s, double *x, size_t B, uint64_t seed, uint64_t stream0, sb_error *err) {
  const size_t D = 2 * s->cP;
  kf_work *w = work_new(s, 1);
  if (!w) return sb_fail(err, SB_ENOMEM, "out of memory");
  for (size_t b = 0; b < B; b++) {
    random_fine(s, &s->one, w, 1, seed, stream0 + b);
    restrict_(s, &s->one, w, 1);
    memcpy(x + b * D, w->cx, sizeof(double) * D);
  }
  work_free(w);
  return SB_OK;
}

// ----------------------------------------------------------------------------
// one trajectory at the solver level

int kf_prolong(const kf_solver *s, const double *x, double *wout, double uv[2], sb_error *err) {
  kf_work *w = work_new(s, 1);
  if (!w) return sb_fail(err, SB_ENOMEM, "out of memory");
  memcpy(w->cx, x, sizeof(double) * 2 * s->cP);
  prolong(s, &s->one, w, 1);
  memcpy(wout, w->w, sizeof(cplx) * s->S);
  uv[0] = w->U[0];
  uv[1] = w->V[0];
  work_free(w);
  return SB_OK;
}

int kf_restrict(const kf_solver *s, const double *win, const double uv[2], double *x, sb_error *err) {
  kf_work *w = work_new(s, 1);
  if (!w) return sb_fail(err, SB_ENOMEM, "out of memory");
  memcpy(w->w, win, sizeof(cplx) * s->S);
  w->U[0] = uv[0];
  w->V[0] = uv[1];
  restrict_(s, &s->one, w, 1);
  memcpy(x, w->cx, sizeof(double) * 2 * s->cP);
  work_free(w);
  return SB_OK;
}

int kf_steps(const kf_solver *s, double *win, double uv[2], double dt, long nsteps, sb_error *err) {
  if (!(dt > 0) || nsteps < 0) return sb_fail(err, SB_EINVAL, "kolmogorov: need dt > 0 and nsteps >= 0");
  kf_work *w = work_new(s, 1);
  if (!w) return sb_fail(err, SB_ENOMEM, "out of memory");
  memcpy(w->w, win, sizeof(cplx) * s->S);
  w->U[0] = uv[0];
  w->V[0] = uv[1];
  for (long i = 0; i < nsteps; i++) step(s, &s->one, w, dt, 1);
  memcpy(win, w->w, sizeof(cplx) * s->S);
  uv[0] = w->U[0];
  uv[1] = w->V[0];
  work_free(w);
  return SB_OK;
}

int kf_velocity(const kf_solver *s, const double *win, const double uv[2], double *u, double *v, sb_error *err) {
  kf_work *w = work_new(s, 1);
  if (!w) return sb_fail(err, SB_ENOMEM, "out of memory");
  memcpy(w->w, win, sizeof(cplx) * s->S);
  w->U[0] = uv[0];
  w->V[0] = uv[1];
  velocity(s, &s->one, w, 1);
  memcpy(u, w->ph4, sizeof(double) * s->P);
  memcpy(v, w->ph4 + s->P, sizeof(double) * s->P);
  work_free(w);
  return SB_OK;
}

int kf_random_fine(const kf_solver *s, double *wout, double uv[2], uint64_t seed, uint64_t stream, sb_error *err) {
  kf_work *w = work_new(s, 1);
  if (!w) return sb_fail(err, SB_ENOMEM, "out of memory");
  random_fine(s, &s->one, w, 1, seed, stream);
  memcpy(wout, w->w, sizeof(cplx) * s->S);
  uv[0] = uv[1] = 0;
  work_free(w);
  return SB_OK;
}

void kf_fine_stats(const kf_solver *s, const double *win, const double uv[2], kf_stats *st) {
  const cplx *w = (const cplx *)win;
  const double P2 = (double)s->P * (double)s->P;
  double e = 0, z = 0;
  for (int j = 0; j < s->n; j++)
    for (int i = 0; i < s->nx; i++) {
      size_t q = (size_t)j * s->nx + i;
      double wt = (i == 0 || 2 * i == s->n) ? 1.0 : 2.0; /* r2c keeps half the plane */
      double a = creal(w[q]) * creal(w[q]) + cimag(w[q]) * cimag(w[q]);
      e += wt * a * s->k2inv[q];
      z += wt * a;
    }
  st->energy = 0.5 * e / P2 + 0.5 * (uv[0] * uv[0] + uv[1] * uv[1]);
  st->enstrophy = 0.5 * z / P2;
  /* <u sin(kf y)> = -Re(omega_hat(ky = kf, kx = 0)) / (kf n^2) */
  st->forcing = s->c.kf > 0 ? -s->c.amp * creal(w[(size_t)s->c.kf * s->nx]) / (s->c.kf * (double)s->P) : 0;
  st->dissipation = 2 * s->c.nu * st->enstrophy;
  st->drag = 2 * s->c.alpha * st->energy;
}

int kf_coarse_spectrum(const kf_solver *s, const double *x, size_t B, double *spec, sb_error *err) {
  kf_work *w = work_new(s, 1);
  if (!w) return sb_fail(err, SB_ENOMEM, "out of memory");
  const int m = s->m;
  const double c2 = (double)s->cP * (double)s->cP;
  for (size_t b = 0; b < B; b++) {
    memcpy(w->cx, x + b * 2 * s->cP, sizeof(double) * 2 * s->cP);
    fftw_execute_dft_r2c(s->one.cfwd2, w->cx, (fftw_complex *)w->cxh);
    for (int c = 0; c < 2; c++) {
      const cplx *h = w->cxh + (size_t)c * s->cS;
      for (int j = 0; j < m; j++) {
        int ky = j <= m / 2 ? j : j - m;
        for (int i = 0; i < s->mx; i++) {
          double wt = (i == 0 || 2 * i == m) ? 1.0 : 2.0;
          int shell = (int)lround(sqrt((double)i * i + (double)ky * ky));
          if (shell > m / 2) continue;
          cplx a = h[(size_t)j * s->mx + i];
          spec[shell] += 0.5 * wt * (creal(a) * creal(a) + cimag(a) * cimag(a)) / c2;
        }
      }
    }
  }
  work_free(w);
  return SB_OK;
}
