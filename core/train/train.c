/* train.c: the one training loop of every model kind (see train.h): a pool
 * of simulations refreshed as it goes, the kind's batch, gradient and
 * validation loss (model/kind.h), AdamW with warmup and decay, gradient
 * clipping, EMA of the weights, checkpoints for resuming, progress; across
 * processes, the gradient's parts summed by train_dist.h. */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinds/kinds.h"
#include "nn/nn_ckpt.h"
#include "nn/nn_optim.h"
#include "train/train_dist.h"
#include "train/train_pool.h"
#include "util/par.h"
#include "util/params.h"
#include "util/rng.h"
#include "util/safetensors.h"

typedef struct train_cfg {
  long steps, warmup, val_every, ckpt_every;
  int batch, pool, refresh, val_windows, schedule, threads, traj_len;
  double lr, weight_decay, ema, clip, time_budget_s, missing_time, missing_entry, tau_focus, tau_focus_max;
  uint64_t seed;
} train_cfg;

/* Everything a training run holds. */
typedef struct trainer {
  model m;
  train_cfg tc;
  const train_dist *dist; /* NULL: alone */
  train_pool pool;
  void *ks;       /* the kind's training state */
  float *win;     /* [B][W][N] windows of one batch */
  long *tidx;     /* [B] their time indices */
} trainer;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the config's fields; a kind adds its section (kind->config_key) and its
 * "arch" fields (kind->arch_params) */
static const params_spec top_params[] = {
    {"kind", PARAM_STR, 0, 0, 0},       {"preset", PARAM_STR, 0, 0, 0},   {"N", PARAM_INT, 0, 256, 0},
    {"window", PARAM_INT, 1, 64, 0},    {"operator", PARAM_ANY, 0, 0, 0}, {"noise_std", PARAM_ANY, 0, 0, 0},
    {"arch", PARAM_ANY, 0, 0, 0},       {"train", PARAM_ANY, 0, 0, 0},    {"comment", PARAM_ANY, 0, 0, 0},
    {NULL, 0, 0, 0, 0},
};
static const params_spec arch_common[] = {
    {"width", PARAM_INT, 8, 1024, 0}, {"blocks", PARAM_INT, 1, 32, 0}, {"groups", PARAM_INT, 1, 64, 0},
    {"emb_dim", PARAM_INT, 2, 512, 0}, {"type", PARAM_STR, 0, 0, 0}, {"widths", PARAM_ANY, 0, 0, 0},
    {"mid", PARAM_INT, 0, 16, 0}, {NULL, 0, 0, 0, 0},
};
static const params_spec train_params[] = {
    {"steps", PARAM_INT, 1, 100000000, 0},      {"batch", PARAM_INT, 1, 4096, 0},
    {"lr", PARAM_NUM, 1e-7, 1, 0},              {"warmup", PARAM_INT, 0, 100000000, 0},
    {"schedule", PARAM_STR, 0, 0, 0},           {"weight_decay", PARAM_NUM, 0, 1, 0},
    {"ema", PARAM_NUM, 0, 0.999999, 0},         {"clip", PARAM_NUM, 0, 1e6, 0},
    {"seed", PARAM_INT, 0, 2147483647, 0},      {"pool", PARAM_INT, 1, 100000, 0},
    {"refresh", PARAM_INT, 0, 100000, 0},       {"val_windows", PARAM_INT, 1, 100000, 0},
    {"val_every", PARAM_INT, 1, 100000000, 0},  {"ckpt_every", PARAM_INT, 1, 100000000, 0},
    {"time_budget_s", PARAM_NUM, 0, 1e7, 0},    {"missing_time", PARAM_NUM, 0, 0.9, 0},
    {"missing_entry", PARAM_NUM, 0, 0.9, 0},    {"threads", PARAM_INT, 1, SB_THREADS_MAX, 0},
    {"traj_len", PARAM_INT, 0, 1024, 0},        {"tau_focus", PARAM_NUM, 0, 1, 0},
    {"tau_focus_max", PARAM_NUM, 0.01, 1, 0},   {NULL, 0, 0, 0, 0},
};

/* out (room for 32) = out + add (may be NULL), skipping names already in */
static void join_spec(params_spec *out, const params_spec *add) {
  int n = 0;
  while (out[n].name) n++;
  for (; add && add->name && n < 31; add++)
    if (!params_find(out, add->name)) out[n++] = *add;
  out[n] = (params_spec){0};
}

