/* kinds.c: the registry of model kinds. Adding a kind: its folder
 * core/kinds/<name>/ defining `const model_kind kind_<name>` and ONE line in
 * KINDS below. */
#include "kinds/kinds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonb.h"

#define KINDS(X) X(posterior_score) X(composed_score) X(npe) X(nre) X(local_score)

#define DECLARE(k) extern const model_kind kind_##k;
KINDS(DECLARE)
#define LIST(k) &kind_##k,
static const model_kind *const kinds[] = {KINDS(LIST)};
#define N_KINDS ((int)(sizeof kinds / sizeof kinds[0]))

const model_kind *model_kind_at(int i) { return i >= 0 && i < N_KINDS ? kinds[i] : NULL; }

const model_kind *model_kind_find(const char *name) {
  for (int i = 0; name && i < N_KINDS; i++)
    if (!strcmp(kinds[i]->name, name)) return kinds[i];
  return NULL;
}

const char *model_kind_list(char *buf, size_t size) {
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < N_KINDS && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%s", i == 0 ? "" : i + 1 == N_KINDS ? " or " : ", ", kinds[i]->name);
  return buf;
}

int model_kind_get(const char *name, const model_kind **out, sb_error *err) {
  *out = model_kind_find(name);
  if (*out) return SB_OK;
  char list[256];
  return sb_fail(err, SB_EINVAL, "must be %s, not '%s'", model_kind_list(list, sizeof list), name ? name : "(none)");
}

int model_load(model *m, const char *path, sb_error *err) { return model_read(m, path, model_kind_get, err); }

static void destroy(estimator *e) {
  model *m = e->impl;
  if (m) {
    if (m->sim == e->sim) m->sim = NULL; /* owned by the estimator */
    model_free(m);
    free(m);
  }
  e->impl = NULL;
}

/* Which settings a request runs with: the kind's section of the model file
 * (info.<meta key>), not the training config's section of the same name,
 * which only gave its first value (`sbida model --set-sampler` and defaults
 * added later change the file's). Lists the settings where the two differ,
 * so the listing never leaves a reader to guess. New reference or NULL. */
static json_t *model_settings_source(const model *m, const json_t *settings) {
  const char *key = m->kind->meta_key + strlen("sbida.");
  json_t *tc = m->kind->config_key ? json_object_get(m->train_config, m->kind->config_key) : NULL;
  int bad = 0;
  json_t *diff = jb_object(&bad);
  const char *k;
  json_t *v;
  if (!diff) return NULL;
  json_object_foreach((json_t *)settings, k, v) {
    json_t *t = json_object_get(tc, k);
    if (t && !json_equal(t, v)) jb_set(diff, k, json_pack("{s:O, s:O}", "in_use", v, "train_config", t), &bad);
  }
  if (bad) {
    json_decref(diff);
    return NULL;
  }
  char what[160];
  snprintf(what, sizeof what, "info.%s (the model file's %s); a request's params, where the kind takes them, override it per job", key,
           m->kind->meta_key);
  return json_pack("{s:s, s:s, s:o}", "section", key, "source", what, "differs_from_train_config", diff);
}

static json_t *architecture_json(const nn_model *n) {
  if (n->kind != NN_UNET)
    return json_pack("{s:s, s:i, s:i, s:i, s:i}", "type", n->rc.dims == 2 ? "resnet2d" : "resnet1d", "width",
                     n->rc.width, "blocks", n->rc.blocks, "in_channels", n->rc.cin, "out_channels", n->rc.cout);
  const nn_unet_config *u = &n->uc;
  int bad = 0;
  json_t *w = jb_array(&bad);
  for (int l = 0; w && l < u->levels; l++) jb_push(w, json_integer(u->widths[l]), &bad);
  if (bad) {
    json_decref(w);
    return NULL;
  }
  return json_pack("{s:s, s:o, s:i, s:i, s:i, s:i}", "type", u->dims == 2 ? "unet2d" : "unet1d", "widths", w,
                   "blocks", u->blocks, "mid", u->mid, "in_channels", u->cin, "out_channels", u->cout);
}

static json_t *model_info(const model *m) {
  json_t *info = json_object(), *settings = m->kind->meta_to_json(m);
  if (!info || !settings) {
    json_decref(info);
    json_decref(settings);
    return NULL;
  }
  int bad = 0;
  json_t *src = model_settings_source(m, settings); /* before info owns settings */
  jb_set(info, m->kind->meta_key + strlen("sbida."), settings, &bad);
  jb_set(info, "n_params", json_integer((json_int_t)m->net.n_params), &bad);
  jb_set(info, "architecture", architecture_json(&m->net), &bad);
  if (m->training) jb_set(info, "training", json_incref(m->training), &bad);
  if (m->train_config) jb_set(info, "train_config", json_incref(m->train_config), &bad);
  jb_set(info, "settings_in_use", src, &bad);
  return jb_done(info, bad);
}

