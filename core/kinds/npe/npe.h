/* npe.h: the npe kind (npe.c): a conditional normalizing flow (flow.h)
 * behind the estimator interface. Samples are drawn from u ~ N(0, I), one
 * random stream per sample index, so they are bit-identical for any thread
 * count; log_density is filled (physical units) and log_prob gives log q at
 * given states (HPD coverage). It takes no request parameters. */
#ifndef SB_KIND_NPE_H
#define SB_KIND_NPE_H

#include "model/kind.h"

extern const model_kind kind_npe;

#endif
