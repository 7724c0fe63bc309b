/* est_chunk.h: a window longer than an estimator answers at once, answered as
 * a short cycle of analyses over it (request parameter "chunk": K).
 *
 * The window's W rows are cut into n = ceil(W / K) chunks, oldest first; the
 * first takes the W - (n - 1) K rows left over (merged into the second when
 * the estimator needs more rows than that). Each chunk is one analysis of its
 * rows with a background for its first state: the request's background for
 * the first chunk (climatology without one), then the previous chunk's
 * samples of its last state advanced one step by the system. The answer is
 * the last chunk's samples of x_t; with want_window, the window samples are
 * each chunk's own (smoothed within its chunk, not across chunks).
 *
 * This is a filter over the window (each observation is used once, and a
 * state is informed by the observations up to its chunk's end), the way
 * `sbida cycle` and streams cycle: it lets an estimator trained on windows
 * of 10 answer a window of 50, at n analyses' cost. Only estimators that
 * use a background (accepts_background) can chunk; n_samples >= 2 (the
 * samples of one chunk are the next one's background ensemble). */
#ifndef SB_EST_CHUNK_H
#define SB_EST_CHUNK_H

#include "est/est.h"

/* K from params "chunk" (an integer >= 1), or 0 when absent or not an
 * integer (est_check_options reports that). */
int est_chunk_param(const json_t *params);
/* A copy of params without "chunk" (what the estimator's own checks and
 * each chunk's call see); NULL when out of memory. */
json_t *est_chunk_rest(const json_t *params);
/* Checks params' "chunk" and the options it needs: the estimator accepts a
 * background, n_samples >= 2. SB_OK when there is no "chunk". */
int est_chunk_check_options(const estimator *e, const est_options *o, sb_error *err);
/* The chunks of a window of W rows at chunk size K for e: count, and the
 * first chunk's rows (the others have K). K >= W: one chunk of W. */
int est_chunk_layout(const estimator *e, int W, int K, int *first);
/* est_check_problem for every chunk of p at chunk size K (K = 0: p whole). */
int est_chunk_check_problem(const estimator *e, const est_problem *p, int K, sb_error *err);
/* Samples p chunk by chunk (K from o->params, 1 <= K < p->window); the
 * problem and options are checked by the caller (est_sample). */
int est_chunk_sample(estimator *e, const est_problem *p, const est_options *o, int K, est_result *r, sb_error *err);
/* est_estimate of a chunked call: the sum of the chunks' work, the largest
 * chunk's memory plus the result arrays and one forecast ensemble. */
void est_chunk_estimate(const estimator *e, const est_problem *p, const est_options *o, int K, est_cost *c);

#endif
