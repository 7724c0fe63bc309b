/* eval_run.c: test-set generation and the threaded evaluation loop. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval/eval.h"
#include "util/jsonb.h"
#include "util/par.h"
#include "util/rng.h"

void eval_cases_free(eval_cases *cs) {
  if (!cs) return;
  free(cs->t);
  free(cs->truth);
  free(cs->y);
  memset(cs, 0, sizeof *cs);
}

int eval_make_cases(eval_cases *cs, const sim *s, const obs_op *op, const obs_noise *nz, int W, int C, long t_lo,
                    long t_hi, uint64_t seed, sb_error *err) {
  return eval_make_cases_at(cs, s, op, nz, W, C, 0, t_lo, t_hi, seed, err);
}

int eval_make_cases_at(eval_cases *cs, const sim *s, const obs_op *op, const obs_noise *nz, int W, int C, long first,
                       long t_lo, long t_hi, uint64_t seed, sb_error *err) {
  memset(cs, 0, sizeof *cs);
  if (W < 1 || W > 1024) return sb_fail(err, SB_ERANGE, "window %d outside 1..1024", W);
  if (C < 1) return sb_fail(err, SB_ERANGE, "need at least one case, got %d", C);
  if (first < 0 || first > ((long)1 << 38) - C) /* the noise streams 2^48 + 1024 c stay below 2^49 */
    return sb_fail(err, SB_ERANGE, "first case %ld outside 0..2^38 - %d", first, C);
  if (t_lo > t_hi || t_lo < W - 1 || t_hi > s->t_max)
    return sb_fail(err, SB_ERANGE, "time indices %ld..%ld outside %d..%ld for %s with a window of %d", t_lo, t_hi,
                   W - 1, s->t_max, s->preset, W);
  int n = s->dim, p = op->n_obs;
  cs->n_cases = C;
  cs->first = first;
  cs->window = W;
  cs->dim = n;
  cs->n_obs = p;
  cs->t = malloc(sizeof(long) * (size_t)C);
  cs->truth = malloc(sizeof(double) * (size_t)C * W * n);
  cs->y = malloc(sizeof(double) * (size_t)C * W * (p ? p : 1));
  if (!cs->t || !cs->truth || !cs->y) {
    eval_cases_free(cs);
    return sb_fail(err, SB_ENOMEM, "out of memory for %d cases", C);
  }
  for (int c = 0; c < C; c++) {
    const uint64_t g = (uint64_t)first + (uint64_t)c; /* the case's index in the seed's sequence */
    long t = t_lo;
    if (t_hi > t_lo) {
      rng r;
      rng_init(&r, seed, ((uint64_t)1 << 49) + g);
      t = t_lo + (long)rng_below(&r, (uint64_t)(t_hi - t_lo + 1));
    }
    cs->t[c] = t;
    double *x = cs->truth + (size_t)c * W * n;
    int rc = s->stationary ? s->init(s, x, 1, seed, g, err) : sim_sample_at(s, x, 1, t - W + 1, seed, g, err);
    if (rc) {
      eval_cases_free(cs);
      return rc;
    }
    for (int w = 1; w < W; w++) {
      memcpy(x + (size_t)w * n, x + (size_t)(w - 1) * n, sizeof(double) * n);
      if ((rc = s->advance(s, x + (size_t)w * n, 1, 1, err))) {
        eval_cases_free(cs);
        return rc;
      }
    }
    double *y = cs->y + (size_t)c * W * p;
    obs_apply(op, x, y, (size_t)W);
    obs_add_noise(nz, y, (size_t)W, seed, ((uint64_t)1 << 48) + 1024 * g);
  }
  return SB_OK;
}

uint64_t eval_case_seed(uint64_t seed, long c) {
  /* splitmix64 of (seed, c) */
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)c + 0xD1B54A32D192ED03ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// ----------------------------------------------------------------------------
// threaded loop

/* What the metrics keep of one case: its scores, and its diagnostics until
 * they are folded into the running sums (in case order, so the means do
 * not depend on which thread finished first). Samples are dropped as soon
 * as the case is scored, so memory stays flat in the number of cases. */
typedef struct case_out {
  eval_case_stats st;
  double hpd_level; /* fraction of samples with log q(x_s) >= log q(x*) */
  json_t *diag;     /* until folded */
  int finished;
} case_out;

