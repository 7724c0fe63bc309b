/* eval_json.c: the evaluation result as JSON (shape: schema/eval.schema.json). */
#include <math.h>

#include "eval/eval.h"


static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *eval_to_json(const eval_summary *s, const estimator *e, const obs_op *op, const obs_noise *nz, long t_lo,
                     long t_hi, uint64_t seed, const json_t *params, const char *version) {
  json_t *j = json_object();
  json_object_set_new(j, "estimator", json_string(e->name));
  json_object_set_new(j, "kind", json_string(e->kind));
  json_object_set_new(j, "preset", json_string(e->sim->preset));
  json_object_set_new(j, "N", json_integer(e->sim->dim));
  json_object_set_new(j, "operator", obs_to_json(op));
  int same = 1;
  for (int i = 1; i < nz->n; i++) same = same && nz->std[i] == nz->std[0];
  json_object_set_new(j, "noise_std", same && nz->n > 0 ? json_real(nz->std[0]) : obs_noise_to_json(nz));
  json_object_set_new(j, "window", json_integer(s->window));
  if (t_lo == t_hi) {
    json_object_set_new(j, "time_index", json_integer(t_lo));
  } else {
    json_t *r = json_array();
    json_array_append_new(r, json_integer(t_lo));
    json_array_append_new(r, json_integer(t_hi));
    json_object_set_new(j, "time_range", r);
  }
  json_object_set_new(j, "cases", json_integer(s->n_cases));
  json_object_set_new(j, "samples", json_integer(s->n_samples));
  json_object_set_new(j, "seed", json_integer((json_int_t)seed));
  json_object_set_new(j, "params", params ? json_deep_copy(params) : json_object());
  json_object_set_new(j, "rmse", num(s->rmse));
  json_object_set_new(j, "spread", num(s->spread));
  json_object_set_new(j, "spread_skill", num(s->spread_skill));
  json_object_set_new(j, "crps", num(s->crps));
  json_t *cov = json_object(), *lv = json_array(), *ob = json_array();
  for (int i = 0; i < EVAL_N_LEVELS; i++) {
    json_array_append_new(lv, json_real(round(eval_level(i) * 100) / 100));
    json_array_append_new(ob, num(s->coverage[i]));
  }
  json_object_set_new(cov, "method", json_string("rank"));
  json_object_set_new(cov, "levels", lv);
  json_object_set_new(cov, "observed", ob);
  json_object_set_new(cov, "max_abs_error", num(s->coverage_max_abs_error));
  json_object_set_new(j, "coverage", cov);
  json_t *h = json_array();
  for (int r = 0; r <= s->n_samples; r++) json_array_append_new(h, json_integer(s->rank_hist[r]));
  json_object_set_new(j, "rank_histogram", h);
  json_object_set_new(j, "rank_uniformity_p", num(s->rank_p));
  json_object_set_new(j, "rank_uniformity_bins", json_integer(s->rank_bins));
  if (s->has_hpd) {
    json_t *hc = json_object(), *hl = json_array(), *ho = json_array();
    for (int i = 0; i < EVAL_N_LEVELS; i++) {
      json_array_append_new(hl, json_real(round(eval_level(i) * 100) / 100));
      json_array_append_new(ho, num(s->hpd_coverage[i]));
    }
    json_object_set_new(hc, "levels", hl);
    json_object_set_new(hc, "observed", ho);
    json_object_set_new(j, "hpd_coverage", hc);
  }
  json_object_set_new(j, "diagnostics", s->diagnostics ? json_deep_copy(s->diagnostics) : json_object());
  json_object_set_new(j, "seconds", num(s->seconds));
  json_object_set_new(j, "samples_per_second", num(s->samples_per_second));
  json_object_set_new(j, "threads", json_integer(s->threads));
  /* one request (all samples of one case) on one thread, as the evaluation ran it */
  json_object_set_new(j, "seconds_per_request", num(s->n_cases > 0 ? s->seconds * s->threads / s->n_cases : 0.0));
  json_object_set_new(j, "version", json_string(version));
  return j;
}
