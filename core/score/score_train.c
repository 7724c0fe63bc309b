#include "score_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diff.h"
#include "flow.h"
#include "nn_ckpt.h"
#include "nn_layers.h"
#include "nn_optim.h"
#include "nn_parallel.h"
#include "par.h"
#include "rng.h"
#include "safetensors.h"
#include "score_model.h"
#include "score_pool.h"

typedef struct train_cfg {
  long steps, warmup, val_every, ckpt_every;
  int batch, pool, refresh, val_windows, schedule, threads;
  double lr, weight_decay, ema, clip, time_budget_s, missing_time, missing_entry;
  uint64_t seed;
} train_cfg;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* cfg readers: absent -> default; present but wrong -> error naming the field */
static int rd_num(const json_t *o, const char *sec, const char *key, double lo, double hi, double *v, sb_error *err) {
  json_t *x = o ? json_object_get(o, key) : NULL;
  if (!x) return SB_OK;
  if (!json_is_number(x) || json_number_value(x) < lo || json_number_value(x) > hi)
    return sb_fail(err, SB_EINVAL, "config %s%s%s must be a number in %g..%g", sec, *sec ? "." : "", key, lo, hi);
  *v = json_number_value(x);
  return SB_OK;
}

static int rd_int(const json_t *o, const char *sec, const char *key, long lo, long hi, long *v, sb_error *err) {
  json_t *x = o ? json_object_get(o, key) : NULL;
  if (!x) return SB_OK;
  if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi)
    return sb_fail(err, SB_EINVAL, "config %s%s%s must be an integer in %ld..%ld", sec, *sec ? "." : "", key, lo, hi);
  *v = (long)json_integer_value(x);
  return SB_OK;
}

static int check_keys(const json_t *o, const char *sec, const char *const *keys, sb_error *err) {
  const char *k;
  json_t *v;
  if (!o) return SB_OK;
  if (!json_is_object(o)) return sb_fail(err, SB_EINVAL, "config %s must be an object", sec);
  json_object_foreach((json_t *)o, k, v) {
    int ok = 0;
    for (int i = 0; keys[i]; i++) ok |= !strcmp(k, keys[i]);
    if (!ok) return sb_fail(err, SB_EINVAL, "config %s: unknown field '%s'", sec, k);
  }
  return SB_OK;
}

/* Everything a training run holds. */
typedef struct trainer {
  score_model sm;
  train_cfg tc;
  score_pool pool;
  nn_workspace ws;              /* validation (forward only) */
  nn_workspace tws[SB_THREADS_MAX]; /* one training workspace per thread */
  flow_buf vfb, tfb[SB_THREADS_MAX]; /* npe: validation and per-thread training flows */
  float *pair_in, *pair_scal;   /* nre: classifier inputs of 2B pairs (joint, then shuffled) */
  float *val_pair_in, *val_pair_scal;
  int T;
  int cin, cout, xch, ns, D;
  float *win, *in, *scal, *target, *out, *dout;
  long *tidx;
  /* fixed validation set */
  float *val_in, *val_scal, *val_target;
  int nval;
} trainer;

/* Noisy observations of a window win [W][N] through the trained operator,
 * with random missing times and entries, lifted to the grid (2W channels). */
static void observe_window(trainer *tr, rng *r, const float *wb, double *xs, double *y, float *lift) {
  score_model *sm = &tr->sm;
  const int N = sm->N, W = sm->W, no = sm->op->n_obs;
  for (int w = 0; w < W; w++) {
    for (int n = 0; n < N; n++) xs[n] = wb[(size_t)w * N + n];
    obs_apply(sm->op, xs, y + (size_t)w * no, 1);
    int drop_all = rng_uniform(r) < tr->tc.missing_time && w < W - 1;
    for (int i = 0; i < no; i++) {
      y[(size_t)w * no + i] += sm->noise.std[i] * rng_normal(r);
      if (drop_all || rng_uniform(r) < tr->tc.missing_entry) y[(size_t)w * no + i] = NAN;
    }
  }
  score_lift_observations(sm, sm->op, y, lift);
}

/* Builds a batch from B windows (physical, [B][W][N]). Score kinds: network
 * inputs (noised states, lifted observations) and v targets. npe: the
 * lifted observations in `in`, the standardized x_t in `target`, the scaled
 * time in scal[b]. */
