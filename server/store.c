/* store.c: the store interface (store.h) over its two backends: a
 * postgresql:// or postgres:// URI opens PostgreSQL, anything else SQLite. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "store_impl.h"

int store_open(store **out, const char *path, sb_error *err) {
  *out = NULL;
  if (!strncmp(path, "postgresql://", 13) || !strncmp(path, "postgres://", 11)) return store_pg_open(out, path, err);
  return store_sqlite_open(out, path, err);
}

void store_close(store *s) {
  if (s) s->ops->close(s);
}

int store_shared(const store *s) { return s->ops->shared; }

void store_run_free(store_run *r) {
  if (!r) return;
  free(r->request);
  free(r->result);
  free(r->error);
  r->request = r->result = r->error = NULL;
}

int store_new_id(char id[40], sb_error *err) {
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return sb_fail(err, SB_EIO, "getrandom failed");
  for (int i = 0; i < 16; i++) snprintf(id + 2 * i, 3, "%02x", b[i]);
  return SB_OK;
}

void store_interrupted_problem(char *buf, size_t size, int attempts) {
  snprintf(buf, size,
           "{\"type\":\"urn:sbida:problem:interrupted\",\"title\":\"The job was interrupted by daemon restarts\","
           "\"status\":500,\"detail\":\"the daemon died (crash or kill) while this job ran, in each of its %d "
           "attempt(s); a restart does not retry it again (--max-attempts). Submit it anew, perhaps with fewer "
           "samples.\"}",
           attempts);
}

int store_insert(store *s, const store_new_run *n, store_run *out, int *replayed, sb_error *err) {
  return s->ops->insert(s, n, out, replayed, err);
}
int store_get(store *s, const char *id, store_run *out, sb_error *err) { return s->ops->get(s, id, out, err); }
int store_mark_running(store *s, const char *id, int64_t now_ms, int *taken, sb_error *err) {
  return s->ops->mark_running(s, id, now_ms, taken, err);
}
int store_finish(store *s, const char *id, const char *state, int64_t now_ms, const char *result,
                 const float *samples, int n_samples, int dim, const char *error, sb_error *err) {
  return s->ops->finish(s, id, 0, state, now_ms, result, samples, n_samples, dim, error, err);
}
int store_finish_attempt(store *s, const char *id, int attempt, const char *state, int64_t now_ms,
                         const char *result, const float *samples, int n_samples, int dim, const char *error,
                         sb_error *err) {
  return s->ops->finish(s, id, attempt, state, now_ms, result, samples, n_samples, dim, error, err);
}
int store_requeue(store *s, const char *id, const char *reason, sb_error *err) {
  return s->ops->requeue(s, id, 0, reason, err);
}
int store_requeue_attempt(store *s, const char *id, int attempt, const char *reason, sb_error *err) {
  return s->ops->requeue(s, id, attempt, reason, err);
}
int store_cancel(store *s, const char *id, int64_t now_ms, int *was_running, sb_error *err) {
  return s->ops->cancel(s, id, now_ms, was_running, err);
}
int store_delete(store *s, const char *id, sb_error *err) { return s->ops->del(s, id, err); }
int store_samples(store *s, const char *id, float **data, int *n_samples, int *dim, sb_error *err) {
  return s->ops->samples(s, id, data, n_samples, dim, err);
}
int store_list(store *s, const char *state, const char *estimator, long long before_seq, int limit,
               store_run **out, int *count, sb_error *err) {
  return s->ops->list(s, state, estimator, before_seq, limit, out, count, err);
}
int store_recover(store *s, int max_attempts, int64_t now_ms, void (*fn)(void *ctx, const char *id), void *ctx,
                  int *requeued, int *failed, sb_error *err) {
  return s->ops->recover(s, max_attempts, now_ms, fn, ctx, requeued, failed, err);
}
int store_count_states(store *s, long long counts[JOB_N_STATES], sb_error *err) {
  return s->ops->count_states(s, counts, err);
}
int store_cleanup(store *s, int64_t now_ms, int64_t max_age_ms, long long max_runs, long long *deleted,
                  sb_error *err) {
  return s->ops->cleanup(s, now_ms, max_age_ms, max_runs, deleted, err);
}
int store_check_writable(store *s, sb_error *err) { return s->ops->check_writable(s, err); }
int store_write_failing(store *s) { return s->ops->write_failing(s); }
const unsigned char *store_secret(const store *s) { return s->ops->secret(s); }
int store_set_max_bytes(store *s, long long bytes, sb_error *err) { return s->ops->set_max_bytes(s, bytes, err); }
int store_find_idem(store *s, const char *key, const char *hash, store_run *out, sb_error *err) {
  return s->ops->find_idem(s, key, hash, out, err);
}
int store_claim(store *s, const char *owner, int64_t now_ms, int64_t lease_ms, char id[40], int *attempt,
                int *claimed, sb_error *err) {
  return s->ops->claim(s, owner, now_ms, lease_ms, id, attempt, claimed, err);
}
int store_renew(store *s, int n, const char (*ids)[40], const int *attempts, int64_t now_ms, int64_t lease_ms,
                int *state, sb_error *err) {
  return s->ops->renew(s, n, ids, attempts, now_ms, lease_ms, state, err);
}
int store_sweep(store *s, int max_attempts, int64_t now_ms, int *requeued, int *failed, sb_error *err) {
  return s->ops->sweep(s, max_attempts, now_ms, requeued, failed, err);
}
int store_watch(store *s, const store_watch_fns *fns, sb_error *err) { return s->ops->watch(s, fns, err); }
void store_unwatch(store *s) { s->ops->unwatch(s); }
int store_count_queued(store *s, long long *n, sb_error *err) { return s->ops->count_queued(s, n, err); }
int store_schema_version(store *s, int *version, sb_error *err) { return s->ops->schema_version(s, version, err); }

void store_stream_free(store_stream *st) {
  if (!st) return;
  free(st->config);
  st->config = NULL;
}
void store_cycle_free(store_cycle *c) {
  if (!c) return;
  free(c->observations);
  free(c->result);
  c->observations = c->result = NULL;
}
int store_stream_create(store *s, const char *config, int64_t now_ms, char id[40], sb_error *err) {
  return s->ops->stream_create(s, config, now_ms, id, err);
}
int store_stream_get(store *s, const char *id, store_stream *out, sb_error *err) {
  return s->ops->stream_get(s, id, out, err);
}
int store_stream_list(store *s, long long before_seq, int limit, store_stream **out, int *count, sb_error *err) {
  return s->ops->stream_list(s, before_seq, limit, out, count, err);
}
int store_stream_delete(store *s, const char *id, sb_error *err) { return s->ops->stream_delete(s, id, err); }
int store_cycle_list(store *s, const char *stream, long max_time, int succeeded_only, int limit, store_cycle **out,
                     int *count, sb_error *err) {
  return s->ops->cycle_list(s, stream, max_time, succeeded_only, limit, out, count, err);
}
int store_cycle_insert(store *s, const char *stream, long time_index, const char *observations, long last_time,
                       const store_new_run *n, store_run *out, sb_error *err) {
  return s->ops->cycle_insert(s, stream, time_index, observations, last_time, n, out, err);
}
