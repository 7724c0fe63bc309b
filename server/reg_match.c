#include "reg_match.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonb.h"

/* a setup's operator and noise are sbida eval's canonical JSON; the query's
 * operator is parsed against the estimator's state and written back the same
 * way, so equal operators compare equal whatever the spelling (defaults,
 * key order) */
static int match_noise_equal(const json_t *a, double b) {
  return json_is_number(a) && fabs(json_number_value(a) - b) <= 1e-9 * fmax(1.0, fabs(b));
}

static json_t *match_canonical_op(const estimator *e, const json_t *op) {
  const sim *s = e->sim;
  obs_op *o = NULL;
  if (obs_from_json(&o, op, s->channels, s->height, s->width, NULL)) return NULL;
  json_t *j = obs_to_json(o);
  obs_free(o);
  return j;
}

/* the setup was run on e's system: same preset and state size (N is the
 * state dimension in sbida eval's files) */
static int match_same_system(const json_t *st, const estimator *e) {
  const char *preset = json_string_value(json_object_get(st, "preset"));
  json_t *N = json_object_get(st, "N");
  return (!preset || !strcmp(preset, e->sim->preset)) && (!N || json_integer_value(N) == e->sim->dim);
}

/* Why e cannot answer the query, or NULL when it can. */
static const char *match_refusal(const estimator *e, const reg_query *q, json_t **canon) {
  *canon = NULL;
  if (q->preset && strcmp(q->preset, e->sim->preset)) return "another preset";
  int wlo, whi;
  est_window_range(e, &wlo, &whi);
  if (q->window > 0 && (q->window < wlo || q->window > whi)) return "another window length";
  if (q->op) {
    if (!(*canon = match_canonical_op(e, q->op))) return "the operator does not fit its state";
    if (e->fixed_op) {
      json_t *mine = obs_to_json(e->fixed_op);
      int same = json_equal(mine, *canon);
      json_decref(mine);
      if (!same) return "trained for another operator";
    }
  }
  if (q->noise_std > 0 && e->fixed_noise) {
    json_t *mine = obs_noise_to_json(e->fixed_noise);
    int same = match_noise_equal(mine, q->noise_std);
    json_decref(mine);
    if (!same) return "trained for another noise level";
  }
  return NULL;
}

/* The best-matching shipped result of e among every estimator's
 * evaluations: a setup of the same preset, operator, noise and window whose
 * results include e; the one with the most cases (the most evidence: a
 * result on 4 cases must not outrank one on 200), then the lowest CRPS. New
 * reference or NULL. */
static json_t *match_evidence(const reg_snap *r, const estimator *e, const reg_query *q, const json_t *canon) {
  json_t *best = NULL;
  double best_crps = INFINITY;
  json_int_t best_cases = -1;
  for (int i = 0; i < r->count; i++) {
    json_t *ev = r->items[i]->info ? json_object_get(r->items[i]->info, "evaluation") : NULL;
    json_t *setups = json_object_get(ev, "setups"), *st;
    size_t k;
    json_array_foreach(setups, k, st) {
      json_t *res = json_object_get(json_object_get(st, "results"), e->name);
      if (!res) continue;
      if (!match_same_system(st, e)) continue;
      if (canon && !json_equal(json_object_get(st, "operator"), canon)) continue;
      if (q->noise_std > 0 && !match_noise_equal(json_object_get(st, "noise_std"), q->noise_std)) continue;
      if (q->window > 0 && json_integer_value(json_object_get(st, "window")) != q->window) continue;
      double crps = json_number_value(json_object_get(res, "crps"));
      json_int_t cases = json_integer_value(json_object_get(st, "cases"));
      if (!json_is_number(json_object_get(res, "crps")) || cases < best_cases ||
          (cases == best_cases && crps >= best_crps))
        continue;
      best_crps = crps;
      best_cases = cases;
      json_decref(best);
      json_t *src = json_object_get(st, "source"); /* set on setups shared with a baseline */
      best = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O*}", "setup",
                       json_object_get(st, "setup"), "source", src ? src : json_object_get(ev, "source"), "cases",
                       json_object_get(st, "cases"), "samples", json_object_get(st, "samples"), "rmse",
                       json_object_get(res, "rmse"), "spread", json_object_get(res, "spread"), "crps",
                       json_object_get(res, "crps"), "coverage_max_abs_error",
                       json_object_get(res, "coverage_max_abs_error"), "seconds_per_request",
                       json_object_get(res, "seconds_per_request"), "threads", json_object_get(res, "threads"),
                       "params", json_object_get(res, "params"), "settings", json_object_get(res, "settings"));
    }
  }
  return best;
}