static void make_batch(trainer *tr, rng *r, const float *win, const long *t, int B, float *in, float *scal,
                       float *target) {
  score_model *sm = &tr->sm;
  const int N = sm->N, W = sm->W;
  double *xs = malloc(sizeof(double) * (size_t)N), *y = NULL;
  float *lift = NULL;
  if (sm->op) {
    y = malloc(sizeof(double) * (size_t)W * sm->op->n_obs);
    lift = malloc(sizeof(float) * 2 * (size_t)W * N);
  }
  for (int b = 0; b < B; b++) {
    const float *wb = win + (size_t)b * W * N;
    float *ib = in + (size_t)b * tr->cin * N, *tb = target + (size_t)b * tr->xch * N;
    double ts = (double)t[b] / sm->sim->t_max;
    if (sm->kind == SCORE_NPE || sm->kind == SCORE_NRE) {
      for (int n = 0; n < N; n++) tb[n] = (float)((wb[(size_t)(W - 1) * N + n] - sm->mean[n]) / sm->std[n]);
      observe_window(tr, r, wb, xs, y, ib);
      scal[b] = sm->time_varying ? (float)ts : 0.0f;
      continue;
    }
    double tau = rng_uniform(r), mu = diff_mu(tau), sg = diff_sigma(tau);
    int first = tr->xch == W ? 0 : W - 1; /* composed: all W states; posterior: x_t */
    for (int c = 0; c < tr->xch; c++)
      for (int n = 0; n < N; n++) {
        double z = (wb[(size_t)(first + c) * N + n] - sm->mean[n]) / sm->std[n];
        double e = rng_normal(r);
        ib[(size_t)c * N + n] = (float)(mu * z + sg * e);
        tb[(size_t)c * N + n] = (float)(mu * e - sg * z);
      }
    if (sm->kind == SCORE_POSTERIOR) {
      observe_window(tr, r, wb, xs, y, lift);
      memcpy(ib + (size_t)tr->xch * N, lift, sizeof(float) * 2 * (size_t)W * N);
    }
    scal[(size_t)b * tr->ns] = (float)tau;
    if (tr->ns > 1) scal[(size_t)b * tr->ns + 1] = (float)ts;
  }
  free(xs);
  free(y);
  free(lift);
}

