/* nn_layers.h: layer kernels of the neural network engine (llm.c style).
 *
 * Each layer is a pair of free functions on flat row-major float buffers.
 * Forward writes its output (=). Backward ACCUMULATES (+=) into every
 * gradient it is given (inputs and parameters); a NULL gradient pointer is
 * skipped, so a caller that does not need d/dinput passes NULL.
 *
 * Layouts. Dense layers use (B, C). Spatial layers use (C, B, S): channel
 * major, then batch, then the S = H*W (or N) spatial positions, so that one
 * convolution over the whole batch is one GEMM [Cout, Cin*k] x [Cin*k, B*S].
 * A layer that only needs "rows of S values" (GroupNorm, bias add) takes
 * explicit B and S. nn_transpose_* converts between (B, C, S) and (C, B, S).
 * No function allocates; scratch buffers are passed in by the caller. */
#ifndef SB_NN_LAYERS_H
#define SB_NN_LAYERS_H

#include <stddef.h>

/* ---- layout ---- */
/* out (C, B, S) <- in (B, C, S) */
void nn_transpose_bcs_to_cbs(float *out, const float *in, int B, int C, int S);
/* out (B, C, S) <- in (C, B, S); accumulate=1 adds instead of writing */
void nn_transpose_cbs_to_bcs(float *out, const float *in, int B, int C, int S, int accumulate);

/* ---- linear: out (B, OC) = in (B, IC) . w (OC, IC)^T + bias (OC) ---- */
void nn_linear_forward(float *out, const float *in, const float *w, const float *bias, int B,
                       int IC, int OC);
void nn_linear_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                        const float *w, int B, int IC, int OC);

/* ---- masked linear (MADE): weight used is w * mask, mask (OC, IC) of 0/1.
 * wm is caller scratch of OC*IC floats (holds w*mask between fwd and bwd). ---- */
void nn_masked_linear_forward(float *out, float *wm, const float *in, const float *w,
                              const float *mask, const float *bias, int B, int IC, int OC);
void nn_masked_linear_backward(float *din, float *dw, float *dbias, const float *dout,
                               const float *in, const float *wm, const float *mask, int B,
                               int IC, int OC);

/* ---- convolution, circular padding, odd kernel (kh, kw), stride s ----
 * x (Cin, B, H, W) -> out (Cout, B, Ho, Wo), Ho = ceil(H/s), Wo = ceil(W/s);
 * w (Cout, Cin, kh, kw) (PyTorch layout), bias (Cout) or NULL. 1D is H = 1, kh = 1.
 * col is scratch of nn_conv_scratch_size floats (nn_conv_col_size for the
 * backward's im2col); backward recomputes it. A 3x3 stride-1 convolution with
 * H and W even runs as Winograd F(4x4, 3x3) (H, W multiples of 4) or
 * F(2x2, 3x3) (core/nn/nn_wino.c): the same sums up to float32 rounding of the
 * transforms. Other shapes use im2col + sgemm. */
void nn_conv_forward(float *out, float *col, const float *x, const float *w, const float *bias,
                     int Cin, int Cout, int B, int H, int W, int kh, int kw, int stride);
/* out += conv(x) + bias (residual connections without a copy). */
void nn_conv_forward_add(float *out, float *col, const float *x, const float *w,
                         const float *bias, int Cin, int Cout, int B, int H, int W, int kh, int kw,
                         int stride);
/* dcol: scratch of the same size as col. dx, dw, dbias may be NULL. */
void nn_conv_backward(float *dx, float *dw, float *dbias, float *col, float *dcol,
                      const float *dout, const float *x, const float *w, int Cin, int Cout,
                      int B, int H, int W, int kh, int kw, int stride);
int nn_conv_out_size(int n, int stride);
/* The same backward with a faster input gradient for stride 1 (a convolution of
 * dout with the flipped kernel instead of col2im); where the forward uses
 * Winograd, dx and dw do too. col must hold nn_conv_scratch_size and dcol
 * nn_conv_dcol_size floats. Other strides and 1x1 fall back to nn_conv_backward. */