/* Running sums of the diagnostics: the keys of case 0's diagnostics; a
 * number is averaged, an array of numbers averaged elementwise, when every
 * case has it so; a string or an object (the sampler settings in effect) is
 * case 0's. */
typedef struct diag_fold {
  json_t *first;      /* case 0's diagnostics (owned) */
  int n_keys;
  const char **keys;  /* into first */
  double **sums;      /* [n_keys][len or 1] */
  size_t *len;        /* 0 for numbers and others */
  int *ok;
  json_t *retried;    /* [{"case", "dynamics_gamma"}] of the cases whose sampling ran again, or NULL */
} diag_fold;

typedef struct run_ctx {
  estimator *e;
  const eval_cases *cs;
  const obs_op *op;
  const obs_noise *nz;
  const eval_config *cfg;
  case_out *out;
  long *hist;     /* [T][S+1] per-worker rank counts of the current case */
  eval_summary *sum;
  double *work;   /* [T][S] per-worker scratch */
  pthread_mutex_t lock; /* rc, err, done, progress, rank_hist, folding */
  int done, next_fold;
  diag_fold fold;
  atomic_int rc;
  sb_error err;
  obs_op *vort;   /* 2D pictures: the spectral curl, or NULL */
} run_ctx;

/* Vorticity and spectra of case c's truth and samples into the plot arrays. */
static int plot_case(run_ctx *x, int c, const double *truth, const double *samples, int S) {
  eval_summary *sm = x->sum;
  int G = sm->plot_h * sm->plot_w, n = x->cs->dim, nk = sm->plot_kmax + 1;
  double *v = sm->plot_vort + (size_t)c * 3 * G, *sp = sm->plot_spec + (size_t)c * 3 * nk;
  double *w = malloc(sizeof(double) * ((size_t)S * G + n + nk));
  if (!w) return SB_ENOMEM;
  double *mean = w + (size_t)S * G, *ek = mean + n;
  obs_apply(x->vort, truth, v, 1);
  obs_apply(x->vort, samples, w, (size_t)S);
  for (int g = 0; g < G; g++) {
    double m = 0, q = 0;
    for (int s = 0; s < S; s++) m += w[(size_t)s * G + g];
    m /= S;
    for (int s = 0; s < S; s++) q += (w[(size_t)s * G + g] - m) * (w[(size_t)s * G + g] - m);
    v[G + g] = m;
    v[2 * G + g] = S > 1 ? sqrt(q / (S - 1)) : 0.0;
  }
  eval_energy_spectrum(truth, sm->plot_h, sm->plot_w, sp);
  for (int i = 0; i < n; i++) {
    double m = 0;
    for (int s = 0; s < S; s++) m += samples[(size_t)s * n + i];
    mean[i] = m / S;
  }
  eval_energy_spectrum(mean, sm->plot_h, sm->plot_w, sp + nk);
  for (int k = 0; k < nk; k++) sp[2 * nk + k] = 0;
  for (int s = 0; s < S; s++) {
    eval_energy_spectrum(samples + (size_t)s * n, sm->plot_h, sm->plot_w, ek);
    for (int k = 0; k < nk; k++) sp[2 * nk + k] += ek[k] / S;
  }
  free(w);
  return SB_OK;
}

static void fold_free(diag_fold *f) {
  for (int k = 0; k < f->n_keys; k++) free(f->sums ? f->sums[k] : NULL);
  free(f->keys); free(f->sums); free(f->len); free(f->ok);
  json_decref(f->first);
  json_decref(f->retried);
  memset(f, 0, sizeof *f);
}

/* Notes case c (its index in the seed's set) when its sampler ran again with
 * a wider dynamics term (score_net_diff_sample's "retries"): a case that
 * diverged once is named in the summary, not hidden in case 0's settings. */
static void fold_retried(diag_fold *f, const json_t *diag, long c) {
  const json_t *dyn = json_object_get(diag, "dynamics");
  if (!json_array_size(json_object_get(dyn, "retries"))) return;
  if (!f->retried && !(f->retried = json_array())) return;
  json_array_append_new(f->retried, json_pack("{s:I, s:f}", "case", (json_int_t)c, "dynamics_gamma",
                                              json_number_value(json_object_get(dyn, "gamma"))));
}

