/* model_net.c: the network of a model, chosen by the config's "arch" (see
 * model.h): the residual net (default) or the U-Net, over the simulator's
 * layout. A window's states stack as channels: in_channels(W) x C channels
 * of the state's [C][H][Wd] grid (1D systems: h = 1, w = N, one channel
 * per state, as before the U-Net existed), so the kinds' [channels][N]
 * buffers are the network's (cin, S) layout unchanged. */
#include <string.h>

#include "model/kind.h"
#include "model/model.h"
#include "util/params.h"

/* The network layout the model's kind, window and simulator ask for. */
static void layout(const model *m, int *dims, int *h, int *w, int *cin, int *cout, int *ns) {
  const sim *s = m->sim;
  *dims = s->height > 1 ? 2 : 1;
  *h = *dims == 2 ? s->height : 1;
  *w = *dims == 2 ? s->width : m->N;
  int C = *dims == 2 ? s->channels : 1; /* 1D: a node's channels are its nodes (N = C * width) */
  *cin = m->kind->in_channels(m->W) * C;
  *cout = m->kind->out_channels(m->W) * C;
  *ns = m->kind->n_scalars(m->time_varying);
}

/* the config's arch has passed params_check (train.c), so its fields have their types and ranges */
static int arch_int(const json_t *arch, const char *key, int def) { return (int)params_int(arch, key, def); }

int model_net_init(model *m, const json_t *arch, sb_error *err) {
  int dims, h, w, cin, cout, ns;
  layout(m, &dims, &h, &w, &cin, &cout, &ns);
  const char *type = json_string_value(json_object_get(arch, "type"));
  int groups = arch_int(arch, "groups", 8), emb_dim = arch_int(arch, "emb_dim", 32);
  if (!type || !strcmp(type, "resnet")) {
    if (json_object_get(arch, "widths") || json_object_get(arch, "mid"))
      return sb_fail(err, SB_EINVAL, "config arch.widths and arch.mid are for \"type\": \"unet\"");
    int width = arch_int(arch, "width", 64);
    if (width % groups)
      return sb_fail(err, SB_EINVAL, "config arch.groups (%d) must divide arch.width (%d)", groups, width);
    nn_resnet_config rc = {.dims = dims, .h = h, .w = w, .cin = cin, .cout = cout, .width = width,
                           .blocks = arch_int(arch, "blocks", 6), .groups = groups, .n_scalars = ns,
                           .emb_dim = emb_dim};
    return nn_resnet_init(&m->net, &rc, err);
  }
  if (strcmp(type, "unet"))
    return sb_fail(err, SB_EINVAL, "config arch.type must be \"resnet\" or \"unet\" (got \"%s\")", type);
  /* a kind that serves any state size (local-score) re-sizes a resnet per request */
  if (m->kind->any_size)
    return sb_fail(err, SB_EINVAL, "config arch.type \"unet\": %s builds only the resnet", m->kind->name);
  if (json_object_get(arch, "width"))
    return sb_fail(err, SB_EINVAL, "config arch.width is the resnet's; a unet takes arch.widths (one per level)");
  const json_t *wl = json_object_get(arch, "widths");
  size_t L = json_array_size(wl);
  if (!json_is_array(wl) || L < 1 || L > NN_UNET_MAX_LEVELS)
    return sb_fail(err, SB_EINVAL, "config arch.widths must be an array of 1..%d channel counts (one per level)",
                   NN_UNET_MAX_LEVELS);
  nn_unet_config uc = {.dims = dims, .h = h, .w = w, .cin = cin, .cout = cout, .levels = (int)L,
                       .blocks = arch_int(arch, "blocks", 2), .mid = arch_int(arch, "mid", 1), .groups = groups,
                       .n_scalars = ns, .emb_dim = emb_dim};
  for (size_t l = 0; l < L; l++) {
    json_t *v = json_array_get(wl, l);
    json_int_t x = json_is_integer(v) ? json_integer_value(v) : 0;
    if (x < 8 || x > 1024)
      return sb_fail(err, SB_EINVAL, "config arch.widths[%zu] must be an integer in 8..1024", l);
    uc.widths[l] = (int)x;
  }
  return nn_unet_init(&m->net, &uc, err);
}

int model_net_check(const model *m, sb_error *err) {
  int dims, h, w, cin, cout, ns;
  layout(m, &dims, &h, &w, &cin, &cout, &ns);
  const nn_model *n = &m->net;
  int ok = 0;
  if (n->kind == NN_RESNET)
    ok = n->rc.dims == dims && n->rc.h == h && n->rc.w == w && n->rc.cin == cin && n->rc.cout == cout &&
         n->rc.n_scalars == ns;
  else if (n->kind == NN_UNET && !m->kind->any_size)
    ok = n->uc.dims == dims && n->uc.h == h && n->uc.w == w && n->uc.cin == cin && n->uc.cout == cout &&
         n->uc.n_scalars == ns;
  if (ok) return SB_OK;
  return sb_fail(err, SB_EFORMAT, "network shape does not match a %s model of window %d over %d %s", m->kind->name,
                 m->W, m->N, dims == 2 ? "values of a 2D state" : "nodes");
}