void nn_conv_backward_t(float *dx, float *dw, float *dbias, float *col, float *dcol,
                        const float *dout, const float *x, const float *w, int Cin, int Cout,
                        int B, int H, int W, int kh, int kw, int stride);
size_t nn_conv_dcol_size(int Cin, int Cout, int B, int H, int W, int kh, int kw, int stride);
/* Floats of col (and dcol) scratch a convolution of B samples needs (the batch
 * is processed in tiles); 0 for a pointwise (1x1, stride 1) convolution, which
 * multiplies x directly. */
size_t nn_conv_col_size(int Cin, int B, int H, int W, int kh, int kw, int stride);
/* Floats of col nn_conv_forward / nn_conv_forward_add need: nn_conv_col_size,
 * or the Winograd scratch of a 3x3 stride-1 convolution (it depends on Cout). */
/* Process-wide choice for 3x3 stride-1 convolutions: 4 (default) Winograd
 * F(4x4) where H, W are multiples of 4, else F(2x2) where even; 2: F(2x2)
 * only; 0: im2col + sgemm always. Returns the previous value. For tests and
 * benchmarks; set it before any convolution runs (it is not synchronized).
 * Scratch sizes computed under one setting hold for the others. */
int nn_conv_set_winograd(int max_m);
/* The Winograd-transformed kernels of one convolution kept for inference
 * (zero-initialize; nn_conv_wcache_free). nn_conv_forward_c uses them while
 * the weights still equal the copy taken when they were made: they are
 * compared on every call, so an optimizer step, a checkpoint load or any
 * direct write to the weights makes the next call transform them again. If
 * the cache cannot be allocated the call transforms per call as without. */
typedef struct nn_conv_wcache {
  float *U, *wcopy;
  size_t nu, nw;
  int m;
} nn_conv_wcache;
void nn_conv_wcache_free(nn_conv_wcache *c);
/* nn_conv_forward (add = 0) or nn_conv_forward_add (add = 1) with the
 * transformed kernels taken from c when valid (c may be NULL) */
void nn_conv_forward_c(float *out, float *col, const float *x, const float *w, const float *bias,
                       nn_conv_wcache *c, int add, int Cin, int Cout, int B, int H, int W, int kh,
                       int kw, int stride);
/* 1 (default): the forward and dx of whole groups of 8 samples run as the
 * fused chunk pipeline (nn_wino_fused.c); 0: as 36 sgemms over 512-tile
 * chunks. Returns the previous value; for tests and benchmarks like the above. */
int nn_conv_set_winograd_fused(int on);
size_t nn_conv_scratch_size(int Cin, int Cout, int B, int H, int W, int kh, int kw, int stride);

/* ---- nearest upsampling by factor f: x (C*B, H, W) -> out (C*B, H*fh, W*fw) ---- */
void nn_upsample_forward(float *out, const float *x, int CB, int H, int W, int fh, int fw);
void nn_upsample_backward(float *dx, const float *dout, int CB, int H, int W, int fh, int fw);

/* ---- GroupNorm on (C, B, S): groups of C/G channels per sample b.
 * mean, rstd: (B, G) saved for backward. gamma, beta (C). eps as in PyTorch (1e-5). ---- */
#define NN_NORM_EPS 1e-5f
void nn_groupnorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int C, int B, int S, int G);
void nn_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *gamma, const float *mean,
                           const float *rstd, int C, int B, int S, int G);
/* Fused out = silu(groupnorm(x)) (the hot pair of residual blocks); backward
 * recomputes the normalized values from x, mean, rstd instead of storing them. */
void nn_gn_silu_forward(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, int C, int B, int S, int G);
void nn_gn_silu_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                         const float *x, const float *gamma, const float *beta,
                         const float *mean, const float *rstd, int C, int B, int S, int G);