/* Folds one case's diagnostics (taken over); cases come in order 0, 1, ...
 * (c is the case's index in the seed's set) */
static void fold_add(diag_fold *f, json_t *diag, long c) {
  const char *key;
  json_t *v;
  fold_retried(f, diag, c);
  if (!f->first) {
    f->first = diag;
    size_t n = json_object_size(diag);
    f->keys = calloc(n ? n : 1, sizeof *f->keys);
    f->sums = calloc(n ? n : 1, sizeof *f->sums);
    f->len = calloc(n ? n : 1, sizeof *f->len);
    f->ok = calloc(n ? n : 1, sizeof *f->ok);
    if (!f->keys || !f->sums || !f->len || !f->ok) return; /* n_keys stays 0: no diagnostics */
    json_object_foreach(diag, key, v) {
      int k = f->n_keys++;
      f->keys[k] = key;
      f->len[k] = json_is_array(v) ? json_array_size(v) : 0;
      f->sums[k] = calloc(f->len[k] ? f->len[k] : 1, sizeof(double));
      f->ok[k] = f->sums[k] != NULL && (json_is_number(v) || json_is_array(v));
    }
  }
  for (int k = 0; k < f->n_keys; k++) {
    json_t *u = json_object_get(diag, f->keys[k]), *first = json_object_get(f->first, f->keys[k]);
    if (!f->ok[k]) continue;
    if (json_is_number(first)) {
      if (json_is_number(u)) f->sums[k][0] += json_number_value(u);
      else f->ok[k] = 0;
    } else if (!json_is_array(u) || json_array_size(u) != f->len[k]) {
      f->ok[k] = 0;
    } else {
      for (size_t i = 0; f->ok[k] && i < f->len[k]; i++) {
        json_t *ui = json_array_get(u, i);
        if (json_is_number(ui)) f->sums[k][i] += json_number_value(ui);
        else f->ok[k] = 0;
      }
    }
  }
  if (diag != f->first) json_decref(diag);
}

/* The means over C folded cases as a JSON object (new reference). */
static json_t *fold_result(const diag_fold *f, int C) {
  int bad = 0;
  json_t *res = jb_object(&bad);
  for (int k = 0; res && k < f->n_keys; k++) {
    json_t *first = json_object_get(f->first, f->keys[k]);
    if (json_is_string(first) || json_is_object(first)) {
      jb_set(res, f->keys[k], json_deep_copy(first), &bad);
    } else if (f->ok[k] && json_is_number(first)) {
      jb_set_real(res, f->keys[k], f->sums[k][0] / C, &bad);
    } else if (f->ok[k]) {
      json_t *a = jb_array(&bad);
      for (size_t i = 0; i < f->len[k]; i++) jb_push_real(a, f->sums[k][i] / C, &bad);
      jb_set(res, f->keys[k], a, &bad);
    }
  }
  if (res && f->retried) jb_set(res, "dynamics_retried", json_deep_copy(f->retried), &bad);
  return jb_done(res, bad);
}

/* Records the first failure (case c) and makes the other tasks stop. */
static void fail_case(run_ctx *x, int rc, const sb_error *e, int c, const char *what) {
  pthread_mutex_lock(&x->lock);
  if (!atomic_load(&x->rc)) {
    x->err = *e;
    sb_wrap(&x->err, "case %ld%s", x->cs->first + c, what); /* its index in the seed's test set */
    atomic_store(&x->rc, rc);
  }
  pthread_mutex_unlock(&x->lock);
}