static int parse_config(trainer *tr, const json_t *cfg, sb_error *err) {
  static const char *const top[] = {"kind", "preset", "N", "window", "operator", "noise_std", "arch", "train", "sampler", "nre", "comment", NULL};
  static const char *const nre_k[] = {"candidates", NULL};
  static const char *const arch_k[] = {"width", "blocks", "groups", "emb_dim", "couplings", "clamp", NULL};
  static const char *const train_k[] = {"steps", "batch", "lr", "warmup", "schedule", "weight_decay", "ema", "clip", "seed",
                                        "pool", "refresh", "val_windows", "val_every", "ckpt_every", "time_budget_s",
                                        "missing_time", "missing_entry", "threads", NULL};
  static const char *const samp_k[] = {"steps", "corrections", "tau_l", "gamma", NULL};
  int rc;
  if (!json_is_object(cfg)) return sb_fail(err, SB_EINVAL, "config must be a JSON object");
  json_t *arch = json_object_get(cfg, "arch"), *train = json_object_get(cfg, "train"), *samp = json_object_get(cfg, "sampler");
  if ((rc = check_keys(cfg, "(top level)", top, err)) || (rc = check_keys(arch, "arch", arch_k, err)) ||
      (rc = check_keys(train, "train", train_k, err)) || (rc = check_keys(samp, "sampler", samp_k, err)) ||
      (rc = check_keys(json_object_get(cfg, "nre"), "nre", nre_k, err)))
    return rc;
  score_model *sm = &tr->sm;
  if (!score_kind_parse(json_string_value(json_object_get(cfg, "kind")), &sm->kind))
    return sb_fail(err, SB_EINVAL, "config kind must be \"posterior-score\", \"composed-score\", \"npe\" or \"nre\"");
  long N = 0, W = 10;
  if ((rc = rd_int(cfg, "", "N", 0, 256, &N, err)) || (rc = rd_int(cfg, "", "window", 1, 64, &W, err))) return rc;
  const char *preset = json_string_value(json_object_get(cfg, "preset"));
  if (!preset) return sb_fail(err, SB_EINVAL, "config preset is required (l96-sakov or l96-thesis)");
  if ((rc = sim_create(&sm->sim, preset, (int)N, err))) return rc;
  sm->N = sm->sim->dim;
  sm->W = (int)W;
  sm->time_varying = !sm->sim->stationary;
  if (score_kind_has_operator(sm->kind)) {
    json_t *op = json_object_get(cfg, "operator"), *nz = json_object_get(cfg, "noise_std");
    if (!op || !nz) return sb_fail(err, SB_EINVAL, "a %s config needs operator and noise_std", score_kind_name(sm->kind));
    if ((rc = obs_from_json(&sm->op, op, sm->sim->channels, sm->sim->height, sm->sim->width, err)) ||
        (rc = obs_noise_from_json(&sm->noise, nz, sm->op->n_obs, err)))
      return sb_wrap(err, "config");
  }
  long width = 64, blocks = 6, groups = 8, emb = 32, couplings = 8;
  sm->clamp = 3.0;
  if ((rc = rd_int(arch, "arch", "width", 8, 1024, &width, err)) || (rc = rd_int(arch, "arch", "blocks", 1, 32, &blocks, err)) ||
      (rc = rd_int(arch, "arch", "groups", 1, 64, &groups, err)) || (rc = rd_int(arch, "arch", "emb_dim", 2, 512, &emb, err)) ||
      (rc = rd_int(arch, "arch", "couplings", 1, 64, &couplings, err)) ||
      (rc = rd_num(arch, "arch", "clamp", 0.1, 20, &sm->clamp, err)))
    return rc;
  sm->couplings = (int)couplings;
  long cand = 4096;
  if ((rc = rd_int(json_object_get(cfg, "nre"), "nre", "candidates", 2, NRE_MAX_CANDIDATES, &cand, err))) return rc;
  sm->candidates = (int)cand;
  train_cfg *t = &tr->tc;
  *t = (train_cfg){.steps = 10000, .warmup = 500, .val_every = 500, .ckpt_every = 1000, .batch = 128, .pool = 512,
                   .refresh = 4, .val_windows = 512, .schedule = NN_LR_COSINE, .threads = 2, .lr = 1e-3,
                   .weight_decay = 1e-4, .ema = 0.999, .clip = 1.0, .time_budget_s = 0, .missing_time = 0,
                   .missing_entry = 0, .seed = 1};
  long batch = t->batch, pool = t->pool, refresh = t->refresh, vw = t->val_windows, seed = 1, threads = t->threads;
  if ((rc = rd_int(train, "train", "steps", 1, 100000000, &t->steps, err)) ||
      (rc = rd_int(train, "train", "batch", 1, 4096, &batch, err)) ||
      (rc = rd_num(train, "train", "lr", 1e-7, 1, &t->lr, err)) ||
      (rc = rd_int(train, "train", "warmup", 0, 100000000, &t->warmup, err)) ||
      (rc = rd_num(train, "train", "weight_decay", 0, 1, &t->weight_decay, err)) ||
      (rc = rd_num(train, "train", "ema", 0, 0.999999, &t->ema, err)) ||
      (rc = rd_num(train, "train", "clip", 0, 1e6, &t->clip, err)) ||
      (rc = rd_int(train, "train", "seed", 0, 2147483647L, &seed, err)) ||
      (rc = rd_int(train, "train", "pool", 1, 100000, &pool, err)) ||
      (rc = rd_int(train, "train", "refresh", 0, 100000, &refresh, err)) ||
      (rc = rd_int(train, "train", "val_windows", 1, 100000, &vw, err)) ||
      (rc = rd_int(train, "train", "val_every", 1, 100000000, &t->val_every, err)) ||
      (rc = rd_int(train, "train", "ckpt_every", 1, 100000000, &t->ckpt_every, err)) ||
      (rc = rd_num(train, "train", "time_budget_s", 0, 1e7, &t->time_budget_s, err)) ||
      (rc = rd_num(train, "train", "missing_time", 0, 0.9, &t->missing_time, err)) ||
      (rc = rd_num(train, "train", "missing_entry", 0, 0.9, &t->missing_entry, err)) ||
      (rc = rd_int(train, "train", "threads", 1, 64, &threads, err)))
    return rc;
  t->batch = (int)batch, t->pool = (int)pool, t->refresh = (int)refresh, t->val_windows = (int)vw;
  t->seed = (uint64_t)seed, t->threads = (int)threads;
  const char *sch = train ? json_string_value(json_object_get(train, "schedule")) : NULL;
  if (sch) {
    if (!strcmp(sch, "cosine")) t->schedule = NN_LR_COSINE;
    else if (!strcmp(sch, "linear")) t->schedule = NN_LR_LINEAR;
    else if (!strcmp(sch, "constant")) t->schedule = NN_LR_CONSTANT;
    else return sb_fail(err, SB_EINVAL, "config train.schedule must be cosine, linear or constant");
  }
  diff_sampler_defaults(&sm->sampler);
  sm->gamma = 1e-2;
  double ss = sm->sampler.steps, sc = sm->sampler.corrections;
  if ((rc = rd_num(samp, "sampler", "steps", 1, 4096, &ss, err)) || (rc = rd_num(samp, "sampler", "corrections", 0, 16, &sc, err)) ||
      (rc = rd_num(samp, "sampler", "tau_l", 0, 10, &sm->sampler.tau_l, err)) ||
      (rc = rd_num(samp, "sampler", "gamma", 0, 1e6, &sm->gamma, err)))
    return rc;
  sm->sampler.steps = (int)ss;
  sm->sampler.corrections = (int)sc;
  if (width % groups) return sb_fail(err, SB_EINVAL, "config arch.groups (%ld) must divide arch.width (%ld)", groups, width);
  nn_resnet_config rcfg = {.dims = 1, .h = 1, .w = sm->N, .cin = score_in_channels(sm->kind, sm->W),
                           .cout = score_out_channels(sm->kind, sm->W), .width = (int)width, .blocks = (int)blocks,
                           .groups = (int)groups, .n_scalars = score_n_scalars(sm->kind, sm->time_varying),
                           .emb_dim = (int)emb};
  if ((rc = nn_resnet_init(&sm->net, &rcfg, err))) return rc;
  nn_model_init_params(&sm->net, t->seed);
  sm->train_config = json_deep_copy(cfg);
  return SB_OK;
}

