/* score_net.h: what the diffusion kinds (posterior-score, composed-score)
 * share on top of the sampler core (diff.h): a denoiser backed by the
 * model's network v_hat(x_tau, tau | conditioning, t), run in chunks on the
 * thread pool; their sampler settings (the file's sbida.sampler, the
 * config's "sampler" and the request parameters, all score_net_params); and
 * their training batch (noised states, v targets) and MSE loss. The kinds
 * differ only in channels: the network's x channels are its output
 * channels (the window's last states); extra input channels are the lifted
 * observations. */
#ifndef SB_SCORE_NET_H
#define SB_SCORE_NET_H

#include "diff/diff.h"
#include "model/kind.h"

/* sampler (pc, dpm2m, dpm2m-sde, heun), steps (1..4096), corrections
 * (0..16), tau_l (0..10), schedule (lambda, edm, tau), rho (> 0), gamma
 * (0..1e6), guidance (sda, mmps, free; guided kinds), guidance_iters (1..64),
 * background_jitter (0..100) and background_inflation (0.1..10)
 * (score_net_background); the names are checked by score_net_check_options (requests) and
 * score_net_from_config (configs, sbida model --set-sampler) */
extern const params_spec score_net_params[];
int score_net_check_options(const estimator *e, const est_options *o, sb_error *err);

/* The diffusion kinds' settings (m->settings): the default sampler
 * settings and guidance gamma, the file's sbida.sampler. */
typedef struct score_settings {
  diff_sampler_config sampler;
  double gamma;
} score_settings;
/* m->settings of a model of a diffusion kind */
static inline score_settings *score_settings_of(const model *m) { return m->settings; }
/* The settings ops: the defaults (diff_sampler_defaults, gamma 1e-2), free. */
int score_net_settings_new(void **settings, sb_error *err);
void score_net_settings_free(void *settings);
/* The sampler settings and guidance gamma of one call: the model's, with
 * the request's params (checked against score_net_params) over them. */
void score_net_settings(const model *m, const json_t *params, diff_sampler_config *cfg, double *gamma);
int score_net_from_config(model *m, const json_t *section, const json_t *arch, sb_error *err);
json_t *score_net_meta_to_json(const model *m);
int score_net_meta_from_json(model *m, const json_t *section, sb_error *err);

/* The guidance's background (diff_bg.h) from p->background, with the
 * request's background_inflation (default 1: anomalies, or std, times it)
 * and background_jitter (default SCORE_NET_BG_JITTER): an ensemble's
 * covariance becomes U^T U + delta I with delta = jitter x the mean
 * ensemble variance over components (floor 1e-12), so C is invertible
 * when S_b <= N and the few members do not pin x_1 to their subspace.
 * *buf (free it) holds the arrays; out->dim = 0 when p has no background. */
#define SCORE_NET_BG_JITTER 0.05
/* The background term's gamma when the request gives no background_gamma:
 * the guidance's gamma, but at least this. The guided x_hat of the first
 * state moves by up to 1/gamma times its residual to the background, so a
 * background much tighter than the prior overshoots at SDA's 1e-2: in
 * docs/cycling.md's cycle pc 64 at gamma 0.01 diverged (RMSE 3.5 in the first
 * cycles with a background), with the background's gamma 0.1 it did not. */
#define SCORE_NET_BG_GAMMA_MIN 0.1
/* Adds "gamma_used" to a result's sampler diagnostics when diff_sample
 * raised the request's gamma to diff_gamma_floor (precise observations). */
void score_net_gamma_used(json_t *sampler, const diff_guidance *g, const diff_sampler_config *cfg, double gamma);
/* out->gamma when the request gave none (0): max(gamma, SCORE_NET_BG_GAMMA_MIN). */
void score_net_background_gamma(diff_background *out, double gamma);
int score_net_background(const est_problem *p, const json_t *params, diff_background *out, double **buf,
                         sb_error *err);
/* The guidance's dynamics term (diff_dyn.h) from the request's params:
 * dynamics_q > 0 turns it on (model-error variance per component, physical
 * units), dynamics_gamma its Tweedie factor (> 0, default
 * max(gamma, SCORE_NET_BG_GAMMA_MIN)). Returns 1 when on, 0 without
 * dynamics_q. A system without an adjoint (sim.h step_vjp), a kind that
 * is not guided or mmps guidance is refused by score_net_check_options. */
int score_net_dynamics(const est_problem *p, const json_t *params, double gamma, diff_dynamics *out);
/* "dynamics_residual": the RMS over samples, steps and components of
 * x_{k+1} - M(x_k) of window samples [S][W][dim] (physical), set in
 * diagnostics when the system has an adjoint (a cheap step; sim.h) and W > 1:
 * how far the sampled trajectories are from the system's dynamics. */
