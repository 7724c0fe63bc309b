/* flow.h: the conditional normalizing flow of npe models.
 *
 * States are standardized (model mean/std). The flow maps a state
 * x in R^N to u = T(x | y-window, t) through K affine couplings (the
 * normalizing direction; K and the clamp are the model's npe_settings,
 * npe.h), with u ~ N(0, I) under the model:
 *   h_0 = x,  h_{k+1} = coupling_k(h_k),  u = h_K,
 *   log q(x) = log N(u; 0, I) + sum_k sum_{n not kept by mask k} s_kn.
 * Coupling k keeps the nodes of mask k (flow_mask) and scales/shifts the
 * others; its log-scales s_k = clamp * tanh(raw / clamp) and shifts come from
 * ONE conditioner network shared by every coupling (a residual conv net, so
 * circular neighbours inform each other), whose input channels are
 * [mask_k * h_k, mask_k, 2W lifted observations] and whose scalars are the
 * coupling index k / (K - 1) and, for time-varying presets, t / t_max.
 *
 * A flow_buf holds one thread's activations for up to max_batch samples;
 * weights are read-only, so threads with their own buffers can share one
 * model. Training buffers keep every coupling's activations for
 * flow_backward. */
#ifndef SB_FLOW_H
#define SB_FLOW_H

#include <stddef.h>

#include "model/model.h"
#include "nn/nn_model.h"

typedef struct flow_buf {
  int K, N, W, cin, ns, max_batch, train, B;
  nn_workspace *ws;          /* K workspaces (train) or 1 */
  float *mask;               /* [K][N] */
  float *h;                  /* [K+1][B][N]: h_0 = x ... h_K = u */
  float *sraw, *shift;       /* [K][B][N] conditioner outputs */
  float *in, *out, *scal;    /* network input (B, cin, N), output (B, 2, N), scalars (B, ns) */
  float *ld;                 /* [max_batch] log-determinants */
  float *dh, *dh2, *ds, *dt, *din, *dlogdet; /* training scratch */
  float *grads;              /* training: private parameter gradients (n_params) */
} flow_buf;

/* Mask of coupling k over N nodes (1 = kept): even nodes, odd nodes, even
 * pairs, odd pairs, repeating, so every node is transformed twice in every 4. */
void flow_mask(int k, int N, float *mask);

int flow_buf_init(flow_buf *fb, const model *sm, int max_batch, int train, sb_error *err);
void flow_buf_free(flow_buf *fb);

/* Normalizing pass of B <= max_batch states x [B][N]: u lands in
 * fb->h + K*B*N, logq [B] (may be NULL) receives log q(x) in standardized
 * units. cond: lifted observations, [2W][N] per sample with cond_stride =
 * 2W*N, or one set for all samples with cond_stride = 0. tsc: scaled time
 * per sample [B] (time-varying models) or NULL. */
int flow_forward(const model *sm, flow_buf *fb, const float *x, const float *cond, size_t cond_stride,
                 const float *tsc, int B, double *logq);
/* Backward of the last flow_forward of a train buffer for the loss
 * L = -scale * sum_b log q(x_b): parameter gradients ACCUMULATE in grads. */
int flow_backward(const model *sm, flow_buf *fb, float scale, float *grads);
/* Sampling pass: u [B][N] -> x [B][N] with logq [B] (may be NULL) = log q(x). */
int flow_inverse(const model *sm, flow_buf *fb, const float *u, const float *cond, size_t cond_stride,
                 const float *tsc, int B, float *x, double *logq);

/* Negative log-likelihood per dimension, -log q / N, of B samples summed
 * and divided by n_total (the whole batch's size: B < n_total when this
 * process computes a part of it; n_total = B gives the mean), with its
 * parameter gradient accumulated in net.grads, on T threads with buffers
 * fb[0..T-1] (train, max_batch >= ceil(B/T)). Deterministic for a given T
 * (thread gradients are summed in thread order). */
int flow_grad_mt(model *sm, flow_buf *fb, int T, const float *x, const float *cond, const float *tsc, int B,
                 int n_total, double *loss, sb_error *err);

#endif
