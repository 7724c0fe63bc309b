/* est_chunk.c: long windows as a cycle of chunks (est_chunk.h). */
#include "est/est_chunk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int est_chunk_param(const json_t *params) {
  const json_t *k = params ? json_object_get(params, "chunk") : NULL;
  if (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > 1024) return 0;
  return (int)json_integer_value(k);
}

json_t *est_chunk_rest(const json_t *params) {
  json_t *rest = json_deep_copy(params);
  if (rest) json_object_del(rest, "chunk");
  return rest;
}

int est_chunk_check_options(const estimator *e, const est_options *o, sb_error *err) {
  if (!o->params || !json_object_get(o->params, "chunk")) return SB_OK;
  if (!est_chunk_param(o->params))
    return sb_fail(err, SB_EINVAL, "params.chunk must be an integer in 1..1024 (observation rows per analysis)");
  if (!e->accepts_background)
    return sb_fail(err, SB_EINVAL, "params.chunk: estimator %s (%s) cannot use a background, so it cannot answer a "
                   "window in chunks; the kinds that can are etkf, letkf, composed-score and local-score",
                   e->name, e->kind);
  if (o->n_samples < 2)
    return sb_fail(err, SB_EINVAL, "params.chunk needs n_samples >= 2: the samples of one chunk are the next "
                   "chunk's background ensemble");
  return SB_OK;
}

int est_chunk_layout(const estimator *e, int W, int K, int *first) {
  if (K <= 0 || K >= W) return *first = W, 1;
  int n = (W + K - 1) / K, f = W - (n - 1) * K, lo, hi;
  est_window_range(e, &lo, &hi);
  if (f < lo && n > 1) f += K, n--;
  *first = f;
  return n;
}

/* The sub-problem of chunk c (rows a..a+len-1 of p's window). */
static est_problem chunk_problem(const est_problem *p, int a, int len, const est_background *bg) {
  est_problem q = *p;
  q.window = len;
  q.time_index = p->time_index - (p->window - (a + len));
  q.y = p->y + (size_t)a * (size_t)p->op->n_obs;
  q.background = bg;
  return q;
}

int est_chunk_check_problem(const estimator *e, const est_problem *p, int K, sb_error *err) {
  if (K <= 0 || K >= p->window) return est_check_problem(e, p, err);
  if (!p || !p->op || !p->y) return est_check_problem(e, p, err);
  if (p->window > 1024) return sb_fail(err, SB_ERANGE, "window length %d outside 1..1024", p->window);
  int f, n = est_chunk_layout(e, p->window, K, &f);
  /* the later chunks' background is made from the previous chunk's samples, valid by construction */
  for (int c = 0, a = 0; c < n; c++) {
    int len = c == 0 ? f : K;
    est_problem q = chunk_problem(p, a, len, c == 0 ? p->background : NULL);
    if (est_check_problem(e, &q, err)) return sb_wrap(err, "chunk %d of %d (rows %d..%d of %d)", c + 1, n, a, a + len - 1,
                                                     p->window);
    a += len;
  }
  return SB_OK;
}

/* progress of chunk c of n: fraction f of it is (c + f) / n of the call */
typedef struct chunk_progress {
  const est_options *o;
  int c, n;
} chunk_progress;

static void chunk_progress_fn(void *ctx, double f) {
  chunk_progress *cp = ctx;
  cp->o->progress(cp->o->progress_ctx, (cp->c + f) / cp->n);
}

int est_chunk_sample(estimator *e, const est_problem *p, const est_options *o, int K, est_result *r, sb_error *err) {
  const int W = p->window, S = o->n_samples, N = p->sim->dim;
  int f, n = est_chunk_layout(e, W, K, &f);
  json_t *params = est_chunk_rest(o->params);
  double *fc = malloc(sizeof(double) * (size_t)S * N);
  int rc = params && fc ? SB_OK : sb_fail(err, SB_ENOMEM, "out of memory for a chunked window");
  if (!rc) rc = est_result_alloc(r, S, N, W, o->want_window, 0, err);
  est_background bg = {.n_members = S, .members = fc};
  chunk_progress cp = {o, 0, n};
  for (int c = 0, a = 0; !rc && c < n; c++) {
    const int len = c == 0 ? f : K;
    est_problem q = chunk_problem(p, a, len, c == 0 ? p->background : &bg);
    est_options so = *o;
    so.params = params;
    so.seed = c == 0 ? o->seed : o->seed * 1000003u + (uint64_t)c;
    cp.c = c;
    if (o->progress) so.progress = chunk_progress_fn, so.progress_ctx = &cp;
    est_result cr;
    memset(&cr, 0, sizeof cr);
    if ((rc = e->sample(e, &q, &so, &cr, err))) {
      sb_wrap(err, "chunk %d of %d (rows %d..%d of %d)", c + 1, n, a, a + len - 1, W);
      est_result_free(&cr);
      break;
    }
    for (size_t i = 0; i < (size_t)S * N && !rc; i++)
      if (!isfinite(cr.samples[i]))
        rc = sb_fail(err, SB_ENUMERIC, "estimator %s produced a non-finite sample in chunk %d of %d", e->name, c + 1, n);
    if (!rc && o->want_window && cr.window_samples)
      for (int s = 0; s < S; s++)
        memcpy(r->window_samples + ((size_t)s * W + a) * N, cr.window_samples + (size_t)s * len * N,
               sizeof(double) * (size_t)len * N);
    if (!rc && c + 1 < n) { /* the next chunk's background: these samples one step ahead */
      memcpy(fc, cr.samples, sizeof(double) * (size_t)S * N);
      rc = p->sim->advance(p->sim, fc, (size_t)S, 1, err);
    }
    if (!rc && c + 1 == n) {
      memcpy(r->samples, cr.samples, sizeof(double) * (size_t)S * N);
      if (cr.diagnostics) { /* the last chunk's diagnostics replace the empty ones of est_result_alloc */
        json_decref(r->diagnostics);
        r->diagnostics = cr.diagnostics;
        cr.diagnostics = NULL;
      }
      json_t *ch = json_pack("{s:i, s:i, s:i}", "chunk", K, "chunks", n, "first_rows", f);
      if (!r->diagnostics || !ch || json_object_set_new(r->diagnostics, "chunked", ch))
        rc = sb_fail(err, SB_ENOMEM, "out of memory for the diagnostics");
    }
    est_result_free(&cr);
    a += len;
  }
  free(fc);
  json_decref(params);
  return rc;
}

void est_chunk_estimate(const estimator *e, const est_problem *p, const est_options *o, int K, est_cost *c) {
  int f, n = est_chunk_layout(e, p->window, K, &f);
  double S = o->n_samples, N = p->sim->dim, W = p->window;
  double bytes = 0, flops = 0;
  json_t *params = est_chunk_rest(o->params);
  est_options so = *o;
  so.params = params;
  for (int i = 0, a = 0; i < n; i++) {
    int len = i == 0 ? f : K;
    est_problem q = chunk_problem(p, a, len, p->background);
    est_cost ci = {0, 0};
    est_estimate(e, &q, &so, &ci);
    if (ci.bytes > bytes) bytes = ci.bytes;
    flops += ci.flops;
    a += len;
  }
  json_decref(params);
  c->bytes = bytes + 8.0 * (S * N * 2 + (o->want_window ? S * W * N : 0));
  c->flops = flops;
}