static int parse_config(trainer *tr, const json_t *cfg, sb_error *err) {
  int rc;
  if (!json_is_object(cfg)) return sb_fail(err, SB_EINVAL, "config must be a JSON object");
  model *m = &tr->m;
  if ((rc = model_kind_get(json_string_value(json_object_get(cfg, "kind")), &m->kind, err)))
    return sb_wrap(err, "config kind");
  const model_kind *k = m->kind;
  params_spec top[32] = {{0}}, arch_spec[32] = {{0}}, section[2] = {{k->config_key, PARAM_ANY, 0, 0, 0}, {0}};
  join_spec(top, top_params);
  join_spec(top, k->config_key ? section : NULL);
  /* "arch" takes the fields of every kind (one config template serves all
   * kinds); the other kinds' fields are ignored */
  join_spec(arch_spec, arch_common);
  for (int i = 0; model_kind_at(i); i++) join_spec(arch_spec, model_kind_at(i)->arch_params);
  json_t *arch = json_object_get(cfg, "arch"), *train = json_object_get(cfg, "train");
  json_t *ksec = k->config_key ? json_object_get(cfg, k->config_key) : NULL;
  char ksec_what[64];
  snprintf(ksec_what, sizeof ksec_what, "config %s.", k->config_key ? k->config_key : "");
  if ((rc = params_check(cfg, top, "config ", err)) || (rc = params_check(arch, arch_spec, "config arch.", err)) ||
      (rc = params_check(train, train_params, "config train.", err)) ||
      (rc = params_check(ksec, k->config_params, ksec_what, err)))
    return rc;
  const char *preset = json_string_value(json_object_get(cfg, "preset"));
  if (!preset) return sb_fail(err, SB_EINVAL, "config preset is required (l96-sakov or l96-thesis)");
  if ((rc = sim_create(&m->sim, preset, (int)params_int(cfg, "N", 0), err))) return rc;
  m->N = m->sim->dim;
  m->W = (int)params_int(cfg, "window", 10);
  m->time_varying = !m->sim->stationary;
  if (k->has_operator) {
    json_t *op = json_object_get(cfg, "operator"), *nz = json_object_get(cfg, "noise_std");
    if (!op || !nz) return sb_fail(err, SB_EINVAL, "a %s config needs operator and noise_std", k->name);
    if ((rc = obs_from_json(&m->op, op, m->sim->channels, m->sim->height, m->sim->width, err)) ||
        (rc = obs_noise_from_json(&m->noise, nz, m->op->n_obs, err)))
      return sb_wrap(err, "config");
    if (!obs_is_linear(m->op))
      return sb_fail(err, SB_ENOTSUP, "config: a %s model is trained for a linear operator, not %s (nonlinear "
                     "operators are served at request time by composed-score, local-score and the baselines)",
                     k->name, obs_type_name(m->op));
  }
  if ((rc = k->settings_new(&m->settings, err)) || (rc = k->from_config(m, ksec, arch, err))) return rc;
  train_cfg *t = &tr->tc;
  *t = (train_cfg){.steps = params_int(train, "steps", 10000), .warmup = params_int(train, "warmup", 500),
                   .val_every = params_int(train, "val_every", 500), .ckpt_every = params_int(train, "ckpt_every", 1000),
                   .batch = (int)params_int(train, "batch", 128), .pool = (int)params_int(train, "pool", 512),
                   .refresh = (int)params_int(train, "refresh", 4), .val_windows = (int)params_int(train, "val_windows", 512),
                   .schedule = NN_LR_COSINE, .threads = (int)params_int(train, "threads", 2),
                   .lr = params_num(train, "lr", 1e-3), .weight_decay = params_num(train, "weight_decay", 1e-4),
                   .ema = params_num(train, "ema", 0.999), .clip = params_num(train, "clip", 1.0),
                   .time_budget_s = params_num(train, "time_budget_s", 0),
                   .missing_time = params_num(train, "missing_time", 0),
                   .missing_entry = params_num(train, "missing_entry", 0),
                   .traj_len = (int)params_int(train, "traj_len", 0),
                   .tau_focus = params_num(train, "tau_focus", 0),
                   .tau_focus_max = params_num(train, "tau_focus_max", 1),
                   .seed = (uint64_t)params_int(train, "seed", 1)};
  const char *sch = params_str(train, "schedule", NULL);
  if (sch) {
    if (!strcmp(sch, "cosine")) t->schedule = NN_LR_COSINE;
    else if (!strcmp(sch, "linear")) t->schedule = NN_LR_LINEAR;
    else if (!strcmp(sch, "constant")) t->schedule = NN_LR_CONSTANT;
    else return sb_fail(err, SB_EINVAL, "config train.schedule must be cosine, linear or constant");
  }
  if ((rc = model_net_init(m, arch, err))) return rc;
  nn_model_init_params(&m->net, t->seed);
  m->train_config = json_deep_copy(cfg);
  if (!m->train_config) return sb_fail(err, SB_ENOMEM, "out of memory");
  return SB_OK;
}

