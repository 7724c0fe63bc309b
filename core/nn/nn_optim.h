/* nn_optim.h: training utilities on a model's contiguous buffers: AdamW,
 * global-norm clipping, non-finite step skipping, EMA of weights, LR schedules.
 * All loops are single passes over n_params floats and are deterministic. */
#ifndef SB_NN_OPTIM_H
#define SB_NN_OPTIM_H

#include "nn/nn_model.h"

typedef struct nn_adamw {
  float lr, beta1, beta2, eps, weight_decay;
  float clip; /* max global gradient norm; <= 0 disables clipping */
} nn_adamw;

/* PyTorch defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2, no clip. */
nn_adamw nn_adamw_default(void);

/* Global L2 norm of grads (n floats), accumulated in double; NaN/Inf if any is. */
double nn_grad_norm(const float *grads, size_t n);

/* One AdamW step with learning rate lr on m->grads (PyTorch AdamW semantics,
 * decoupled decay on every parameter). Clips first if opt->clip > 0. If the
 * gradient norm is not finite the step is skipped: parameters and moments are
 * untouched, m->step does not advance, and 1 is returned. Returns 0 after a
 * step, SB_ENOMEM if the moment buffers could not be allocated. *norm_out
 * (may be NULL) receives the gradient norm before clipping. */
int nn_adamw_step(nn_model *m, const nn_adamw *opt, float lr, double *norm_out);

/* ema = decay * ema + (1 - decay) * params; the first call copies params. */
int nn_ema_update(nn_model *m, float decay);

enum { NN_LR_CONSTANT = 0, NN_LR_COSINE = 1, NN_LR_LINEAR = 2 };
/* Learning rate at step (0-based): linear warmup over `warmup` steps from
 * base/warmup to base, then decay to base*min_ratio at `total` steps. */
float nn_lr_at(long step, float base, long warmup, long total, int kind, float min_ratio);

#endif
