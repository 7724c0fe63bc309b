/* npe.h: the npe kind (npe.c): a conditional normalizing flow (flow.h)
 * behind the estimator interface. Samples are drawn from u ~ N(0, I), one
 * random stream per sample index, so they are bit-identical for any thread
 * count; log_density is filled (physical units) and log_prob gives log q at
 * given states (HPD coverage). It takes no request parameters. */
#ifndef SB_KIND_NPE_H
#define SB_KIND_NPE_H

#include "model/kind.h"

extern const model_kind kind_npe;

/* The npe kind's settings (m->settings, the file's sbida.flow, the
 * config's arch.couplings and arch.clamp): the number of affine couplings
 * (1..64, default 8) and the soft clamp of their log-scales (0..20,
 * default 3). */
typedef struct npe_settings {
  int couplings;
  double clamp;
} npe_settings;
/* m->settings of an npe model */
static inline npe_settings *npe_settings_of(const model *m) { return m->settings; }

#endif