/* Training state (params, Adam moments, EMA, step) for --resume. */
static int save_state(const trainer *tr, const char *path, sb_error *err) {
  const nn_model *m = &tr->m.net;
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
  nn_model *m = &tr->m.net;
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

/* Every rank takes rank 0's weights, Adam moments, EMA and step (the
 * initial weights, or those rank 0 resumed from), so ranks start equal
 * even where their libm differs. A collective. */
static int sync_weights(trainer *tr, sb_error *err) {
  nn_model *m = &tr->m.net;
  const size_t bytes = sizeof(float) * m->n_params;
  float **opt[3] = {&m->m, &m->v, &m->ema};
  long hdr[4] = {m->step, m->m != NULL, m->v != NULL, m->ema != NULL};
  int rc = train_dist_bcast(tr->dist, hdr, sizeof hdr, 0, err);
  if (rc) return rc;
  m->step = hdr[0];
  for (int i = 0; i < 3; i++) {
    if (hdr[i + 1] && !*opt[i] && !(*opt[i] = malloc(bytes))) return sb_fail(err, SB_ENOMEM, "out of memory");
    if (!hdr[i + 1]) free(*opt[i]), *opt[i] = NULL;
  }
  rc = train_dist_bcast(tr->dist, m->params, bytes, 0, err);
  for (int i = 0; i < 3 && !rc; i++)
    if (*opt[i]) rc = train_dist_bcast(tr->dist, *opt[i], bytes, 0, err);
  return rc;
}

/* --resume: rank 0 reads the state file (the others need not see it) and
 * sync_weights hands it on. */
static int resume(trainer *tr, const char *path, sb_error *err) {
  const int lead = !tr->dist || tr->dist->rank == 0;
  int rc = lead ? load_state(tr, path, err) : SB_OK, rc0 = rc;
  if (tr->dist && tr->dist->size > 1) {
    int brc = train_dist_bcast(tr->dist, &rc0, sizeof rc0, 0, err);
    if (brc) return brc;
    if (!lead && rc0) return sb_fail(err, rc0, "resume: rank 0 could not read %s", path);
  }
  return rc;
}

/* Fails unless every rank holds the same weights, Adam moments and EMA
 * (their FNV-1a fingerprint). A collective. */
static int check_ranks(trainer *tr, long step, sb_error *err) {
  const nn_model *m = &tr->m.net;
  const size_t bytes = sizeof(float) * m->n_params;
  uint64_t h = train_dist_hash(TRAIN_DIST_HASH0, m->params, bytes);
  if (m->m) h = train_dist_hash(h, m->m, bytes);
  if (m->v) h = train_dist_hash(h, m->v, bytes);
  if (m->ema) h = train_dist_hash(h, m->ema, bytes);
  int same, rc = train_dist_same(tr->dist, h, &same, err);
  if (!rc && !same)
    rc = sb_fail(err, SB_EINVAL, "the ranks' weights differ after step %ld (rank %d's fingerprint %016llx): the "
                 "processes no longer train the same model", step, tr->dist->rank, (unsigned long long)h);
  return rc;
}

static void trainer_free(trainer *tr) {
  if (tr->ks) tr->m.kind->train_free(tr->ks);
  model_free(&tr->m);
  train_pool_free(&tr->pool);
  free(tr->win);
  free(tr->tidx);
}

static void report(train_opts *o, long step, long total, double loss, double bloss, double vloss, double rate,
                   double elapsed) {
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
    /* JSON has no NaN: a value not computed yet (val_loss before the first
     * validation) is null */
    char l[32] = "null", bl[32] = "null", vl[32] = "null";
    if (isfinite(loss)) snprintf(l, sizeof l, "%.6f", loss);
    if (isfinite(bloss)) snprintf(bl, sizeof bl, "%.17g", bloss);
    if (isfinite(vloss)) snprintf(vl, sizeof vl, "%.6f", vloss);
    fprintf(o->progress,
            "{\"step\": %ld, \"total\": %ld, \"loss\": %s, \"batch_loss\": %s, \"val_loss\": %s, "
            "\"steps_per_s\": %.3f, \"elapsed_s\": %.1f, \"eta_s\": %.0f}\n",
            step, total, l, bl, vl, rate, elapsed, eta);
  }
  fflush(o->progress);
}

