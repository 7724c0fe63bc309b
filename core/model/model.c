/* model.c: model files of every kind (see model.h). The kind's own
 * metadata section is written and read by its ops table. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/kind.h"
#include "nn/nn_ckpt.h"
#include "util/jsonb.h"
#include "util/version.h"

static char *doubles_json(const double *v, int n) {
  int bad = 0;
  json_t *a = jb_array(&bad);
  for (int i = 0; i < n; i++) jb_push_real(a, v[i], &bad);
  if (!(a = jb_done(a, bad))) return NULL;
  char *s = json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(17));
  json_decref(a);
  return s;
}

int model_save(const model *sm, int use_ema, const char *path, sb_error *err) {
  char nbuf[16], wbuf[16], tv[4];
  snprintf(nbuf, sizeof nbuf, "%d", sm->N);
  snprintf(wbuf, sizeof wbuf, "%d", sm->W);
  snprintf(tv, sizeof tv, "%d", sm->time_varying);
  json_t *samp = sm->kind->meta_to_json(sm);
  char *sampler = samp ? json_dumps(samp, JSON_COMPACT) : NULL;
  json_decref(samp);
  char *mean = doubles_json(sm->mean, sm->N), *std = doubles_json(sm->std, sm->N);
  if (!sampler || !mean || !std) {
    free(sampler); free(mean); free(std);
    return sb_fail(err, SB_ENOMEM, "out of memory for the metadata of %s", path);
  }
  char *opj = NULL, *noise = NULL, *tc = NULL, *tr = NULL;
  if (sm->op) {
    json_t *j = obs_to_json(sm->op);
    opj = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    j = obs_noise_to_json(&sm->noise);
    noise = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
  }
  if (sm->train_config) tc = json_dumps(sm->train_config, JSON_COMPACT);
  if (sm->training) tr = json_dumps(sm->training, JSON_COMPACT);
  if ((sm->op && (!opj || !noise)) || (sm->train_config && !tc) || (sm->training && !tr)) {
    free(sampler); free(mean); free(std); free(opj); free(noise); free(tc); free(tr);
    return sb_fail(err, SB_ENOMEM, "out of memory for the metadata of %s", path);
  }
  const char *keys[16], *vals[16];
  int n = 0;
  keys[n] = "sbida.version", vals[n++] = SBIDA_VERSION;
  keys[n] = "sbida.kind", vals[n++] = sm->kind->name;
  keys[n] = "sbida.system", vals[n++] = sm->sim->system;
  keys[n] = "sbida.preset", vals[n++] = sm->sim->preset;
  keys[n] = "sbida.N", vals[n++] = nbuf;
  keys[n] = "sbida.window", vals[n++] = wbuf;
  keys[n] = "sbida.time_varying", vals[n++] = tv;
  keys[n] = "sbida.norm_mean", vals[n++] = mean;
  keys[n] = "sbida.norm_std", vals[n++] = std;
  keys[n] = sm->kind->meta_key, vals[n++] = sampler;
  if (opj) keys[n] = "sbida.operator", vals[n++] = opj;
  if (noise) keys[n] = "sbida.noise_std", vals[n++] = noise;
  if (tc) keys[n] = "sbida.train_config", vals[n++] = tc;
  if (tr) keys[n] = "sbida.training", vals[n++] = tr;
  int rc = nn_ckpt_save(&sm->net, use_ema, path, n, keys, vals, err);
  free(sampler); free(mean); free(std); free(opj); free(noise); free(tc); free(tr);
  return rc;
}

static int meta_json(const st_file *f, const char *key, int required, json_t **out, sb_error *err) {
  const char *s = st_get_meta(f, key);
  *out = NULL;
  if (!s) return required ? sb_fail(err, SB_EFORMAT, "model metadata lacks %s", key) : SB_OK;
  json_error_t je;
  *out = json_loads(s, JSON_DECODE_ANY, &je);
  if (!*out) return sb_fail(err, SB_EFORMAT, "model metadata %s is not valid JSON: %s", key, je.text);
  return SB_OK;
}

static int meta_int(const st_file *f, const char *key, int lo, int hi, int *v, sb_error *err) {
  const char *s = st_get_meta(f, key);
  char *end;
  if (!s) return sb_fail(err, SB_EFORMAT, "model metadata lacks %s", key);
  long x = strtol(s, &end, 10);
  if (*end || end == s || x < lo || x > hi) return sb_fail(err, SB_EFORMAT, "model metadata %s = '%s' is invalid", key, s);
  *v = (int)x;
  return SB_OK;
}

static int norm_array(const st_file *f, const char *key, int N, double **out, sb_error *err) {
  json_t *j;
  int rc = meta_json(f, key, 1, &j, err);
  if (rc) return rc;
  if (!json_is_array(j) || json_array_size(j) != (size_t)N) {
    json_decref(j);
    return sb_fail(err, SB_EFORMAT, "model metadata %s must be an array of %d numbers", key, N);
  }
  *out = malloc(sizeof(double) * (size_t)N);
  if (!*out) {
    json_decref(j);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  for (int i = 0; i < N; i++) {
    json_t *x = json_array_get(j, (size_t)i);
    double v = json_is_number(x) ? json_number_value(x) : NAN; /* a string is not a zero */
    if (!isfinite(v)) {
      free(*out);
      *out = NULL;
      json_decref(j);
      return sb_fail(err, SB_EFORMAT, "model metadata %s[%d] is not a finite number", key, i);
    }
    (*out)[i] = v;
  }
  json_decref(j);
  return SB_OK;
}