typedef struct match_row {
  json_t *item;
  double crps; /* INFINITY without evidence */
  int order;   /* registry order, for a stable ranking */
} match_row;

static int match_cmp(const void *a, const void *b) {
  const match_row *x = a, *y = b;
  if (x->crps != y->crps) return x->crps < y->crps ? -1 : 1;
  return x->order - y->order;
}

json_t *reg_match(const reg_snap *r, const reg_query *q, sb_error *err) {
  match_row *rows = calloc((size_t)r->count + 1, sizeof *rows);
  int bad = 0;
  json_t *refused = jb_array(&bad);
  if (!rows || !refused) {
    free(rows);
    json_decref(refused);
    sb_fail(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  int n = 0;
  for (int i = 0; i < r->count; i++) {
    const estimator *e = r->items[i];
    json_t *canon;
    const char *why = match_refusal(e, q, &canon);
    if (why) {
      /* estimators of other systems are left out; the near misses are listed */
      if (strcmp(why, "another preset") && strcmp(why, "the operator does not fit its state"))
        jb_push(refused, json_pack("{s:s, s:s}", "name", e->name, "reason", why), &bad);
      json_decref(canon);
      continue;
    }
    json_t *ev = match_evidence(r, e, q, canon);
    json_decref(canon);
    rows[n].crps = ev ? json_number_value(json_object_get(ev, "crps")) : INFINITY;
    rows[n].order = i;
    rows[n].item = json_pack("{s:s, s:s, s:s, s:o}", "name", e->name, "kind", e->kind, "preset", e->sim->preset,
                             "evidence", ev ? ev : json_null());
    if (!ev)
      jb_set(rows[n].item, "note", json_string("no shipped evaluation of this estimator for this operator, noise "
                                               "and window"), &bad);
    n++;
  }
  qsort(rows, (size_t)n, sizeof *rows, match_cmp);
  json_t *items = jb_array(&bad);
  for (int i = 0; i < n; i++) {
    if (rows[i].crps < INFINITY) jb_set(rows[i].item, "rank", json_integer(i + 1), &bad);
    jb_push(items, rows[i].item, &bad);
  }
  free(rows);
  if (bad) {
    json_decref(items);
    json_decref(refused);
    sb_fail(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  return json_pack("{s:s, s:o, s:o}", "ranked_by",
                   "CRPS of the shipped evaluation on the same preset, operator, noise and window (lower is "
                   "better; of several, the one on the most cases; evidence gives RMSE, coverage error and the "
                   "cost of one request); estimators without such an evaluation follow, unranked",
                   "items", items, "cannot_answer", refused);
}

void reg_share_evaluations(reg_snap *r) {
  /* A baseline's results live in the evaluations of the models it was
   * compared with; give it those setups as its own evaluation, once each. */
  for (int i = 0; i < r->count; i++) {
    estimator *e = r->items[i];
    /* entries readers have seen are immutable (a reload shares them) */
    if (r->entries[i]->published || !e->info || json_object_get(e->info, "evaluation")) continue;
    int bad = 0;
    json_t *mine = jb_array(&bad);
    for (int j = 0; j < r->count; j++) {
      json_t *ev = r->items[j]->info ? json_object_get(r->items[j]->info, "evaluation") : NULL;
      json_t *setups = json_object_get(ev, "setups"), *st;
      size_t k;
      json_array_foreach(setups, k, st) {
        if (!json_object_get(json_object_get(st, "results"), e->name)) continue;
        if (!match_same_system(st, e)) continue;
        int dup = 0;
        json_t *have;
        size_t h;
        json_array_foreach(mine, h, have) {
          static const char *const keys[] = {"operator", "noise_std", "window", "time_index", "cases", "seed"};
          int same = 1;
          for (size_t c = 0; c < sizeof keys / sizeof keys[0] && same; c++)
            same = json_equal(json_object_get(have, keys[c]), json_object_get(st, keys[c])) ||
                   (!json_object_get(have, keys[c]) && !json_object_get(st, keys[c]));
          if (same) dup = 1;
        }
        if (dup) continue;
        json_t *copy = json_deep_copy(st), *src = json_object_get(ev, "source");
        if (!copy) bad++;
        if (src) jb_set(copy, "source", json_incref(src), &bad);
        jb_push(mine, copy, &bad);
      }
    }
    /* a failed allocation leaves the baseline without an evaluation, never with part of one */
    if (!bad && json_array_size(mine))
      jb_set(e->info, "evaluation", json_pack("{s:s, s:o}", "source", "the models' evaluations", "setups", mine),
             &bad);
    else
      json_decref(mine);
  }
}
