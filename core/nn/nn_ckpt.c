/* nn_ckpt.c: safetensors checkpoints of nn models (see nn_ckpt.h). */
#include "nn/nn_ckpt.h"
#include "nn/nn_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *nn_ckpt_arch_name(const nn_model *m) {
  return m->kind == NN_RESNET ? "resnet" : m->kind == NN_UNET ? "unet" : "mlp";
}

/* "dims=.. levels=L widths=a,b,c blocks=.." -> c; returns 0 or -1 */
/* one "key=" then a decimal int within [-2^30, 2^30] (no sscanf %d: undefined
 * on overflow); advances *p. 0 or -1. */
static int parse_kv(const char **p, const char *key, int *out) {
  while (**p == ' ') (*p)++;
  size_t kl = strlen(key);
  if (strncmp(*p, key, kl) || (*p)[kl] != '=') return -1;
  *p += kl + 1;
  char *end;
  errno = 0;
  long v = strtol(*p, &end, 10);
  if (end == *p || errno || v < -(1L << 30) || v > (1L << 30)) return -1;
  *out = (int)v;
  *p = end;
  return 0;
}

static int parse_unet(const char *cfg, nn_unet_config *c) {
  const char *p = cfg;
  if (parse_kv(&p, "dims", &c->dims) || parse_kv(&p, "h", &c->h) || parse_kv(&p, "w", &c->w) ||
      parse_kv(&p, "cin", &c->cin) || parse_kv(&p, "cout", &c->cout) || parse_kv(&p, "levels", &c->levels))
    return -1;
  if (c->levels < 1 || c->levels > NN_UNET_MAX_LEVELS) return -1;
  if (parse_kv(&p, "widths", &c->widths[0])) return -1;
  for (int l = 1; l < c->levels; l++) {
    if (*p != ',') return -1;
    p++;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < -(1L << 30) || v > (1L << 30)) return -1;
    c->widths[l] = (int)v;
    p = end;
  }
  if (parse_kv(&p, "blocks", &c->blocks) || parse_kv(&p, "mid", &c->mid) || parse_kv(&p, "groups", &c->groups) ||
      parse_kv(&p, "n_scalars", &c->n_scalars) || parse_kv(&p, "emb_dim", &c->emb_dim))
    return -1;
  while (*p == ' ') p++;
  return *p ? -1 : 0;
}

void nn_ckpt_config_string(const nn_model *m, char *buf, size_t n) {
  if (m->kind == NN_RESNET) {
    const nn_resnet_config *c = &m->rc;
    snprintf(buf, n,
             "dims=%d h=%d w=%d cin=%d cout=%d width=%d blocks=%d groups=%d n_scalars=%d "
             "emb_dim=%d",
             c->dims, c->h, c->w, c->cin, c->cout, c->width, c->blocks, c->groups, c->n_scalars,
             c->emb_dim);
  } else if (m->kind == NN_UNET) {
    const nn_unet_config *c = &m->uc;
    char wl[NN_UNET_MAX_LEVELS * 12] = "";
    for (int l = 0, o = 0; l < c->levels; l++)
      o += snprintf(wl + o, sizeof wl - (size_t)o, "%s%d", l ? "," : "", c->widths[l]);
    snprintf(buf, n,
             "dims=%d h=%d w=%d cin=%d cout=%d levels=%d widths=%s blocks=%d mid=%d groups=%d "
             "n_scalars=%d emb_dim=%d",
             c->dims, c->h, c->w, c->cin, c->cout, c->levels, wl, c->blocks, c->mid, c->groups,
             c->n_scalars, c->emb_dim);
  } else {
    const nn_mlp_config *c = &m->mc;
    snprintf(buf, n, "in=%d out=%d hidden=%d layers=%d act=%d", c->in, c->out, c->hidden,
             c->layers, c->act);
  }
}

int nn_ckpt_save(const nn_model *m, int use_ema, const char *path, int n_meta,
                 const char *const *keys, const char *const *vals, sb_error *err) {
  const float *src = use_ema ? m->ema : m->params;
  if (!src) return sb_fail(err, SB_EINVAL, "nn: checkpoint of EMA weights requested but no EMA");
  st_file f;
  st_init(&f);
  char cfg[256], num[32], step[32];
  nn_ckpt_config_string(m, cfg, sizeof cfg);
  snprintf(num, sizeof num, "%zu", m->n_params);
  snprintf(step, sizeof step, "%ld", m->step);
  int rc = st_set_meta(&f, "nn.format", NN_CKPT_FORMAT, err);
  if (!rc) rc = st_set_meta(&f, "nn.arch", nn_ckpt_arch_name(m), err);
  if (!rc) rc = st_set_meta(&f, "nn.config", cfg, err);
  if (!rc) rc = st_set_meta(&f, "nn.n_params", num, err);
  if (!rc) rc = st_set_meta(&f, "nn.step", step, err);
  if (!rc) rc = st_set_meta(&f, "nn.weights", use_ema ? "ema" : "params", err);
  for (int i = 0; !rc && i < n_meta; i++) rc = st_set_meta(&f, keys[i], vals[i], err);
  for (int i = 0; !rc && i < m->n_tensors; i++) {
    const nn_tensor *t = &m->tensors[i];
    rc = st_add(&f, t->name, ST_F32, t->ndim, t->shape, src + t->offset, err);
  }
  if (!rc) rc = st_write(&f, path, err);
  st_free(&f);
  if (rc) sb_wrap(err, "nn: saving checkpoint %s", path);
  return rc;
}

