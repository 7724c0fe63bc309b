/* local_score.h: the local-score kind's assembly (SDA's Markov blanket),
 * exposed for tests. A model of run length L = 2k + 1 scores a window of
 * W >= L states through its R = W - L + 1 runs: run j holds states
 * j .. j + L - 1. State w takes its output from run
 *   r(w) = clamp(w - k, 0, R - 1)   at position w - r(w),
 * i.e. the first k states from the first run, every middle state from the run
 * centred on it, the last k states from the last run. An even L (k = L / 2)
 * assembles the same way, each middle state at position k of its run; at
 * W = L there is one run and the window's score is the network's. */
#ifndef SB_LOCAL_SCORE_H
#define SB_LOCAL_SCORE_H

#include "kinds/score/score_net.h"

/* The run a state of a window takes its output from. */
int local_score_run_of(int w, int W, int L);

/* runs [R][L][N] = the states of every run of x [W][N] */
void local_score_gather(int W, int L, int N, const float *x, float *runs);
/* out [W][N] = the assembled outputs of runs [R][L][N] */
void local_score_assemble(int W, int L, int N, const float *runs, float *out);
/* The transpose of local_score_assemble: runs [R][L][N] = cot [W][N] at the
 * (run, position) each state is taken from, 0 elsewhere. */
void local_score_assemble_adjoint(int W, int L, int N, const float *cot, float *runs);
/* The transpose of local_score_gather: g [W][N] = the sum over the runs
 * holding each state (overwrites g). */
void local_score_gather_adjoint(int W, int L, int N, const float *runs, float *g);

/* The range of state sizes and windows a loaded model accepts. */
#define LOCAL_SCORE_MIN_N 8
#define LOCAL_SCORE_MAX_N 1024
#define LOCAL_SCORE_MAX_WINDOW 256
#define LOCAL_SCORE_MAX_VALUES 65536 /* W x N */
#define LOCAL_SCORE_MAX_RUN 64       /* the model's run length L */

/* The rules a local-score model file must meet (run length 3..
 * LOCAL_SCORE_MAX_RUN, one normalization for every node), checked on load
 * and by sbida model --as-local-score before it writes. */
int local_score_check_model(const model *m, sb_error *err);

/* A denoiser over windows [W][N] from a per-run network: run_v fills
 * out [n][L][N] for n runs in [n][L][N] at diffusion time tau, with the
 * time index of each run's last state; run_vjp also fills the input VJP
 * dx [n][L][N] for cotangents cot [n][L][N]. The model's network is one;
 * tests pass a synthetic one. */
typedef struct local_score_net {
  int L, N;
  void *ctx;
  int (*run_v)(void *ctx, int worker, const float *in, const long *t, int n, double tau, float *out, sb_error *err);
  int (*run_vjp)(void *ctx, int worker, const float *in, const long *t, int n, double tau, float *out,
                 const float *cot, float *dx, sb_error *err);
  /* optional (NULL: run_vjp): the input VJP dx [n][L][N] of the runs of the
   * worker's last run_v call, whose activations it kept, for cotangents
   * cot [n][L][N]: a guided evaluation whose runs fit one network batch
   * then costs one forward and one backward instead of two forwards */
  int (*run_back)(void *ctx, int worker, int n, const float *cot, float *dx, sb_error *err);
} local_score_net;

/* The denoiser of windows [W][N] (W >= net->L) ending at time_index, for
 * up to B samples per call on `threads` threads: d->v and d->v_vjp assemble
 * the network's outputs on every run (and the VJP as the transpose). */
typedef struct local_score_denoiser local_score_denoiser;
int local_score_denoiser_init(local_score_denoiser **out, const local_score_net *net, int W, long time_index,
                              int B, int threads, diff_denoiser *d, sb_error *err);
/* workers of the denoiser: the net's `worker` argument is below this */
int local_score_workers(const local_score_denoiser *c);
void local_score_denoiser_free(local_score_denoiser *c);

/* The kind's serve_ranges op and its estimator. */
void local_score_serve_ranges(const model *m, estimator *e);
int local_score_estimator_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r,
                                 sb_error *err);

#endif
