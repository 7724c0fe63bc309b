/* fuzz_job_spec.c: a POST /v1/assimilations body becoming a job spec
 * (server/job_spec.c), against the baselines of every preset and the tiny
 * models of tests/data/golden (one per kind). Invariants: a refused body
 * gets a problem object (status 4xx/5xx) that serializes, since the daemon
 * sends it as problem+json; an accepted body's canonical form is accepted
 * again and gives the same problem (the worker rebuilds the job from it). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "server/job_spec.h"
#include "server/log.h"

static registry reg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  log_set_level("error");
  char dir[4096];
  sb_error err = {0};
  if (reg_load(&reg, fuzz_src_path("tests/data/golden", dir, sizeof dir), &err) || reg_count(&reg) < 4)
    fuzz_fail("cannot load the registry: %s", err.msg);
  return 0;
}

static void check_problem(const json_t *p) {
  FUZZ_CHECK(json_is_object(p), "a refused body has no problem object (the daemon would answer 500 without a body)");
  json_int_t st = json_integer_value(json_object_get(p, "status"));
  FUZZ_CHECK(st >= 400 && st <= 599, "problem status %lld", (long long)st);
  FUZZ_CHECK(json_is_string(json_object_get(p, "detail")), "problem without a detail");
  char *text = json_dumps(p, JSON_COMPACT);
  FUZZ_CHECK(text, "problem does not serialize");
  free(text);
}

static int same_double(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

static void check_same(const job_spec *a, const job_spec *b) {
  FUZZ_CHECK(a->est == b->est && a->window == b->window && a->time_index == b->time_index &&
                 a->n_samples == b->n_samples && a->seed == b->seed && a->want_samples == b->want_samples &&
                 a->want_window == b->want_window && a->n_quantiles == b->n_quantiles,
             "the canonical request gives another job");
  FUZZ_CHECK(a->op_use->n_obs == b->op_use->n_obs && a->noise.n == b->noise.n, "canonical: another operator or noise");
  for (int i = 0; i < a->n_quantiles; i++) FUZZ_CHECK(a->quantiles[i] == b->quantiles[i], "canonical: quantile %d", i);
  for (int i = 0; i < a->noise.n; i++) FUZZ_CHECK(a->noise.std[i] == b->noise.std[i], "canonical: noise %d", i);
  size_t n = (size_t)a->window * (size_t)a->op_use->n_obs;
  for (size_t i = 0; i < n; i++) FUZZ_CHECK(same_double(a->y[i], b->y[i]), "canonical: observation %zu", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* parsed as api_assim_create does */
  json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
  if (!body) return 0;
  job_spec s;
  json_t *problem = NULL;
  /* the daemon's default limits (--max-samples, --max-job-memory, --max-job-work) */
  const job_limits lim = {10000, 1024.0 * 1024 * 1024, 1e12};
  if (job_spec_parse(&s, body, &reg, &lim, 1, &problem)) {
    /* issue 18 defect 6: a message with invalid UTF-8 makes problem_new return NULL */
    if (problem || !fuzz_known_defects()) check_problem(problem);
    json_decref(problem);
    job_spec_free(&s);
    json_decref(body);
    return 0;
  }
  FUZZ_CHECK(!problem, "an accepted body came with a problem");
  json_t *canon = job_spec_canonical(&s, body);
  FUZZ_CHECK(canon, "no canonical request");
  char *text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
  FUZZ_CHECK(text, "the canonical request does not serialize");
  json_t *again = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
  FUZZ_CHECK(again, "the stored canonical request is not valid JSON: %.200s", text);
  job_spec s2;
  if (job_spec_parse(&s2, again, &reg, &lim, 1, &problem)) {
    char *pt = problem ? json_dumps(problem, JSON_COMPACT) : NULL;
    fuzz_fail("the canonical request is refused: %s", pt ? pt : "(no problem)");
  }
  check_same(&s, &s2);
  job_spec_free(&s2);
  json_decref(again);
  free(text);
  json_decref(canon);
  job_spec_free(&s);
  json_decref(body);
  return 0;
}