int score_net_residual_diag(json_t *diagnostics, const sim *s, const double *window, int S, int W, sb_error *err);
/* A warm start from the background (request param warm_start in (0, 1)):
 * the sampler starts at tau = warm_start from each sample's forecast of the
 * background instead of from noise (diff_sampler_config.start). Sample s
 * starts from member s mod S_b (a mean+std background: mean + std z, RNG
 * stream (seed, SCORE_NET_WARM_STREAM + s)) at block `block` of x [S][W][dim],
 * forecast by p->sim through the later blocks; earlier blocks (unobserved
 * states before a short request's rows) start at the prior mean. x is
 * standardized with gmean, gscale [W * dim]. *on = 1 and cfg->start set when
 * it applies; *on = 0 (from noise, as before) without warm_start or without
 * a background (the first cycles of a stream). Only pc samples from a warm
 * start; score_net_check_options refuses the others. */
#define SCORE_NET_WARM_STREAM (1ull << 42)
int score_net_warm_start(const est_problem *p, const est_options *o, int W, int block, const double *gmean,
                         const double *gscale, float *x, diff_sampler_config *cfg, int *on, sb_error *err);
/* The dynamics part of a result's diagnostics (q, the gamma that ran), with
 * the retries score_net_diff_sample made (NULL: none), whose reference it takes. */
json_t *score_net_dynamics_json(const diff_dynamics *d, json_t *retries);
/* diff_sample for a request (o's seed, cancel and progress) with the dynamics
 * term's fallback. The term is nonlinear: a sample whose Tweedie estimate
 * leaves the attractor meets a force that grows with the cube of the state
 * (Lorenz96's quadratic step and its Jacobian), and the corrector's explicit
 * step can then run away (session 21: 2 of 179 N = 256 cases with tau_l 1.5,
 * from one sample in the middle of the schedule). When the sampler fails with
 * SB_ENUMERIC and g has the dynamics term dyn, the request runs again from
 * the same seed (and the same warm start) with dyn->gamma multiplied by
 * SCORE_NET_DYN_RETRY_FACTOR, up to params dynamics_retries times (default
 * SCORE_NET_DYN_RETRIES; 0 turns it off). A request that never diverges runs
 * once, its samples unchanged. On success *retries is NULL or a JSON array
 * of the failed tries ({"gamma", "error"}) and dyn->gamma the one that ran;
 * on failure the error says how many tries were made. */
#define SCORE_NET_DYN_RETRIES 2
#define SCORE_NET_DYN_MAX_RETRIES 4
#define SCORE_NET_DYN_RETRY_FACTOR 3.0
int score_net_diff_sample(const diff_denoiser *d, const diff_guidance *g, diff_dynamics *dyn,
                          const diff_sampler_config *cfg, const est_options *o, float *x, json_t **retries,
                          sb_error *err);
/* The background part of a result's diagnostics ("background": {...}), or
 * NULL without one. */
json_t *score_net_background_json(const diff_background *b, const json_t *params);

/* Draws o->n_samples samples for problem p: cond [2W][N] lifted
 * observations (posterior) or NULL; guided = 1 conditions the prior on p's
 * operator and noise (composed). Request params: score_net_params. */
int score_net_sample(const model *m, const est_problem *p, const est_options *o, const float *cond, int guided,
                    est_result *r, sb_error *err);

/* The estimator of a diffusion model: conditioned on the lifted observations
 * when its network has input channels beyond its x channels
 * (posterior-score), else guided by the request's operator (composed-score). */
int score_net_estimator_sample(estimator *e, const est_problem *p, const est_options *o, est_result *r,
                               sb_error *err);

/* The ops a diffusion kind takes from here (its settings are a
 * score_settings); the kind adds its name, channels and
 * has_operator/has_window/accepts_background. */
#define SCORE_NET_KIND_OPS                                                                                     \
  .meta_key = "sbida.sampler", .config_key = "sampler", .config_params = score_net_params,                     \
  .request_params = score_net_params, .check_options = score_net_check_options,                                  \
  .settings_new = score_net_settings_new, .settings_free = score_net_settings_free,                             \
  .from_config = score_net_from_config,                                                                        \
  .meta_to_json = score_net_meta_to_json, .meta_from_json = score_net_meta_from_json,                          \
  .train_init = score_net_train_init, .train_free = score_net_train_free, .make_batch = score_net_make_batch,  \
  .grad = score_net_grad, .val_loss = score_net_val_loss, .sample = score_net_estimator_sample

int score_net_train_init(void **state, model *m, const kind_train_setup *s, sb_error *err);
void score_net_train_free(void *state);
int score_net_make_batch(void *state, rng *r, const float *win, const long *t, int B, int val, sb_error *err);
int score_net_grad(void *state, double *loss, sb_error *err);
double score_net_val_loss(void *state);

#endif
