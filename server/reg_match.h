/* reg_match.h: which served estimators can answer a given request, ranked by
 * the evidence shipped with the models (GET /v1/estimators?preset=&operator=
 * &noise_std=&window=), and the baselines' share of that evidence. */
#ifndef SB_REG_MATCH_H
#define SB_REG_MATCH_H

#include <jansson.h>

#include "registry.h"

typedef struct reg_query {
  const char *preset;   /* NULL: any */
  const json_t *op;     /* operator JSON, NULL: any */
  double noise_std;     /* <= 0: any */
  int window;           /* <= 0: any */
} reg_query;

/* {"ranked_by", "items": [{name, kind, preset, rank?, evidence|null, note?}],
 *  "cannot_answer": [{name, reason}]}: estimators of the preset that can take
 * the request, those with a shipped result for the same operator, noise and
 * window first by CRPS (evidence: rmse, spread, crps, coverage error, cost of
 * one request and the settings it ran with). NULL only when memory runs out. */
json_t *reg_match(const reg_snap *r, const reg_query *q, sb_error *err);

/* Gives each estimator without an evaluation of its own (the baselines) the
 * setups of other estimators' evaluations that include its results (only
 * entries not yet published: readers may be reading the others). */
void reg_share_evaluations(reg_snap *r);

#endif