/* Training state (params, Adam moments, EMA, step) for --resume. */
static int save_state(const trainer *tr, const char *path, sb_error *err) {
  const nn_model *m = &tr->sm.net;
  st_file f;
  st_init(&f);
  int64_t shape[1] = {(int64_t)m->n_params};
  char step[32];
  snprintf(step, sizeof step, "%ld", m->step);
  int rc = st_add(&f, "params", ST_F32, 1, shape, m->params, err);
  if (!rc && m->m) rc = st_add(&f, "adam_m", ST_F32, 1, shape, m->m, err);
  if (!rc && m->v) rc = st_add(&f, "adam_v", ST_F32, 1, shape, m->v, err);
  if (!rc && m->ema) rc = st_add(&f, "ema", ST_F32, 1, shape, m->ema, err);
  if (!rc) rc = st_set_meta(&f, "step", step, err);
  if (!rc) rc = st_write(&f, path, err);
  st_free(&f);
  return rc;
}

static int load_state(trainer *tr, const char *path, sb_error *err) {
  nn_model *m = &tr->sm.net;
  st_file f;
  int rc = st_read(path, &f, err);
  if (rc) return rc;
  int64_t shape[1] = {(int64_t)m->n_params};
  const st_tensor *t;
  float **dst[4] = {&m->params, &m->m, &m->v, &m->ema};
  const char *names[4] = {"params", "adam_m", "adam_v", "ema"};
  for (int i = 0; i < 4 && !rc; i++) {
    if (i > 0 && !st_get(&f, names[i])) continue;
    if ((rc = st_get_checked(&f, names[i], ST_F32, 1, shape, &t, err))) break;
    if (!*dst[i]) *dst[i] = malloc(sizeof(float) * m->n_params);
    if (!*dst[i]) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      break;
    }
    memcpy(*dst[i], t->data, t->nbytes);
  }
  const char *step = st_get_meta(&f, "step");
  if (!rc && step) m->step = atol(step);
  st_free(&f);
  if (rc) sb_wrap(err, "resume state %s (was it written for this config?)", path);
  return rc;
}

