/* nn_ckpt.h: model checkpoints as safetensors.
 *
 * A checkpoint holds every named tensor of the model (F32, PyTorch names and
 * shapes, so torch/numpy can open it) and metadata: "nn.format" (version),
 * "nn.arch" ("resnet" | "unet" | "mlp"), "nn.config" (the sizes as key=value pairs),
 * "nn.n_params", "nn.step", plus any caller keys (system, operator,
 * normalization, training config, ...). Loading rebuilds the model from the
 * metadata and checks every tensor's dtype and shape; a missing tensor, wrong
 * shape, truncated file or bad header fails with the reason in err. */
#ifndef SB_NN_CKPT_H
#define SB_NN_CKPT_H

#include "nn/nn_model.h"
#include "util/safetensors.h"

#define NN_CKPT_FORMAT "1"

/* Writes m's parameters (use_ema = 1: the EMA weights, which must exist) and
 * the n_meta extra (keys[i], vals[i]) pairs to path. */
int nn_ckpt_save(const nn_model *m, int use_ema, const char *path, int n_meta,
                 const char *const *keys, const char *const *vals, sb_error *err);

/* Reads path into a new model *m (caller frees with nn_model_free). If meta is
 * not NULL the whole file stays open in *meta for the caller's own metadata
 * and tensors (st_free it); otherwise it is released. */
int nn_ckpt_load(const char *path, nn_model *m, st_file *meta, sb_error *err);

/* Copies the tensors named prefix+<tensor name> from f into m->params,
 * checking dtype and shape (for files produced elsewhere, e.g. by PyTorch). */
int nn_ckpt_copy_params(nn_model *m, const st_file *f, const char *prefix, sb_error *err);

/* A new model *m (zero-initialized parameters) from an nn.arch and nn.config
 * pair as a checkpoint stores them; SB_EFORMAT if they cannot be parsed. */
int nn_ckpt_model_from_config(nn_model *m, const char *arch, const char *cfg, sb_error *err);
/* "resnet", "unet" or "mlp": the nn.arch of m. */
const char *nn_ckpt_arch_name(const nn_model *m);
/* The "nn.config" string of m (buf of n bytes). */
void nn_ckpt_config_string(const nn_model *m, char *buf, size_t n);

#endif