/* Learned estimators: S states in double and float copies, the lifted
 * observations, and the network evaluated in chunks (per-thread workspaces
 * of about 64 states). Work: one forward pass costs about 2 n_params x N
 * operations; how many per sample depends on the kind's sampler, so only
 * memory is estimated here (the work is bounded by --max-samples and the
 * model's fixed architecture). */
static void model_cost(const estimator *e, const est_problem *p, const est_options *o, est_cost *c) {
  const model *m = e->impl;
  double S = o->n_samples, N = m->N, width = m->net.rc.width, blocks = m->net.rc.blocks;
  if (m->net.kind == NN_UNET) /* activations: about those of a resnet of the first level's width per channel */
    width = (double)m->net.uc.widths[0] * m->net.uc.h * m->net.uc.w / N,
    blocks = 2.0 * m->net.uc.blocks * m->net.uc.levels + m->net.uc.mid;
  double threads = o->threads > 0 ? o->threads : 1;
  /* a shorter request is placed in the model's window (composed score) */
  double W = p->window > m->W ? p->window : m->W;
  c->bytes += 8.0 * S * N * 6 + 4.0 * 2 * W * N + threads * 4.0 * 64 * N * width * (2 * blocks + 6);
  if (p->background) {
    /* the guidance's background (diff_bg.h): its copy, the Woodbury factor
     * and per-sample scratch; per evaluation O(S_b^2 N + S_b^3) to prepare
     * and O(S S_b N) to apply, small next to the network */
    double Sb = p->background->members ? p->background->n_members : 0, Np = p->sim->dim;
    c->bytes += 8.0 * (Np * (2 + Sb) + Sb * Sb + S * (2 * Np + Sb));
  }
}

int model_open_estimator(estimator **out, const char *path, sb_error *err) {
  *out = NULL;
  model *m = calloc(1, sizeof *m);
  estimator *e = calloc(1, sizeof *e);
  if (!m || !e) {
    free(m);
    free(e);
    return sb_fail(err, SB_ENOMEM, "out of memory");
  }
  int rc = model_load(m, path, err);
  if (rc) {
    free(m);
    free(e);
    return rc;
  }
  /* the estimator's name is the file stem */
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(e->name, sizeof e->name, "%s", base);
  char *dot = strstr(e->name, ".safetensors");
  if (dot) *dot = 0;
  snprintf(e->kind, sizeof e->kind, "%s", m->kind->name);
  e->sim = m->sim;
  e->window = m->W;
  e->has_window = m->kind->has_window;
  e->accepts_background = m->kind->accepts_background;
  e->params = m->kind->request_params;
  e->check_options = m->kind->check_options;
  e->destroy = destroy;
  e->impl = m;
  if (m->kind->serve_ranges) m->kind->serve_ranges(m, e);
  /* an estimator that may change its state size (est_set_dim) owns a
   * simulator of its own; the model keeps the one it was trained for */
  if (e->dim_max > 0) {
    e->sim = NULL;
    rc = sim_create(&e->sim, m->sim->preset, m->N, err);
  }
  e->info = rc ? NULL : model_info(m);
  if (!rc && e->dim_max > 0 && e->info) {
    int bad = 0;
    jb_set(e->info, "accepts",
           json_pack("{s:{s:i, s:i}, s:{s:i, s:i}}", "state_dim", "min", e->dim_min, "max", e->dim_max, "window",
                     "min", e->window_min, "max", e->window_max),
           &bad);
    e->info = jb_done(e->info, bad);
  }
  if (!rc && !e->info) rc = sb_fail(err, SB_ENOMEM, "out of memory");
  if (!rc && m->kind->has_operator) {
    /* the estimator owns copies of the trained operator and noise */
    json_t *j = obs_to_json(m->op);
    rc = obs_from_json(&e->fixed_op, j, m->sim->channels, m->sim->height, m->sim->width, err);
    json_decref(j);
    e->fixed_noise = calloc(1, sizeof *e->fixed_noise);
    if (!rc && !e->fixed_noise) rc = sb_fail(err, SB_ENOMEM, "out of memory");
    if (!rc) {
      j = obs_noise_to_json(&m->noise);
      rc = obs_noise_from_json(e->fixed_noise, j, m->op->n_obs, err);
      json_decref(j);
    }
  }
  e->sample = m->kind->sample;
  e->cost = model_cost;
  e->log_prob = m->kind->log_prob;
  e->has_density = m->kind->log_prob != NULL;
  if (rc) {
    est_free(e);
    return rc;
  }
  *out = e;
  return SB_OK;
}