int model_read(model *sm, const char *path, int (*find)(const char *name, const model_kind **k, sb_error *err),
               sb_error *err) {
  memset(sm, 0, sizeof *sm);
  st_file f;
  int rc = nn_ckpt_load(path, &sm->net, &f, err);
  if (rc) return rc;
  json_t *section = NULL, *opj = NULL, *nz = NULL;
  if ((rc = find(st_get_meta(&f, "sbida.kind"), &sm->kind, err))) {
    sb_wrap(err, "%s: metadata sbida.kind", path);
    nn_model_free(&sm->net);
    goto done;
  }
  const model_kind *k = sm->kind;
  if ((rc = meta_int(&f, "sbida.N", 4, 1 << 20, &sm->N, err)) || (rc = meta_int(&f, "sbida.window", 1, 1024, &sm->W, err)) ||
      (rc = meta_int(&f, "sbida.time_varying", 0, 1, &sm->time_varying, err)))
    goto fail;
  /* N is the state size: a 1D preset is created for it; a 2D one (whose
   * size is fixed, Kolmogorov's 2 x 32 x 32) must have it */
  sb_error e0 = {0};
  if (sim_create(&sm->sim, st_get_meta(&f, "sbida.preset"), 0, &e0) || sm->sim->dim != sm->N) {
    sim_free(sm->sim);
    sm->sim = NULL;
    if ((rc = sim_create(&sm->sim, st_get_meta(&f, "sbida.preset"), sm->N, err))) goto fail;
    if (sm->sim->dim != sm->N) {
      rc = sb_fail(err, SB_EFORMAT, "model metadata sbida.N = %d is not a state size of preset %s", sm->N,
                   sm->sim->preset);
      goto fail;
    }
  }
  if ((rc = norm_array(&f, "sbida.norm_mean", sm->N, &sm->mean, err)) ||
      (rc = norm_array(&f, "sbida.norm_std", sm->N, &sm->std, err)))
    goto fail;
  for (int i = 0; i < sm->N; i++)
    if (!(sm->std[i] > 0)) {
      rc = sb_fail(err, SB_EFORMAT, "normalization std[%d] must be positive", i);
      goto fail;
    }
  if ((rc = k->settings_new(&sm->settings, err)) || (rc = meta_json(&f, k->meta_key, 0, &section, err)) ||
      (rc = k->meta_from_json(sm, section, err)))
    goto fail;
  if ((rc = model_net_check(sm, err))) goto fail;
  if (k->has_operator) {
    if ((rc = meta_json(&f, "sbida.operator", 1, &opj, err)) ||
        (rc = obs_from_json(&sm->op, opj, sm->sim->channels, sm->sim->height, sm->sim->width, err)) ||
        (rc = meta_json(&f, "sbida.noise_std", 1, &nz, err)) ||
        (rc = obs_noise_from_json(&sm->noise, nz, sm->op->n_obs, err)))
      goto fail;
  }
  json_t *tc = NULL, *tr = NULL;
  if (!meta_json(&f, "sbida.train_config", 0, &tc, NULL)) sm->train_config = tc;
  if (!meta_json(&f, "sbida.training", 0, &tr, NULL)) sm->training = tr;
  goto done;
fail:
  sb_wrap(err, "%s", path);
  model_free(sm);
done:
  json_decref(section);
  json_decref(opj);
  json_decref(nz);
  st_free(&f);
  return rc;
}

