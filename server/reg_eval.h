/* reg_eval.h: the evaluation results shipped next to a model file, as the
 * estimator endpoint shows them. models/evaluate.sh writes, per setup,
 * MODELS/eval/<stem>/<setup>/<estimator>.json (sbida eval's output, the model
 * and the baselines on the same cases); this reads them back into
 *   {"source": "eval/<stem>", "setups": [{"setup", "preset", "N", "operator",
 *    "noise_std", "window", "time_index", "cases", "samples", "seed",
 *    "results": {<estimator>: {"kind", "rmse", "spread", "crps",
 *                              "coverage_max_abs_error", "seconds_per_request",
 *                              "threads", "params"}}}]}
 * sorted by setup name. */
#ifndef SB_REG_EVAL_H
#define SB_REG_EVAL_H

#include <jansson.h>

/* NULL when there is no readable evaluation for stem (never an error: a
 * model without an evaluation is still served). */
json_t *reg_eval_load(const char *models_dir, const char *stem);

#endif