/* MSE against the v targets for samples [b0, b0+B) of the batch (nn_loss_fn). */
static double slice_loss(void *ctx, int b0, int B, int n_total, const float *out, float *dout) {
  trainer *tr = ctx;
  size_t per = (size_t)tr->xch * tr->sm.N, n = (size_t)B * per;
  double scale = (double)B / n_total; /* slice mean -> share of the batch mean */
  double l = nn_mse_loss(dout, out, tr->target + (size_t)b0 * per, n, (float)scale);
  return l * scale;
}

/* nre: classifier inputs for B windows: pair b < B is (x_b, y_b) (joint),
 * pair B + b is (x_{b+1 mod B}, y_b) (the marginals' product: windows are
 * independent draws). x [B][N] standardized, lift [B][2W][N], ts [B]. */
static void make_pairs(const trainer *tr, const float *x, const float *lift, const float *ts, int B, float *in,
                       float *scal) {
  const int N = tr->sm.N, nc = 2 * tr->sm.W;
  const size_t per = (size_t)(1 + nc) * N;
  for (int p = 0; p < 2 * B; p++) {
    int b = p % B, xb = p < B ? b : (b + 1) % B;
    memcpy(in + (size_t)p * per, x + (size_t)xb * N, sizeof(float) * (size_t)N);
    memcpy(in + (size_t)p * per + N, lift + (size_t)b * nc * N, sizeof(float) * (size_t)nc * N);
    scal[p] = ts[b];
  }
}

/* nre: the classifier's logit is the mean of its per-node outputs; label 1
 * for the first half of the n_total pairs (joint), 0 for the rest. BCE, the
 * batch mean (nn_loss_fn). */
static double slice_bce(void *ctx, int b0, int B, int n_total, const float *out, float *dout) {
  const trainer *tr = ctx;
  const int N = tr->sm.N;
  double l = 0;
  for (int b = 0; b < B; b++) {
    double z = 0;
    for (int n = 0; n < N; n++) z += out[(size_t)b * N + n];
    z /= N;
    int y = b0 + b < n_total / 2;
    /* log(1 + e^-|z|) + max(z, 0) - y z, stably */
    l += (log1p(exp(-fabs(z))) + (z > 0 ? z : 0) - y * z) / n_total;
    float g = (float)((1.0 / (1.0 + exp(-z)) - y) / ((double)n_total * N));
    for (int n = 0; n < N; n++) dout[(size_t)b * N + n] = g;
  }
  return l;
}

static double val_bce(trainer *tr) {
  nn_model ema = tr->sm.net;
  if (tr->sm.net.ema) ema.params = tr->sm.net.ema;
  const int N = tr->sm.N, total = 2 * tr->nval;
  const size_t per = (size_t)score_in_channels(SCORE_NRE, tr->sm.W) * N;
  double acc = 0;
  for (int done = 0; done < total;) {
    int B = total - done < tr->ws.max_batch ? total - done : tr->ws.max_batch;
    if (nn_forward(&ema, &tr->ws, tr->val_pair_in + (size_t)done * per,
                   tr->sm.time_varying ? tr->val_pair_scal + done : NULL, B, tr->ws.out))
      return NAN;
    for (int b = 0; b < B; b++) {
      double z = 0;
      for (int n = 0; n < N; n++) z += tr->ws.out[(size_t)b * N + n];
      z /= N;
      int y = done + b < total / 2;
      acc += log1p(exp(-fabs(z))) + (z > 0 ? z : 0) - y * z;
    }
    done += B;
  }
  return acc / total;
}

/* npe: mean -log q(x_t | y) / N over the validation set with the EMA weights */
static double val_nll(trainer *tr) {
  score_model sm = tr->sm;
  if (tr->sm.net.ema) sm.net.params = tr->sm.net.ema;
  const int N = sm.N;
  double acc = 0, lq[64];
  for (int done = 0; done < tr->nval;) {
    int B = tr->nval - done < 64 ? tr->nval - done : 64;
    if (B > tr->vfb.max_batch) B = tr->vfb.max_batch;
    if (flow_forward(&sm, &tr->vfb, tr->val_target + (size_t)done * N, tr->val_in + (size_t)done * tr->cin * N,
                     (size_t)tr->cin * N, sm.time_varying ? tr->val_scal + done : NULL, B, lq))
      return NAN;
    for (int b = 0; b < B; b++) acc -= lq[b] / N;
    done += B;
  }
  return acc / tr->nval;
}

