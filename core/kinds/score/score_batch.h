/* score_batch.h: dynamic batching of network evaluations across concurrent
 * sampler calls on one network (sbidad runs several jobs at once; when they
 * use the same score model, their rows go through the network together).
 *
 * A call joins the batcher of its network (score_batch_join), submits every
 * evaluation (rows and a callback that writes one row's network input and
 * scalars, so tau and the conditioning are per row and calls at different
 * steps share a pass) and waits. The thread whose request finds the batch
 * ready leads: it takes the pending requests (oldest first, up to max_rows
 * rows), runs the merged forward pass on the thread pool in chunks of
 * SCORE_BATCH_CHUNK rows and hands every request its rows back. A batch is
 * ready when it holds max_rows rows, when every call joined to the network
 * is waiting in it (nobody else can come), or when its oldest request has
 * waited wait_s. Several leaders may run at once (one batch computes while
 * the next gathers).
 *
 * Results: OpenBLAS's sgemm sums a column in an order that depends on the
 * column's place in the matrix and on the matrix's size (measured: a row's
 * network output changes in the last bits with its position in the batch
 * and with the batch size, never with the other rows' values). So by
 * default (pack = 0) a pass runs every request's rows in the chunks its
 * call would run alone (SCORE_BATCH_CHUNK rows from its first row), and the
 * samples are bit-identical to the call alone; the requests share the pass
 * (one parallel-for, one set of workspaces) but not GEMMs. pack = 1 fills
 * every chunk with rows of several requests (fuller GEMMs for requests of
 * few samples); samples then equal the call alone only to float rounding
 * (tests/unit/test_score_batch.c checks both).
 *
 * Batching is off until score_batch_configure sets max_rows > 0 (the daemon
 * does, from its flags); the CLI and the evaluator never batch. Batchers
 * exist only while calls are joined: the last score_batch_leave frees it, so
 * a network that is freed (an unloaded model) has no batcher left. */
#ifndef SB_SCORE_BATCH_H
#define SB_SCORE_BATCH_H

#include "nn/nn_model.h"
#include "util/sb_error.h"

#define SCORE_BATCH_CHUNK 32

typedef struct score_batch_config {
  int max_rows;  /* most rows in one merged pass; 0: batching off */
  double wait_s; /* longest a request waits for others (seconds, >= 0) */
  int threads;   /* threads of one merged pass (>= 1) */
  int pack;      /* 1: chunks packed across requests (fuller GEMMs, samples
                  * equal to alone only to float rounding); 0: every request
                  * keeps the chunks it runs alone (bit-identical samples) */
} score_batch_config;

/* Process-wide; call before the calls that should batch (not while they run). */
void score_batch_configure(const score_batch_config *c);
void score_batch_get_config(score_batch_config *c);

typedef struct score_batch score_batch;

/* One network evaluation of one call. The caller fills owner, fill, rows and
 * out; fill(owner, row, in, scal) writes row's input (nn_in_size floats)
 * and scalars (nn_n_scalars floats); it is called on any thread while the
 * caller waits. out receives rows x nn_out_size floats. */
typedef struct score_batch_req {
  void *owner;
  void (*fill)(void *owner, int row, float *in, float *scal);
  int rows;
  float *out;
  /* the batcher's */
  int state, rc;
  double since;
  sb_error *err;
  struct score_batch_req *next;
} score_batch_req;

/* The batcher of net for one call, or NULL when batching is off (or its
 * memory is short: the call then runs alone). Every non-NULL join is
 * matched by one leave. */
score_batch *score_batch_join(const nn_model *net);
void score_batch_leave(score_batch *b);

/* Runs req (rows >= 1) in some merged pass and returns when its out is
 * written: SB_OK, SB_ENOMEM or a programming error of the network. */
int score_batch_run(score_batch *b, score_batch_req *req, sb_error *err);

/* Counters since start (for tests and the daemon's metrics): merged passes
 * and the requests and rows they carried. */
typedef struct score_batch_stats {
  long passes, requests, rows;
} score_batch_stats;
void score_batch_get_stats(score_batch_stats *s);

#endif
