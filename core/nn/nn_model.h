/* nn_model.h: networks the estimators assemble (residual conv net, MLP),
 * their parameter memory and per-thread workspaces.
 *
 * Memory (llm.c style): params, grads, Adam m, Adam v (and EMA) are each ONE
 * contiguous buffer of n_params floats; a named-tensor table gives each
 * tensor's name, shape and offset (the same in every buffer), which is what
 * checkpoints store. A model's weights are read-only during nn_forward, so
 * many threads can run inference at once, each with its own nn_workspace.
 *
 * Layouts seen by callers: input x (B, cin, S), output (B, cout, S) row-major,
 * S = N (1D) or H*W (2D); scalars (B, n_scalars), e.g. diffusion time τ and
 * time index t, both scaled to about [0, 1].
 *
 * Typical use (errors ignored for brevity):
 *   nn_model m;  nn_resnet_init(&m, &cfg, &err);  nn_model_init_params(&m, seed);
 *   nn_workspace ws;  nn_workspace_init(&ws, &m, max_batch, 1, &err);
 *   nn_zero_grad(&m);
 *   nn_forward(&m, &ws, x, tau, B, out);            // loss -> dout
 *   nn_backward(&m, &ws, dout, m.grads, NULL);      // parameter gradients
 *   nn_adamw_step(&m, &opt, nn_lr_at(...), NULL);   // nn_optim.h
 *   nn_backward(&m, &ws, v, NULL, vjp);             // v^T d out/d x only (composed score)
 * Threads: nn_parallel.h splits a batch over per-thread workspaces; nn_ckpt.h
 * saves and loads. BLAS threading is the caller's: when several threads run
 * nn_forward at once, call openblas_set_num_threads(1) first. */
#ifndef SB_NN_MODEL_H
#define SB_NN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "util/sb_error.h"

#define NN_MAX_TENSORS 256
#define NN_NAME_MAX 48
#define NN_MAX_ACT 1024
#define NN_MAX_BLOCKS 32

#define NN_UNET_MAX_LEVELS 6
#define NN_UNET_MAX_BLOCKS 64

enum { NN_RESNET = 1, NN_MLP = 2, NN_UNET = 3 };
enum { NN_ACT_SILU = 0, NN_ACT_TANH = 1, NN_ACT_RELU = 2 };

/* Residual conv net: conv_in (cin -> width, k=3 circular), `blocks` residual
 * blocks [GN -> SiLU -> conv3 -> + emb bias -> GN -> SiLU -> conv3] + skip,
 * then GN -> SiLU -> conv3 (width -> cout). With n_scalars > 0 each scalar
 * gets emb_dim sinusoidal features; an MLP linear(n_scalars*emb_dim -> emb_dim)
 * -> SiLU -> linear(emb_dim -> blocks*width) gives one per-channel bias per block. */
typedef struct nn_resnet_config {
  int dims;       /* 1: (C, N) with h = 1, w = N; 2: (C, H, W) */
  int h, w;       /* spatial size */
  int cin, cout, width, blocks, groups;
  int n_scalars;  /* 0, 1 or 2 */
  int emb_dim;    /* even; ignored when n_scalars == 0 */
} nn_resnet_config;

/* Multi-scale U-Net, circular padding everywhere, layouts as the resnet's.
 * Level l (0 = full resolution) has widths[l] channels at spatial size
 * (h, w) / 2^l (2D) or w / 2^l (1D); h and w must be divisible by 2^(levels-1).
 *   in_conv (cin -> widths[0], conv3)
 *   encoder, level l: [l > 0: down = conv3 stride 2, widths[l-1] -> widths[l]]
 *                     `blocks` residual blocks widths[l] -> widths[l]
 *                     (the output of level l < levels-1 is its skip)
 *   mid: `mid` residual blocks at the coarsest level (attention-free; 0 = none)
 *   decoder, level l = levels-2 .. 0: up = nearest x2 then conv3
 *                     (widths[l+1] -> widths[l]); concat [up, skip] (2 widths[l]);
 *                     `blocks` residual blocks, the first 2 widths[l] -> widths[l]
 *   out: GN -> SiLU -> conv3 (widths[0] -> cout)
 * Residual block cin -> cout: GN -> SiLU -> conv3 -> + emb bias -> GN -> SiLU ->
 * conv3, plus the input (cin == cout) or a 1x1 conv of it (cin != cout).
 * The scalar embedding is the resnet's: linear -> SiLU -> linear(emb_dim ->
 * sum of every block's cout), one per-channel bias per block. */
typedef struct nn_unet_config {
  int dims, h, w, cin, cout;
  int levels;                     /* 1..NN_UNET_MAX_LEVELS */
  int widths[NN_UNET_MAX_LEVELS]; /* channels per level, multiples of groups */
  int blocks;                     /* residual blocks per level, encoder and decoder, >= 1 */
  int mid;                        /* mid residual blocks, >= 0 */
  int groups, n_scalars, emb_dim;
} nn_unet_config;