static double val_loss(trainer *tr) {
  if (tr->sm.kind == SCORE_NPE) return val_nll(tr);
  if (tr->sm.kind == SCORE_NRE) return val_bce(tr);
  nn_model ema = tr->sm.net;
  if (tr->sm.net.ema) ema.params = tr->sm.net.ema;
  const int N = tr->sm.N;
  double acc = 0;
  int done = 0;
  while (done < tr->nval) {
    int B = tr->nval - done < tr->tc.batch ? tr->nval - done : tr->tc.batch;
    nn_forward(&ema, &tr->ws, tr->val_in + (size_t)done * tr->cin * N, tr->val_scal + (size_t)done * tr->ns, B, tr->out);
    acc += nn_mse_loss(NULL, tr->out, tr->val_target + (size_t)done * tr->xch * N, (size_t)B * tr->xch * N, 1.0f) * B;
    done += B;
  }
  return acc / tr->nval;
}

static void trainer_free(trainer *tr) {
  for (int t = 0; t < SB_THREADS_MAX; t++) nn_workspace_free(&tr->tws[t]), flow_buf_free(&tr->tfb[t]);
  flow_buf_free(&tr->vfb);
  free(tr->pair_in); free(tr->pair_scal); free(tr->val_pair_in); free(tr->val_pair_scal);
  score_model_free(&tr->sm);
  score_pool_free(&tr->pool);
  nn_workspace_free(&tr->ws);
  free(tr->win); free(tr->in); free(tr->scal); free(tr->target); free(tr->out); free(tr->dout); free(tr->tidx);
  free(tr->val_in); free(tr->val_scal); free(tr->val_target);
}

static void report(score_train_opts *o, long step, long total, double loss, double vloss, double rate, double elapsed) {
  if (!o->progress) return;
  double eta = rate > 0 ? (total - step) / rate : 0;
  if (o->progress_tty) {
    int width = 30, fill = (int)(width * (double)step / total);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(o->progress, "\r[%s] %ld/%ld loss %.4f val %.4f %.1f steps/s ETA %.0fs   ", bar, step, total, loss,
            vloss, rate, eta);
  } else {
    fprintf(o->progress,
            "{\"step\": %ld, \"total\": %ld, \"loss\": %.6f, \"val_loss\": %.6f, \"steps_per_s\": %.3f, "
            "\"elapsed_s\": %.1f, \"eta_s\": %.0f}\n", step, total, loss, vloss, rate, elapsed, eta);
  }
  fflush(o->progress);
}

