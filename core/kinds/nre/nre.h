/* nre.h: the nre kind, neural ratio estimation behind the estimator interface.
 *
 * An nre model (model of kind nre) is a classifier whose logit
 * d(x_t, y, t) estimates log r = log p(x_t | y) - log p(x_t). A request draws
 * M prior states x_m ~ p(x_t) from the simulator (M = params.candidates, the
 * model's default otherwise), weights them w_m ∝ exp(d(x_m, y, t)) and
 * resamples S of them (systematic resampling). The effective sample size
 * 1 / Σ w_m² goes into the diagnostics: when it is small the answer is only
 * a handful of distinct prior draws (expected when the observations are far
 * more informative than the prior, e.g. every node observed). */
#ifndef SB_KIND_NRE_H
#define SB_KIND_NRE_H

#include "model/kind.h"

extern const model_kind kind_nre;

/* The nre kind's settings (m->settings, the file's sbida.nre, the config's
 * nre section): the prior draws a request resamples unless its
 * params.candidates says otherwise (2..65536, NRE_MAX_CANDIDATES in nre.c;
 * default 4096). */
typedef struct nre_settings {
  int candidates;
} nre_settings;
/* m->settings of an nre model */
static inline nre_settings *nre_settings_of(const model *m) { return m->settings; }

/* Normalized weights from M logits (in place: logw -> w), returns the ESS. */
double nre_normalize(double *logw, int M);
/* Systematic resampling of S indices from M normalized weights with one
 * uniform u in [0, 1): idx[s] is the candidate of the s-th sample. */
void nre_resample(const double *w, int M, int S, double u, int *idx);

#endif