void model_free(model *sm) {
  if (!sm) return;
  if (sm->kind && sm->settings) sm->kind->settings_free(sm->settings);
  sim_free(sm->sim);
  free(sm->mean);
  free(sm->std);
  obs_free(sm->op);
  obs_noise_free(&sm->noise);
  nn_model_free(&sm->net);
  json_decref(sm->train_config);
  json_decref(sm->training);
  memset(sm, 0, sizeof *sm);
}

int model_lift_observations(const model *sm, const obs_op *op, const double *y, float *out, sb_error *err) {
  const int N = sm->N, W = sm->W, no = op->n_obs;
  double *yc = malloc(sizeof(double) * (size_t)no), *g = malloc(sizeof(double) * (size_t)N),
         *am = malloc(sizeof(double) * (size_t)no), *mk = malloc(sizeof(double) * (size_t)no);
  if (!yc || !g || !am || !mk) {
    free(yc); free(g); free(am); free(mk);
    return sb_fail(err, SB_ENOMEM, "out of memory for the observations of a window");
  }
  obs_apply(op, sm->mean, am, 1); /* A mean: observations of the mean state */
  for (int w = 0; w < W; w++) {
    const double *yw = y + (size_t)w * no;
    for (int i = 0; i < no; i++) {
      int seen = !isnan(yw[i]);
      yc[i] = seen ? yw[i] - am[i] : 0.0;
      mk[i] = seen;
    }
    memset(g, 0, sizeof(double) * (size_t)N);
    obs_apply_adjoint(op, yc, g, 1);
    for (int n = 0; n < N; n++) out[(size_t)w * N + n] = (float)(g[n] / sm->std[n]);
    memset(g, 0, sizeof(double) * (size_t)N);
    obs_apply_adjoint(op, mk, g, 1);
    for (int n = 0; n < N; n++) out[(size_t)(W + w) * N + n] = (float)g[n];
  }
  free(yc); free(g); free(am); free(mk);
  return SB_OK;
}

int model_observe_window(const model *sm, rng *r, double missing_time, double missing_entry, const float *wb,
                         double *xs, double *y, float *lift, sb_error *err) {
  const int N = sm->N, W = sm->W, no = sm->op->n_obs;
  for (int w = 0; w < W; w++) {
    for (int n = 0; n < N; n++) xs[n] = wb[(size_t)w * N + n];
    obs_apply(sm->op, xs, y + (size_t)w * no, 1);
    int drop_all = rng_uniform(r) < missing_time && w < W - 1;
    for (int i = 0; i < no; i++) {
      y[(size_t)w * no + i] += sm->noise.std[i] * rng_normal(r);
      if (drop_all || rng_uniform(r) < missing_entry) y[(size_t)w * no + i] = NAN;
    }
  }
  return model_lift_observations(sm, sm->op, y, lift, err);
}

double model_time_scaled(const model *m, long t) {
  return m->time_varying ? (double)t / (double)m->sim->t_max : 0.0;
}