/* ---- LayerNorm over the last dim: x (B, C), mean/rstd (B) ---- */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int B, int C);
void nn_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *gamma, const float *mean,
                           const float *rstd, int B, int C);

/* ---- elementwise activations on n values; backward uses the forward INPUT x ---- */
void nn_silu_forward(float *out, const float *x, size_t n);
void nn_silu_backward(float *dx, const float *dout, const float *x, size_t n);
void nn_tanh_forward(float *out, const float *x, size_t n);
void nn_tanh_backward(float *dx, const float *dout, const float *x, size_t n);
void nn_relu_forward(float *out, const float *x, size_t n);
void nn_relu_backward(float *dx, const float *dout, const float *x, size_t n);
void nn_softplus_forward(float *out, const float *x, size_t n);
void nn_softplus_backward(float *dx, const float *dout, const float *x, size_t n);

/* ---- residual add: out = a + b (out may alias a or b); backward da += dout, db += dout ---- */
void nn_add_forward(float *out, const float *a, const float *b, size_t n);
void nn_add_backward(float *da, float *db, const float *dout, size_t n);

/* ---- per-channel bias per sample: x (C, B, S) += bias[b*ldb + c] ----
 * (injects an embedding (B, ldb) into a residual stream). Backward: dbias[b*ldb+c] += sum_s dx. */
void nn_chanbias_forward(float *x, const float *bias, int ldb, int C, int B, int S);
void nn_chanbias_backward(float *dbias, const float *dout, int ldb, int C, int B, int S);

/* ---- concatenation along channels: a (R, Ca, S), b (R, Cb, S) -> out (R, Ca+Cb, S).
 * For the (C, B, S) layout pass R = 1 and S = B*S. ---- */
void nn_concat_forward(float *out, const float *a, int Ca, const float *b, int Cb, int R, int S);
void nn_concat_backward(float *da, float *db, const float *dout, int Ca, int Cb, int R, int S);

/* ---- sinusoidal features of scalars: s (B, ns) -> out (B, ns*dim), dim even;
 * for each scalar: [sin(v f_0..f_{h-1}), cos(v f_0..f_{h-1})], h = dim/2,
 * f_j = exp(j ln(1000) / max(h-1,1)) (1..1000 rad per unit: scalars are meant in [0,1]).
 * No backward: scalars (τ, t) are inputs, not trained. ---- */
void nn_sinusoidal_forward(float *out, const float *s, int B, int ns, int dim);

/* ---- affine coupling: z (B, D), mask (D) 1 = passes through unchanged.
 * y = m*x + (1-m)*(x*exp(s) + t), s = scale_clamp * tanh(sraw / scale_clamp);
 * logdet (B) += sum_d (1-m) s. inverse recovers x from y with the same sraw, t.
 * Backward takes dy and dlogdet (B, may be NULL) and accumulates dx, dsraw, dt. ---- */
void nn_coupling_forward(float *y, float *logdet, const float *x, const float *sraw,
                         const float *t, const float *mask, float clamp, int B, int D);
void nn_coupling_inverse(float *x, float *logdet, const float *y, const float *sraw,
                         const float *t, const float *mask, float clamp, int B, int D);
void nn_coupling_backward(float *dx, float *dsraw, float *dt, const float *dy,
                          const float *dlogdet, const float *x, const float *sraw,
                          const float *mask, float clamp, int B, int D);

/* ---- losses: mean over n values, returned in double; the gradient d/dpred
 * times dloss is WRITTEN (=) into dpred when dpred != NULL. ---- */
double nn_mse_loss(float *dpred, const float *pred, const float *target, size_t n, float dloss);
/* labels in [0,1] */
double nn_bce_logits_loss(float *dlogit, const float *logit, const float *label, size_t n,
                          float dloss);
/* Gaussian NLL with mean mu and log-variance lv: mean of 0.5 (lv + (y-mu)^2 e^-lv + ln 2pi) */
double nn_gauss_nll_loss(float *dmu, float *dlv, const float *mu, const float *lv,
                         const float *y, size_t n, float dloss);

#endif