/* MLP: in -> [hidden -> act] x layers -> out (layers >= 1 hidden layers). */
typedef struct nn_mlp_config {
  int in, out, hidden, layers, act;
} nn_mlp_config;

typedef struct nn_tensor {
  char name[NN_NAME_MAX];
  int ndim;
  int64_t shape[4];
  size_t offset, numel; /* into params / grads / m / v / ema */
  int init;             /* NN_INIT_*: how nn_model_init_params fills it */
  int fan_in;
} nn_tensor;

enum { NN_INIT_UNIFORM = 0, NN_INIT_ONE = 1, NN_INIT_ZERO = 2 };

typedef struct nn_model {
  int kind;
  nn_resnet_config rc;
  nn_mlp_config mc;
  nn_unet_config uc;
  size_t n_params;
  float *params, *grads; /* allocated by nn_*_init */
  float *m, *v, *ema;    /* NULL until the optimizer / EMA first needs them */
  long step;             /* optimizer steps taken */
  int n_tensors;
  nn_tensor tensors[NN_MAX_TENSORS];
} nn_model;

/* Per-thread activation memory for one model and up to max_batch samples
 * (one malloc). train = 0 keeps only what a forward pass needs (no backward). */
typedef struct nn_workspace {
  int max_batch, train, B;
  size_t n_floats;
  float *mem;
  float *grads;       /* optional private gradient buffer (nn_workspace_alloc_grads) */
  float *out, *dout;  /* (max_batch, out) scratch for callers, e.g. nn_parallel's loss */
  float *act[NN_MAX_ACT]; /* activation pointers into mem (model specific) */
  struct nn_profile *prof; /* optional per-layer timing (nn_unet only), NULL = off */
  /* inference workspaces (train = 0): per tensor, the Winograd-transformed
   * kernels of the U-Net's 3x3 convolutions, checked against the weights on
   * every use (nn_conv_wcache, nn_layers.h); NULL if it could not be allocated */
  struct nn_conv_wcache *wc;
  int n_wc;
} nn_workspace;

/* Per-layer time of the U-Net's passes, accumulated when ws->prof points here
 * (seconds and GEMM FLOPs per layer class; see NN_PROF_*). */
enum { NN_PROF_CONV3, NN_PROF_DOWN, NN_PROF_UP, NN_PROF_SKIP1, NN_PROF_IO, NN_PROF_GN,
       NN_PROF_OTHER, NN_PROF_N };
typedef struct nn_profile {
  double fwd_s[NN_PROF_N], bwd_s[NN_PROF_N], fwd_flop[NN_PROF_N], bwd_flop[NN_PROF_N];
} nn_profile;
extern const char *const nn_profile_names[NN_PROF_N];

/* Allocates params and grads (zeroed) for the config; checks the config. */
int nn_resnet_init(nn_model *m, const nn_resnet_config *cfg, sb_error *err);
int nn_mlp_init(nn_model *m, const nn_mlp_config *cfg, sb_error *err);
/* Checks the config (spatial sizes divisible by 2^(levels-1), widths multiples
 * of groups, ...) with a message that names the field. */
int nn_unet_init(nn_model *m, const nn_unet_config *cfg, sb_error *err);
/* Frees every buffer of m (safe on a zeroed or failed model). */
void nn_model_free(nn_model *m);
/* Deterministic init from (seed): PyTorch-style uniform(-1/sqrt(fan_in), +) for
 * weights and biases, GroupNorm gamma = 1, beta = 0. */
void nn_model_init_params(nn_model *m, uint64_t seed);
const nn_tensor *nn_model_find(const nn_model *m, const char *name);
void nn_zero_grad(nn_model *m);

/* Input/output sizes per sample. */
int nn_in_size(const nn_model *m);
int nn_out_size(const nn_model *m);
int nn_n_scalars(const nn_model *m);

int nn_workspace_init(nn_workspace *ws, const nn_model *m, int max_batch, int train,
                      sb_error *err);
/* Gives the workspace its own zeroed gradient buffer (n_params floats). */
int nn_workspace_alloc_grads(nn_workspace *ws, const nn_model *m, sb_error *err);
void nn_workspace_free(nn_workspace *ws);

/* Forward pass of B <= ws->max_batch samples: x (B, in), scalars (B, n_scalars)
 * or NULL when n_scalars = 0, out (B, out). Keeps activations in ws for
 * nn_backward. Returns 0 or SB_EINVAL. */
int nn_forward(const nn_model *m, nn_workspace *ws, const float *x, const float *scalars, int B,
               float *out);
/* Backward of the last nn_forward on ws (needs train = 1): dout (B, out).
 * grads: where parameter gradients ACCUMULATE (m->grads, ws->grads, or NULL to
 * skip them); dx: (B, in) input gradient ACCUMULATES there, or NULL. */
int nn_backward(const nn_model *m, nn_workspace *ws, const float *dout, float *grads, float *dx);
/* Inference of any B: runs nn_forward in chunks of ws->max_batch. */
int nn_infer(const nn_model *m, nn_workspace *ws, const float *x, const float *scalars, int B,
             float *out);

#endif