/* Normalization: the systems are translation invariant, so one mean/std
 * for all nodes, from the pool's states. */
static int normalization(trainer *tr, sb_error *err) {
  model *m = &tr->m;
  const int N = m->N;
  m->mean = malloc(sizeof(double) * N);
  m->std = malloc(sizeof(double) * N);
  if (!m->mean || !m->std) return sb_fail(err, SB_ENOMEM, "out of memory");
  train_pool_moments(&tr->pool, m->mean, m->std);
  double gm = 0, gv = 0;
  for (int n = 0; n < N; n++) gm += m->mean[n] / N;
  for (int n = 0; n < N; n++) gv += (m->std[n] * m->std[n] + (m->mean[n] - gm) * (m->mean[n] - gm)) / N;
  for (int n = 0; n < N; n++) m->mean[n] = gm, m->std[n] = sqrt(gv);
  return SB_OK;
}

/* The fixed validation set, from a pool of its own. */
static int validation_set(trainer *tr, sb_error *err) {
  const train_cfg *tc = &tr->tc;
  const int N = tr->m.N, W = tr->m.W, V = tc->val_windows;
  float *vwin = malloc(sizeof(float) * (size_t)V * W * N);
  long *vt = malloc(sizeof(long) * (size_t)V);
  train_pool vp = {0};
  int rc = !vwin || !vt ? sb_fail(err, SB_ENOMEM, "out of memory for %d validation windows", V) : SB_OK;
  if (!rc)
    rc = train_pool_init(&vp, tr->m.sim, V / 4 > 16 ? V / 4 : 16, W, tc->traj_len, tc->seed * 2654435761u + 999331,
                         tr->dist, err);
  if (!rc) {
    rng vr;
    rng_init(&vr, tc->seed, 0xA11DA7E);
    train_pool_draw(&vp, &vr, V, vwin, vt);
    rc = tr->m.kind->make_batch(tr->ks, &vr, vwin, vt, V, 1, err);
  }
  train_pool_free(&vp);
  free(vwin);
  free(vt);
  return rc;
}