int score_train(const json_t *cfg, score_train_opts *o, sb_error *err) {
  trainer tr;
  memset(&tr, 0, sizeof tr);
  int rc = parse_config(&tr, cfg, err);
  if (rc) goto done;
  train_cfg *tc = &tr.tc;
  if (o->steps > 0) tc->steps = o->steps;
  if (o->time_budget_s > 0) tc->time_budget_s = o->time_budget_s;
  if (o->threads > 0) tc->threads = o->threads;
  score_model *sm = &tr.sm;
  const int N = sm->N, W = sm->W, B = tc->batch;
  tr.cin = score_in_channels(sm->kind, W);
  tr.cout = tr.xch = score_out_channels(sm->kind, W);
  tr.ns = 1 + sm->time_varying;
  if (sm->kind == SCORE_NPE || sm->kind == SCORE_NRE) /* batch data: 2W lifted observation channels, x_t, scaled t */
    tr.cin = 2 * W, tr.cout = tr.xch = 1, tr.ns = 1;
  double t0 = now_s();
  if ((rc = score_pool_init(&tr.pool, sm->sim, tc->pool, W, tc->seed * 2654435761u + 1, err))) goto done;
  /* normalization: the systems are translation invariant, so one mean/std for all nodes */
  sm->mean = malloc(sizeof(double) * N);
  sm->std = malloc(sizeof(double) * N);
  score_pool_moments(&tr.pool, sm->mean, sm->std);
  double gm = 0, gv = 0;
  for (int n = 0; n < N; n++) gm += sm->mean[n] / N;
  for (int n = 0; n < N; n++) gv += (sm->std[n] * sm->std[n] + (sm->mean[n] - gm) * (sm->mean[n] - gm)) / N;
  for (int n = 0; n < N; n++) sm->mean[n] = gm, sm->std[n] = sqrt(gv);
  tr.T = sb_threads(tc->threads, B);
  if (sm->kind == SCORE_NPE) {
    if ((rc = flow_buf_init(&tr.vfb, sm, B, 0, err))) goto done;
    for (int t = 0; t < tr.T; t++)
      if ((rc = flow_buf_init(&tr.tfb[t], sm, (B + tr.T - 1) / tr.T, 1, err))) goto done;
  } else {
    int nb = sm->kind == SCORE_NRE ? 2 * B : B; /* nre: B joint and B shuffled pairs */
    if ((rc = nn_workspace_init(&tr.ws, &sm->net, nb, 0, err))) goto done;
    for (int t = 0; t < tr.T; t++)
      if ((rc = nn_workspace_init(&tr.tws[t], &sm->net, (nb + tr.T - 1) / tr.T, 1, err))) goto done;
  }
  if (sm->kind == SCORE_NRE) {
    size_t cin_net = (size_t)score_in_channels(SCORE_NRE, W) * N;
    tr.pair_in = malloc(sizeof(float) * 2 * (size_t)B * cin_net);
    tr.pair_scal = malloc(sizeof(float) * 2 * (size_t)B);
    tr.val_pair_in = malloc(sizeof(float) * 2 * (size_t)tc->val_windows * cin_net);
    tr.val_pair_scal = malloc(sizeof(float) * 2 * (size_t)tc->val_windows);
    if (!tr.pair_in || !tr.pair_scal || !tr.val_pair_in || !tr.val_pair_scal) {
      rc = sb_fail(err, SB_ENOMEM, "out of memory");
      goto done;
    }
  }
  tr.win = malloc(sizeof(float) * (size_t)B * W * N);
  tr.in = malloc(sizeof(float) * (size_t)B * tr.cin * N);
  tr.scal = malloc(sizeof(float) * (size_t)B * tr.ns);
  tr.target = malloc(sizeof(float) * (size_t)B * tr.xch * N);
  tr.out = malloc(sizeof(float) * (size_t)B * tr.xch * N);
  tr.dout = malloc(sizeof(float) * (size_t)B * tr.xch * N);
  tr.tidx = malloc(sizeof(long) * (size_t)B);
  /* fixed validation set from a separate pool */
  tr.nval = tc->val_windows;
  tr.val_in = malloc(sizeof(float) * (size_t)tr.nval * tr.cin * N);
  tr.val_scal = malloc(sizeof(float) * (size_t)tr.nval * tr.ns);
  tr.val_target = malloc(sizeof(float) * (size_t)tr.nval * tr.xch * N);
  float *vwin = malloc(sizeof(float) * (size_t)tr.nval * W * N);
  long *vt = malloc(sizeof(long) * (size_t)tr.nval);
  if (!tr.win || !tr.in || !tr.scal || !tr.target || !tr.out || !tr.dout || !tr.tidx || !tr.val_in || !tr.val_scal ||
      !tr.val_target || !vwin || !vt) {
    free(vwin);
    free(vt);
    rc = sb_fail(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  {
    score_pool vp;
    int vp_n = tr.nval / 4 > 16 ? tr.nval / 4 : 16;
    if ((rc = score_pool_init(&vp, sm->sim, vp_n, W, tc->seed * 2654435761u + 999331, err))) {
      free(vwin);
      free(vt);
      goto done;
    }
    rng vr;
    rng_init(&vr, tc->seed, 0xA11DA7E);
    score_pool_draw(&vp, &vr, tr.nval, vwin, vt);
    make_batch(&tr, &vr, vwin, vt, tr.nval, tr.val_in, tr.val_scal, tr.val_target);
    if (sm->kind == SCORE_NRE) make_pairs(&tr, tr.val_target, tr.val_in, tr.val_scal, tr.nval, tr.val_pair_in, tr.val_pair_scal);
    score_pool_free(&vp);
  }
  free(vwin);
  free(vt);
  char state_path[1024];
  snprintf(state_path, sizeof state_path, "%s.state", o->out);
  if (o->resume && (rc = load_state(&tr, o->resume, err))) goto done;
  nn_adamw opt = nn_adamw_default();
  opt.lr = (float)tc->lr;
  opt.weight_decay = (float)tc->weight_decay;
  opt.clip = (float)tc->clip;
  rng r;
  rng_init(&r, tc->seed, 0x7EA1u + (uint64_t)sm->net.step);
  long total = tc->steps, skipped = 0;
  double loss_ema = NAN, vloss = NAN, t_start = now_s(), last_report = 0;
  long step0 = sm->net.step, s;
  for (s = sm->net.step; s < total; s++) {
    if (tc->refresh && (rc = score_pool_refresh(&tr.pool, tc->refresh, err))) goto done;
    score_pool_draw(&tr.pool, &r, B, tr.win, tr.tidx);
    make_batch(&tr, &r, tr.win, tr.tidx, B, tr.in, tr.scal, tr.target);
    nn_zero_grad(&sm->net);
    double loss;
    if (sm->kind == SCORE_NPE) {
      rc = flow_grad_mt(sm, tr.tfb, tr.T, tr.target, tr.in, sm->time_varying ? tr.scal : NULL, B, &loss, err);
    } else if (sm->kind == SCORE_NRE) {
      make_pairs(&tr, tr.target, tr.in, tr.scal, B, tr.pair_in, tr.pair_scal);
      rc = nn_grad_mt(&sm->net, tr.tws, tr.T, tr.pair_in, sm->time_varying ? tr.pair_scal : NULL, 2 * B, slice_bce, &tr,
                      NULL, &loss, err);
    } else {
      rc = nn_grad_mt(&sm->net, tr.tws, tr.T, tr.in, tr.scal, B, slice_loss, &tr, NULL, &loss, err);
    }
    if (rc) goto done;
    float lr = nn_lr_at(s, (float)tc->lr, tc->warmup, total, tc->schedule, 0.01f);
    int st = nn_adamw_step(&sm->net, &opt, lr, NULL);
    if (st < 0) {
      rc = sb_fail(err, SB_ENOMEM, "optimizer: out of memory");
      goto done;
    }
    if (st == 1) skipped++;
    else nn_ema_update(&sm->net, (float)tc->ema);
    if (isfinite(loss)) loss_ema = isnan(loss_ema) ? loss : 0.98 * loss_ema + 0.02 * loss;
    double el = now_s() - t_start, rate = (s + 1 - step0) / (el > 1e-9 ? el : 1e-9);
    /* a time budget shortens the run: the LR schedule's end is re-estimated
     * from the measured rate every 100 steps, and the budget is a hard stop */
    if (tc->time_budget_s > 0 && (s - step0) % 100 == 50) {
      long fit = s + 1 + (long)(rate * (tc->time_budget_s - (now_s() - t0)));
      total = fit < tc->steps ? (fit > s + 2 ? fit : s + 2) : tc->steps;
    }
    if (tc->time_budget_s > 0 && now_s() - t0 > tc->time_budget_s && s + 1 < total) total = s + 2;
    if ((s + 1) % tc->val_every == 0 || s + 1 == total) vloss = val_loss(&tr);
    if ((s + 1) % tc->ckpt_every == 0 && (rc = save_state(&tr, state_path, err))) goto done;
    if (now_s() - last_report > (o->progress_tty ? 0.5 : 10.0) || s + 1 == total) {
      report(o, s + 1, total, loss_ema, vloss, rate, el);
      last_report = now_s();
    }
  }
  if (o->progress && o->progress_tty) fputc('\n', o->progress);
  double seconds = now_s() - t0;
  sm->training = json_pack("{s:I, s:I, s:f, s:f, s:f, s:i, s:I}", "steps", (json_int_t)sm->net.step, "skipped_steps",
                           (json_int_t)skipped, "seconds", seconds, "train_loss", loss_ema, "val_loss", vloss,
                           "batch", B, "n_params", (json_int_t)sm->net.n_params);
  if ((rc = save_state(&tr, state_path, err))) goto done;
  if ((rc = score_model_save(sm, sm->net.ema != NULL, o->out, err))) goto done;
  o->summary = json_deep_copy(sm->training);
done:
  trainer_free(&tr);
  return rc;
}
