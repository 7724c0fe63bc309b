/* baselines.h: the classical baselines behind the estimator interface
 * (no training; they run the simulator inside the window).
 *
 *   etkf   windowed ensemble transform Kalman filter (Hunt et al. 2007,
 *          symmetric square root), multiplicative inflation of anomalies;
 *   letkf  the same with a local analysis per grid point and Gaspari-Cohn
 *          tapering of R^-1 by the distance on the periodic grid (a ring in
 *          1D, the torus in 2D; obs.h's obs_location / obs_distance); every
 *          channel of a point shares its location and transform;
 *   pf     bootstrap particle filter, systematic resampling, optional jitter.
 *
 * All three draw their ensemble from the prior at the window's first time
 * t-W+1 (stationary presets: s->init, i.e. climatology, or for kolmogorov
 * the climatology pool; time-varying ones: sim_sample_at(t-W+1)), assimilate each observation of the window and
 * forecast one interval between observations. The window states they return
 * (want_window) are FILTERED: the state at window time w only used
 * y_{0..w}, not the later observations (it is not a smoother).
 *
 * Parameters (est_options.params, JSON object; unknown keys are rejected):
 *   etkf/letkf: "inflation" (>= 1, default 1.02), "ensemble_size" (default
 *               n_samples; when it differs, the S returned samples are drawn
 *               from the Gaussian N(mean, ensemble covariance)),
 *               letkf only: "radius" (grid points where the taper reaches 0,
 *               default 10; 2D states: radius 8 and inflation 1.1, the best of
 *               the search in docs/kolmogorov.md for coarsen 4, sigma 0.1)
 *   pf:         "particles" (default n_samples), "jitter" (std of Gaussian noise
 *               added after each resampling, default 0), "resample_threshold"
 *               (resample when ESS < threshold * particles, default 1 = always) */
#ifndef SB_EST_BASELINE_H
#define SB_EST_BASELINE_H

#include "est/est.h"

/* Creates an etkf (localize = 0) or letkf (localize = 1) estimator for the
 * simulator s; takes ownership of s even on failure. */
int est_etkf_create(estimator **out, sim *s, int localize, sb_error *err);
/* Creates a bootstrap particle filter; takes ownership of s even on failure. */
int est_pf_create(estimator **out, sim *s, sb_error *err);

/* One ETKF analysis in place. X [K][n] members (rows); y [n_obs] one
 * observation (NaN entries are dropped; all NaN leaves X unchanged, no
 * inflation); std [n_obs] noise std; anomalies are multiplied by inflation
 * before the update. radius > 0 selects the local (LETKF) analysis with a
 * Gaspari-Cohn taper reaching 0 at `radius` grid points (torus distance);
 * radius <= 0 is the global ETKF. Allocates its own workspace. */
int etkf_analysis(double *X, int K, int n, const obs_op *op, const double *y, const double *std,
                  double inflation, double radius, sb_error *err);

/* Test hook: 0 (default) picks the ensemble-space transform (O(K^3)) when
 * the number of observations q >= K and the observation-space one
 * (O(K q^2 + q^3)) when q < K; 1 forces ensemble space.
 * Set it only while no analysis runs. */
extern int etkf_path_override;

/* Cancellable pieces of the baselines: members are drawn or advanced in
 * chunks of about EST_CHUNK_FLOPS floating-point operations (sim's
 * flops_init, flops_step), with a cancel check before each chunk, so a
 * cancel takes effect within one chunk (tens of milliseconds; one member
 * when a single member costs more). Every member uses its own RNG stream,
 * so chunking does not change any number. */
#define EST_CHUNK_FLOPS 5e7
/* Draws the K members of the prior at the window's first time t0 into X
 * [K][dim]: time-varying presets sim_sample_at(t0) (member i from stream i of
 * seed), stationary ones s->init, except the stationary Kolmogorov preset
 * (est_prior_uses_pool), whose members are K distinct states of a climatology
 * pool built once per process (prior_pool.c; SBIDA_POOL_DIR caches it; its
 * build and the wait for another request's build are cancellable too). */
int est_prior_ensemble(const sim *s, double *X, int K, long t0, uint64_t seed, const sb_cancel *cancel,
                       sb_error *err);
int est_prior_uses_pool(const sim *s);
/* Advances the K members of X by one observation interval. */
int est_advance_members(const sim *s, double *X, int K, const sb_cancel *cancel, sb_error *err);
/* Test hook: drops the pool; the next one has traj trajectories of per states
 * (<= 0: the defaults 64 and 16). Call only while no estimator runs. */
void est_prior_pool_reset(int traj, int per);

/* Gaspari-Cohn (1999) fifth-order taper, r = distance / half-width;
 * 1 at 0, 0 for r >= 2. */
double gaspari_cohn(double r);

#endif