/* Task: case c on worker wi (its scratch row of work). */
static void run_case(void *arg, int c, int wi) {
  run_ctx *x = arg;
  int S = x->cfg->n_samples, n = x->cs->dim, W = x->cs->window, p = x->cs->n_obs;
  double *work = x->work + (size_t)wi * S;
  sb_error e = {0};
  if (atomic_load(&x->rc)) return;
  if (sb_cancelled(x->cfg->cancel)) {
    sb_fail(&e, SB_ECANCEL, "evaluation cancelled");
    pthread_mutex_lock(&x->lock);
    if (!atomic_load(&x->rc)) x->err = e, atomic_store(&x->rc, SB_ECANCEL);
    pthread_mutex_unlock(&x->lock);
    return;
  }
  est_problem pr = {.sim = x->e->sim, .op = x->op, .noise = x->nz, .window = W, .time_index = x->cs->t[c],
                    .y = x->cs->y + (size_t)c * W * p};
  est_options o = {.n_samples = S, .seed = eval_case_seed(x->cfg->seed, x->cs->first + c), .threads = 1,
                   .cancel = x->cfg->cancel, .params = x->cfg->params};
  est_result r;
  int rc = est_sample(x->e, &pr, &o, &r, &e);
  if (rc) {
    fail_case(x, rc, &e, c, "");
    return;
  }
  const double *truth = x->cs->truth + ((size_t)c * W + (W - 1)) * n;
  if (x->sum->has_hpd) {
    double lq;
    rc = r.log_density ? x->e->log_prob(x->e, &pr, &o, truth, 1, &lq, &e)
                       : sb_fail(&e, SB_EINVAL, "estimator %s returned no log_density", x->e->name);
    if (rc) {
      est_result_free(&r);
      fail_case(x, rc, &e, c, ": log density of the truth");
      return;
    }
    int above = 0;
    for (int s = 0; s < S; s++) above += r.log_density[s] >= lq;
    x->out[c].hpd_level = (double)above / S;
  }
  if (c < x->sum->n_plot && (rc = plot_case(x, c, truth, r.samples, S))) {
    est_result_free(&r);
    fail_case(x, rc, &(sb_error){rc, "out of memory for the pictures"}, c, "");
    return;
  }
  long *hist = x->hist + (size_t)wi * (S + 1);
  memset(hist, 0, sizeof(long) * (size_t)(S + 1));
  eval_score_case(r.samples, S, n, truth, &x->out[c].st, hist, c == 0 ? x->sum->ex_mean : NULL,
                  c == 0 ? x->sum->ex_std : NULL, work);
  json_t *diag = r.diagnostics;
  r.diagnostics = NULL;
  est_result_free(&r);
  pthread_mutex_lock(&x->lock);
  for (int k = 0; k <= S; k++) x->sum->rank_hist[k] += hist[k]; /* integer counts: any order */
  x->out[c].diag = diag;
  x->out[c].finished = 1;
  while (x->next_fold < x->cs->n_cases && x->out[x->next_fold].finished) {
    case_out *o = &x->out[x->next_fold];
    fold_add(&x->fold, o->diag, x->cs->first + x->next_fold++);
    o->diag = NULL;
  }
  x->done++;
  if (x->cfg->progress) x->cfg->progress(x->cfg->progress_ctx, x->done, x->cs->n_cases);
  pthread_mutex_unlock(&x->lock);
}