int nn_ckpt_copy_params(nn_model *m, const st_file *f, const char *prefix, sb_error *err) {
  char name[NN_NAME_MAX + 64];
  for (int i = 0; i < m->n_tensors; i++) {
    const nn_tensor *t = &m->tensors[i];
    const st_tensor *s;
    snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", t->name);
    int rc = st_get_checked(f, name, ST_F32, t->ndim, t->shape, &s, err);
    if (rc) return rc;
    memcpy(m->params + t->offset, s->data, t->numel * sizeof(float));
  }
  return SB_OK;
}

/* Reads "k1=v1 k2=v2 ..." with exactly the keys given, in order, into out:
 * decimal ints within [-2^30, 2^30] (sscanf's %d is undefined on overflow;
 * the plans check the real bounds). 0 or -1. */
static int parse_ints(const char *cfg, const char *const *keys, int n, int *out) {
  const char *p = cfg;
  for (int i = 0; i < n; i++) {
    while (*p == ' ') p++;
    size_t kl = strlen(keys[i]);
    if (strncmp(p, keys[i], kl) || p[kl] != '=') return -1;
    p += kl + 1;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < -(1L << 30) || v > (1L << 30) || (*end && *end != ' ')) return -1;
    out[i] = (int)v;
    p = end;
  }
  while (*p == ' ') p++;
  return *p ? -1 : 0;
}

static int parse_config(nn_model *m, const char *arch, const char *cfg, sb_error *err) {
  if (!strcmp(arch, "resnet")) {
    static const char *const keys[] = {"dims", "h", "w", "cin", "cout", "width", "blocks", "groups",
                                       "n_scalars", "emb_dim"};
    int v[10];
    if (parse_ints(cfg, keys, 10, v))
      return sb_fail(err, SB_EFORMAT, "nn: cannot parse resnet nn.config '%.200s'", cfg);
    nn_resnet_config c = {.dims = v[0], .h = v[1], .w = v[2], .cin = v[3], .cout = v[4], .width = v[5],
                          .blocks = v[6], .groups = v[7], .n_scalars = v[8], .emb_dim = v[9]};
    return nn__resnet_plan(m, &c, err);
  }
  if (!strcmp(arch, "unet")) {
    nn_unet_config c = {0};
    if (parse_unet(cfg, &c)) return sb_fail(err, SB_EFORMAT, "nn: cannot parse unet nn.config '%.200s'", cfg);
    return nn__unet_plan(m, &c, err);
  }
  if (!strcmp(arch, "mlp")) {
    static const char *const keys[] = {"in", "out", "hidden", "layers", "act"};
    int v[5];
    if (parse_ints(cfg, keys, 5, v))
      return sb_fail(err, SB_EFORMAT, "nn: cannot parse mlp nn.config '%.200s'", cfg);
    nn_mlp_config c = {.in = v[0], .out = v[1], .hidden = v[2], .layers = v[3], .act = v[4]};
    return nn__mlp_plan(m, &c, err);
  }
  return sb_fail(err, SB_EFORMAT, "nn: unknown architecture nn.arch = '%.100s'", arch);
}

int nn_ckpt_model_from_config(nn_model *m, const char *arch, const char *cfg, sb_error *err) {
  int rc = parse_config(m, arch, cfg, err);
  return rc ? rc : nn__alloc(m, err);
}

int nn_ckpt_load(const char *path, nn_model *m, st_file *meta, sb_error *err) {
  st_file f;
  memset(m, 0, sizeof *m);
  int rc = st_read(path, &f, err);
  if (rc) { /* st_read's message already names the file */
    sb_wrap(err, "nn: loading checkpoint");
    return rc;
  }
  const char *fmt = st_get_meta(&f, "nn.format"), *arch = st_get_meta(&f, "nn.arch");
  const char *cfg = st_get_meta(&f, "nn.config"), *step = st_get_meta(&f, "nn.step");
  if (!fmt || !arch || !cfg)
    rc = sb_fail(err, SB_EFORMAT, "not an sbida nn checkpoint (metadata nn.format, nn.arch or "
                                  "nn.config missing)");
  else if (strcmp(fmt, NN_CKPT_FORMAT))
    rc = sb_fail(err, SB_ENOTSUP, "checkpoint format %s, this build reads %s", fmt,
                 NN_CKPT_FORMAT);
  /* The config is only a plan until every tensor it names is in the file
   * with its shape: a damaged config (width 4000, 16 blocks) is refused
   * before anything is allocated, so what is allocated is bounded by the
   * file's own size. */
  if (!rc) rc = parse_config(m, arch, cfg, err);
  for (int i = 0; !rc && i < m->n_tensors; i++) {
    const nn_tensor *t = &m->tensors[i];
    const st_tensor *s;
    rc = st_get_checked(&f, t->name, ST_F32, t->ndim, t->shape, &s, err);
  }
  if (!rc) rc = nn__alloc(m, err);
  if (!rc) rc = nn_ckpt_copy_params(m, &f, NULL, err);
  if (!rc && step) m->step = atol(step);
  if (rc) {
    nn_model_free(m);
    st_free(&f);
    sb_wrap(err, "nn: loading checkpoint %s", path);
    return rc;
  }
  if (meta)
    *meta = f;
  else
    st_free(&f);
  return SB_OK;
}