int train_model(const json_t *cfg, train_opts *o, sb_error *err) {
  trainer tr;
  memset(&tr, 0, sizeof tr);
  tr.dist = o->dist && o->dist->size > 1 ? o->dist : NULL;
  const int rank = tr.dist ? tr.dist->rank : 0, size = tr.dist ? tr.dist->size : 1, lead = rank == 0;
  int rc = parse_config(&tr, cfg, err);
  if (rc) goto done;
  train_cfg *tc = &tr.tc;
  if (o->steps > 0) tc->steps = o->steps;
  if (o->time_budget_s > 0) tc->time_budget_s = o->time_budget_s;
  if (o->threads > 0) tc->threads = o->threads;
  model *sm = &tr.m;
  const model_kind *k = sm->kind;
  const int N = sm->N, W = sm->W, B = tc->batch;
  if (B < size) {
    rc = sb_fail(err, SB_EINVAL, "train.batch (%d) is the global batch and must be at least the number of processes "
                 "(%d)", B, size);
    goto done;
  }
  double t0 = now_s();
  if ((rc = train_pool_init(&tr.pool, sm->sim, tc->pool, W, tc->traj_len, tc->seed * 2654435761u + 1, tr.dist, err)))
    goto done;
  if ((rc = normalization(&tr, err))) goto done;
  kind_train_setup setup = {.batch = B, .val_windows = tc->val_windows, .missing_time = tc->missing_time,
                            .missing_entry = tc->missing_entry, .tau_focus = tc->tau_focus,
                            .tau_focus_max = tc->tau_focus_max, .part = rank, .parts = size};
  int part_lo, part_n = kind_train_part(&setup, B, &part_lo);
  setup.threads = sb_threads(tc->threads, part_n);
  if ((rc = k->train_init(&tr.ks, sm, &setup, err))) goto done;
  tr.win = malloc(sizeof(float) * (size_t)B * W * N);
  tr.tidx = malloc(sizeof(long) * (size_t)B);
  if (!tr.win || !tr.tidx) {
    rc = sb_fail(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = validation_set(&tr, err))) goto done;
  char state_path[1024];
  snprintf(state_path, sizeof state_path, "%s.state", o->out);
  if (o->resume && (rc = resume(&tr, o->resume, err))) goto done;
  if (tr.dist && ((rc = sync_weights(&tr, err)) || (o->check_ranks && (rc = check_ranks(&tr, sm->net.step, err)))))
    goto done;
  nn_adamw opt = nn_adamw_default();
  opt.lr = (float)tc->lr;
  opt.weight_decay = (float)tc->weight_decay;
  opt.clip = (float)tc->clip;
  rng r;
  rng_init(&r, tc->seed, 0x7EA1u + (uint64_t)sm->net.step);
  long total = tc->steps, skipped = 0;
  double loss_ema = NAN, loss = NAN, vloss = NAN, t_start = now_s(), last_report = 0;
  long step0 = sm->net.step, s;
  for (s = sm->net.step; s < total; s++) {
    if (tc->refresh && (rc = train_pool_refresh(&tr.pool, tc->refresh, err))) goto done;
    train_pool_draw(&tr.pool, &r, B, tr.win, tr.tidx);
    if ((rc = k->make_batch(tr.ks, &r, tr.win, tr.tidx, B, 0, err))) goto done;
    nn_zero_grad(&sm->net);
    if ((rc = k->grad(tr.ks, &loss, err))) goto done;
    /* every rank computed its part of the batch: the sums are the whole's */
    if (tr.dist && ((rc = train_dist_sum_f32(tr.dist, sm->net.grads, sm->net.n_params, err)) ||
                    (rc = train_dist_sum_f64(tr.dist, &loss, 1, err))))
      goto done;
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
    /* rank 0's clock decides where a time budget ends */
    if (tr.dist && tc->time_budget_s > 0 && (rc = train_dist_bcast(tr.dist, &total, sizeof total, 0, err))) goto done;
    if ((s + 1) % tc->val_every == 0 || s + 1 == total) {
      vloss = lead ? k->val_loss(tr.ks) : NAN;
      if (tr.dist && (rc = train_dist_bcast(tr.dist, &vloss, sizeof vloss, 0, err))) goto done;
    }
    if (tr.dist && o->check_ranks && (rc = check_ranks(&tr, s + 1, err))) goto done;
    if (lead && (s + 1) % tc->ckpt_every == 0 && (rc = save_state(&tr, state_path, err))) goto done;
    if (lead && (now_s() - last_report > (o->progress_tty ? 0.5 : 10.0) || s + 1 == total ||
                 (o->log_every > 0 && (s + 1) % o->log_every == 0))) {
      report(o, s + 1, total, loss_ema, loss, vloss, rate, el);
      last_report = now_s();
    }
  }
  if (lead && o->progress && o->progress_tty) fputc('\n', o->progress);
  if (tr.dist && (rc = check_ranks(&tr, sm->net.step, err))) goto done;
  double seconds = now_s() - t0;
  sm->training = json_pack("{s:I, s:I, s:f, s:f, s:f, s:i, s:I}", "steps", (json_int_t)sm->net.step, "skipped_steps",
                           (json_int_t)skipped, "seconds", seconds, "train_loss", loss_ema, "val_loss", vloss,
                           "batch", B, "n_params", (json_int_t)sm->net.n_params);
  if (tr.dist) json_object_set_new(sm->training, "processes", json_integer(size));
  if (lead && (rc = save_state(&tr, state_path, err))) goto done;
  if (lead && (rc = model_save(sm, sm->net.ema != NULL, o->out, err))) goto done;
  o->summary = json_deep_copy(sm->training);
done:
  trainer_free(&tr);
  return rc;
}