void eval_summary_free(eval_summary *s) {
  if (!s) return;
  free(s->rank_hist);
  json_decref(s->diagnostics);
  free(s->ex_truth);
  free(s->ex_mean);
  free(s->ex_std);
  free(s->ex_y);
  free(s->ex_rmse_by_case);
  free(s->plot_vort);
  free(s->plot_spec);
  memset(s, 0, sizeof *s);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int eval_run(estimator *e, const eval_cases *cs, const obs_op *op, const obs_noise *nz, const eval_config *cfg,
             eval_summary *sum, sb_error *err) {
  memset(sum, 0, sizeof *sum);
  int C = cs->n_cases, S = cfg->n_samples, n = cs->dim, W = cs->window, p = cs->n_obs;
  if (S < 1) return sb_fail(err, SB_ERANGE, "need at least one sample per case");
  sum->n_cases = C;
  sum->n_samples = S;
  sum->dim = n;
  sum->n_obs = p;
  sum->window = W;
  run_ctx x;
  memset(&x, 0, sizeof x);
  x.e = e;
  x.cs = cs;
  x.op = op;
  x.nz = nz;
  x.cfg = cfg;
  x.sum = sum;
  int T = sb_threads(cfg->threads, C);
  sum->threads = T;
  x.out = calloc((size_t)C, sizeof(case_out));
  x.hist = calloc((size_t)T * (S + 1), sizeof(long));
  sum->rank_hist = calloc((size_t)S + 1, sizeof(long));
  sum->ex_truth = malloc(sizeof(double) * n);
  sum->ex_mean = malloc(sizeof(double) * n);
  sum->ex_std = malloc(sizeof(double) * n);
  sum->ex_y = malloc(sizeof(double) * (p ? p : 1));
  sum->ex_rmse_by_case = malloc(sizeof(double) * C);
  if (!x.out || !x.hist || !sum->rank_hist || !sum->ex_truth || !sum->ex_mean || !sum->ex_std || !sum->ex_y ||
      !sum->ex_rmse_by_case) {
    free(x.out);
    free(x.hist);
    eval_summary_free(sum);
    return sb_fail(err, SB_ENOMEM, "out of memory for %d cases of %d samples", C, S);
  }
  sum->has_hpd = e->has_density && e->log_prob != NULL;
  if (cfg->plot_cases > 0 && e->sim->channels == 2 && e->sim->height > 2) {
    const sim *sm = e->sim;
    sum->n_plot = cfg->plot_cases < C ? cfg->plot_cases : C;
    sum->plot_h = sm->height;
    sum->plot_w = sm->width;
    sum->plot_kmax = (sm->height < sm->width ? sm->height : sm->width) / 2;
    sum->plot_vort = malloc(sizeof(double) * (size_t)sum->n_plot * 3 * sm->height * sm->width);
    sum->plot_spec = malloc(sizeof(double) * (size_t)sum->n_plot * 3 * (sum->plot_kmax + 1));
    int prc = !sum->plot_vort || !sum->plot_spec
                  ? sb_fail(err, SB_ENOMEM, "out of memory for the pictures")
                  : obs_from_string(&x.vort, "{\"type\":\"vorticity\"}", 2, sm->height, sm->width, err);
    if (prc) {
      free(x.out);
      free(x.hist);
      eval_summary_free(sum);
      return prc;
    }
  }
  memcpy(sum->ex_truth, cs->truth + (size_t)(W - 1) * n, sizeof(double) * n);
  memcpy(sum->ex_y, cs->y + (size_t)(W - 1) * p, sizeof(double) * p);
  pthread_mutex_init(&x.lock, NULL);
  x.work = malloc(sizeof(double) * (size_t)T * S);
  if (!x.work) {
    obs_free(x.vort);
    free(x.out);
    free(x.hist);
    eval_summary_free(sum);
    pthread_mutex_destroy(&x.lock);
    return sb_fail(err, SB_ENOMEM, "out of memory for %d samples", S);
  }
  double t0 = now_s();
  sb_parallel_for(C, T, run_case, &x);
  sum->seconds = now_s() - t0;
  pthread_mutex_destroy(&x.lock);
  free(x.work);
  int rc = atomic_load(&x.rc);
  if (rc) {
    if (err) *err = x.err;
  } else {
    for (int c = 0; c < C; c++) {
      const eval_case_stats *st = &x.out[c].st;
      sum->rmse += st->rmse;
      sum->spread += st->spread;
      sum->crps += st->crps;
      sum->ex_rmse_by_case[c] = st->rmse;
      for (int i = 0; i < EVAL_N_LEVELS; i++) sum->coverage[i] += st->coverage[i];
    }
    sum->rmse /= C;
    sum->spread /= C;
    sum->crps /= C;
    sum->spread_skill = sum->rmse > 0 ? sum->spread / sum->rmse : 0.0;
    for (int i = 0; i < EVAL_N_LEVELS; i++) {
      sum->coverage[i] /= (double)C * n;
      double d = fabs(sum->coverage[i] - eval_level(i));
      if (d > sum->coverage_max_abs_error) sum->coverage_max_abs_error = d;
    }
    sum->rank_p = eval_rank_uniformity_p(sum->rank_hist, S, &sum->rank_bins);
    if (sum->has_hpd) {
      double *lv = malloc(sizeof(double) * C);
      if (!lv) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
      } else {
        for (int c = 0; c < C; c++) lv[c] = x.out[c].hpd_level;
        eval_hpd_coverage(lv, C, sum->hpd_coverage);
        free(lv);
      }
    }
    sum->diagnostics = fold_result(&x.fold, C);
    if (!sum->diagnostics) rc = sb_fail(err, SB_ENOMEM, "out of memory");
    sum->samples_per_second = sum->seconds > 0 ? (double)C * S / sum->seconds : 0.0;
  }
  for (int c = 0; c < C; c++) json_decref(x.out[c].diag); /* cases after a failure, never folded */
  fold_free(&x.fold);
  obs_free(x.vort);
  free(x.out);
  free(x.hist);
  if (rc) eval_summary_free(sum);
  return rc;
}
