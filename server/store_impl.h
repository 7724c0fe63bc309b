/* store_impl.h: what a store backend provides (store_sqlite.c, store_pg.c);
 * store.c dispatches the public functions of store.h through it. Only the
 * store files include this header. */
#ifndef SB_STORE_IMPL_H
#define SB_STORE_IMPL_H

#include "store.h"

typedef struct store_ops {
  const char *name; /* "sqlite", "postgresql" */
  int shared;       /* several daemons may use the database at once */
  void (*close)(store *s);
  int (*insert)(store *s, const store_new_run *n, store_run *out, int *replayed, sb_error *err);
  int (*get)(store *s, const char *id, store_run *out, sb_error *err);
  int (*mark_running)(store *s, const char *id, int64_t now_ms, int *taken, sb_error *err);
  int (*finish)(store *s, const char *id, int attempt, const char *state, int64_t now_ms, const char *result,
                const float *samples, int n_samples, int dim, const char *error, sb_error *err);
  int (*requeue)(store *s, const char *id, int attempt, const char *reason, sb_error *err);
  int (*cancel)(store *s, const char *id, int64_t now_ms, int *was_running, sb_error *err);
  int (*del)(store *s, const char *id, sb_error *err);
  int (*samples)(store *s, const char *id, float **data, int *n_samples, int *dim, sb_error *err);
  int (*list)(store *s, const char *state, const char *estimator, long long before_seq, int limit, store_run **out,
              int *count, sb_error *err);
  int (*recover)(store *s, int max_attempts, int64_t now_ms, void (*fn)(void *ctx, const char *id), void *ctx,
                 int *requeued, int *failed, sb_error *err);
  int (*count_states)(store *s, long long counts[JOB_N_STATES], sb_error *err);
  int (*cleanup)(store *s, int64_t now_ms, int64_t max_age_ms, long long max_runs, long long *deleted,
                 sb_error *err);
  int (*check_writable)(store *s, sb_error *err);
  int (*write_failing)(store *s);
  const unsigned char *(*secret)(const store *s);
  int (*set_max_bytes)(store *s, long long bytes, sb_error *err);
  int (*find_idem)(store *s, const char *key, const char *hash, store_run *out, sb_error *err);
  int (*claim)(store *s, const char *owner, int64_t now_ms, int64_t lease_ms, char id[40], int *attempt,
               int *claimed, sb_error *err);
  int (*renew)(store *s, int n, const char (*ids)[40], const int *attempts, int64_t now_ms, int64_t lease_ms,
               int *state, sb_error *err);
  int (*sweep)(store *s, int max_attempts, int64_t now_ms, int *requeued, int *failed, sb_error *err);
  int (*watch)(store *s, const store_watch_fns *fns, sb_error *err);
  void (*unwatch)(store *s);
  int (*count_queued)(store *s, long long *n, sb_error *err);
  int (*schema_version)(store *s, int *version, sb_error *err);
  /* streams (store.h) */
  int (*stream_create)(store *s, const char *config, int64_t now_ms, char id[40], sb_error *err);
  int (*stream_get)(store *s, const char *id, store_stream *out, sb_error *err);
  int (*stream_list)(store *s, long long before_seq, int limit, store_stream **out, int *count, sb_error *err);
  int (*stream_delete)(store *s, const char *id, sb_error *err);
  int (*cycle_list)(store *s, const char *stream, long max_time, int succeeded_only, int limit, store_cycle **out,
                    int *count, sb_error *err);
  int (*cycle_insert)(store *s, const char *stream, long time_index, const char *observations, long last_time,
                      const store_new_run *n, store_run *out, sb_error *err);
} store_ops;

/* The first member of each backend's struct. */
struct store {
  const store_ops *ops;
};

int store_sqlite_open(store **out, const char *path, sb_error *err);
int store_pg_open(store **out, const char *url, sb_error *err);

/* The problem stored for a run interrupted attempts times (both backends). */
void store_interrupted_problem(char *buf, size_t size, int attempts);
/* A new random run id (32 hex digits). */
int store_new_id(char id[40], sb_error *err);

#endif
