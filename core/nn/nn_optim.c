/* nn_optim.c: AdamW, clipping, EMA, LR schedules (see nn_optim.h). */
#include "nn/nn_optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

nn_adamw nn_adamw_default(void) {
  nn_adamw o = {1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, 0.0f};
  return o;
}

double nn_grad_norm(const float *g, size_t n) {
  double acc = 0.0;
  for (size_t i = 0; i < n; i++) acc += (double)g[i] * g[i];
  return sqrt(acc);
}

static float *zalloc(size_t n) {
  float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
  if (p) memset(p, 0, n * sizeof(float));
  return p;
}

int nn_adamw_step(nn_model *m, const nn_adamw *o, float lr, double *norm_out) {
  size_t n = m->n_params;
  if (!m->m) m->m = zalloc(n);
  if (!m->v) m->v = zalloc(n);
  if (!m->m || !m->v) return SB_ENOMEM;
  double norm = nn_grad_norm(m->grads, n);
  if (norm_out) *norm_out = norm;
  if (!isfinite(norm)) return 1;
  float scale = 1.0f;
  if (o->clip > 0.0f && norm > o->clip) scale = (float)(o->clip / (norm + 1e-6));
  m->step++;
  float b1 = o->beta1, b2 = o->beta2;
  float bc1 = 1.0f - powf(b1, (float)m->step), bc2 = 1.0f - powf(b2, (float)m->step);
  float step_size = lr / bc1, bc2s = sqrtf(bc2), decay = 1.0f - lr * o->weight_decay;
  float *p = m->params, *g = m->grads, *mm = m->m, *vv = m->v;
  for (size_t i = 0; i < n; i++) {
    float gi = g[i] * scale;
    mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
    vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
    p[i] = p[i] * decay - step_size * mm[i] / (sqrtf(vv[i]) / bc2s + o->eps);
  }
  return 0;
}

int nn_ema_update(nn_model *m, float decay) {
  if (!m->ema) {
    m->ema = zalloc(m->n_params);
    if (!m->ema) return SB_ENOMEM;
    memcpy(m->ema, m->params, m->n_params * sizeof(float));
    return 0;
  }
  for (size_t i = 0; i < m->n_params; i++)
    m->ema[i] = decay * m->ema[i] + (1.0f - decay) * m->params[i];
  return 0;
}

float nn_lr_at(long step, float base, long warmup, long total, int kind, float min_ratio) {
  if (warmup > 0 && step < warmup) return base * (float)(step + 1) / (float)warmup;
  if (kind == NN_LR_CONSTANT || total <= warmup) return base;
  double f = (double)(step - warmup) / (double)(total - warmup);
  if (f > 1.0) f = 1.0;
  double r = kind == NN_LR_COSINE ? 0.5 * (1.0 + cos(M_PI * f)) : 1.0 - f;
  return (float)(base * (min_ratio + (1.0 - min_ratio) * r));
}
