/* eval_json.c: the evaluation result as JSON (shape: schema/eval.schema.json). */
#include <math.h>

#include "eval/eval.h"
#include "util/jsonb.h"


static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *eval_to_json(const eval_summary *s, const estimator *e, const obs_op *op, const obs_noise *nz, long t_lo,
                     long t_hi, uint64_t seed, const json_t *params, const char *version) {
  int bad = 0; /* every field checked: a result is written whole or not at all */
  json_t *j = json_object();
  jb_set(j, "estimator", json_string(e->name), &bad);
  jb_set(j, "kind", json_string(e->kind), &bad);
  jb_set(j, "preset", json_string(e->sim->preset), &bad);
  jb_set(j, "N", json_integer(e->sim->dim), &bad);
  jb_set(j, "operator", obs_to_json(op), &bad);
  int same = 1;
  for (int i = 1; i < nz->n; i++) same = same && nz->std[i] == nz->std[0];
  jb_set(j, "noise_std", same && nz->n > 0 ? json_real(nz->std[0]) : obs_noise_to_json(nz), &bad);
  jb_set(j, "window", json_integer(s->window), &bad);
  if (t_lo == t_hi) {
    jb_set(j, "time_index", json_integer(t_lo), &bad);
  } else {
    json_t *r = json_array();
    jb_push(r, json_integer(t_lo), &bad);
    jb_push(r, json_integer(t_hi), &bad);
    jb_set(j, "time_range", r, &bad);
  }
  jb_set(j, "cases", json_integer(s->n_cases), &bad);
  jb_set(j, "samples", json_integer(s->n_samples), &bad);
  jb_set(j, "seed", json_integer((json_int_t)seed), &bad);
  jb_set(j, "params", params ? json_deep_copy(params) : json_object(), &bad);
  jb_set(j, "rmse", num(s->rmse), &bad);
  jb_set(j, "spread", num(s->spread), &bad);
  jb_set(j, "spread_skill", num(s->spread_skill), &bad);
  jb_set(j, "crps", num(s->crps), &bad);
  json_t *cov = json_object(), *lv = json_array(), *ob = json_array();
  for (int i = 0; i < EVAL_N_LEVELS; i++) {
    jb_push(lv, json_real(round(eval_level(i) * 100) / 100), &bad);
    jb_push(ob, num(s->coverage[i]), &bad);
  }
  jb_set(cov, "method", json_string("rank"), &bad);
  jb_set(cov, "levels", lv, &bad);
  jb_set(cov, "observed", ob, &bad);
  jb_set(cov, "max_abs_error", num(s->coverage_max_abs_error), &bad);
  jb_set(j, "coverage", cov, &bad);
  json_t *h = json_array();
  for (int r = 0; r <= s->n_samples; r++) jb_push(h, json_integer(s->rank_hist[r]), &bad);
  jb_set(j, "rank_histogram", h, &bad);
  jb_set(j, "rank_uniformity_p", num(s->rank_p), &bad);
  jb_set(j, "rank_uniformity_bins", json_integer(s->rank_bins), &bad);
  if (s->has_hpd) {
    json_t *hc = json_object(), *hl = json_array(), *ho = json_array();
    for (int i = 0; i < EVAL_N_LEVELS; i++) {
      jb_push(hl, json_real(round(eval_level(i) * 100) / 100), &bad);
      jb_push(ho, num(s->hpd_coverage[i]), &bad);
    }
    jb_set(hc, "levels", hl, &bad);
    jb_set(hc, "observed", ho, &bad);
    jb_set(j, "hpd_coverage", hc, &bad);
  }
  jb_set(j, "diagnostics", s->diagnostics ? json_deep_copy(s->diagnostics) : json_object(), &bad);
  jb_set(j, "seconds", num(s->seconds), &bad);
  jb_set(j, "samples_per_second", num(s->samples_per_second), &bad);
  jb_set(j, "threads", json_integer(s->threads), &bad);
  /* one request (all samples of one case) on one thread, as the evaluation ran it */
  jb_set(j, "seconds_per_request", num(s->n_cases > 0 ? s->seconds * s->threads / s->n_cases : 0.0), &bad);
  jb_set(j, "version", json_string(version), &bad);
  return jb_done(j, bad);
}
