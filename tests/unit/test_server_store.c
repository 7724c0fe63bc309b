/* The daemon's SQLite store and config parser without HTTP: idempotency,
 * state machine (cancel, delete, finish), crash recovery with attempts,
 * retention, pagination order, durability settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "server/config.h"
#include "server/job_queue.h"
#include "server/job_state.h"
#include "server/registry.h"
#include "server/store.h"
#include "testutil.h"

static volatile int fail_writes, fail_syncs;

static store *open_fresh(const char *name) {
  fail_writes = fail_syncs = 0; /* a failed test may have left them set */
  char path[600];
  snprintf(path, sizeof path, "%s/%s", tu_tmpdir(), name);
  unlink(path);
  char wal[620];
  snprintf(wal, sizeof wal, "%s-wal", path);
  unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", path);
  unlink(wal);
  store *s = NULL;
  sb_error err = {0};
  int rc = store_open(&s, path, &err);
  if (rc) fail_msg("store_open: %s", err.msg);
  return s;
}

static void insert(store *s, const char *key, const char *hash, store_run *out, int *replayed, int expect) {
  store_new_run n = {"l96-sakov-etkf", 4, 8, "{\"seed\":1}", key, hash};
  sb_error err = {0};
  assert_int_equal(store_insert(s, &n, out, replayed, &err), expect);
}

/* The SQL list of finished states (a compile-time literal in the stores'
 * statements) is the list's finished states, in order. */
static void test_sql_state_literals(void **state) {
  (void)state;
  char want[128] = "(";
  for (int i = 0; i < JOB_N_STATES; i++)
    if (job_state_finished(job_state_name((job_state)i)))
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s'%s'", strlen(want) > 1 ? "," : "",
               job_state_name((job_state)i));
  strcat(want, ")");
  assert_string_equal(JOB_SQL_FINISHED, want);
  assert_string_equal(JOB_SQL(RUNNING), "'running'");
}

static void test_idempotency(void **state) {
  (void)state;
  store *s = open_fresh("idem.db");
  store_run a, b;
  int rep;
  insert(s, "k1", "h1", &a, &rep, 0);
  assert_int_equal(rep, 0);
  assert_string_equal(a.state, "queued");
  assert_int_equal(strlen(a.id), 32);
  insert(s, "k1", "h1", &b, &rep, 0);
  assert_int_equal(rep, 1);
  assert_string_equal(a.id, b.id);
  store_run_free(&b);
  insert(s, "k1", "h2", &b, &rep, STORE_EMISMATCH);
  insert(s, NULL, "h1", &b, &rep, 0); /* no key: always a new run */
  assert_string_not_equal(a.id, b.id);
  long long counts[5];
  assert_int_equal(store_count_states(s, counts, NULL), 0);
  assert_int_equal(counts[0], 2);
  store_run_free(&a);
  store_run_free(&b);
  store_close(s);
}

static void test_state_machine(void **state) {
  (void)state;
  store *s = open_fresh("states.db");
  store_run a;
  int rep, taken, was_running;
  sb_error err = {0};
  insert(s, NULL, "h", &a, &rep, 0);
  /* delete refuses an active run; cancel of a queued run is immediate */
  assert_int_equal(store_delete(s, a.id, &err), STORE_ECONFLICT);
  assert_int_equal(store_cancel(s, a.id, 1000, &was_running, &err), 0);
  assert_int_equal(was_running, 0);
  assert_int_equal(store_mark_running(s, a.id, 1001, &taken, &err), 0);
  assert_int_equal(taken, 0); /* a worker skips it */
  assert_int_equal(store_cancel(s, a.id, 1002, &was_running, &err), STORE_ECONFLICT);
  assert_int_equal(store_delete(s, a.id, &err), 0);
  store_run g;
  assert_int_equal(store_get(s, a.id, &g, &err), STORE_ENOTFOUND);
  store_run_free(&a);

  insert(s, NULL, "h", &a, &rep, 0);
  assert_int_equal(store_mark_running(s, a.id, 2000, &taken, &err), 0);
  assert_int_equal(taken, 1);
  assert_int_equal(store_cancel(s, a.id, 2001, &was_running, &err), 0);
  assert_int_equal(was_running, 1);
  float smp[6] = {1, 2, 3, 4, 5, 6};
  assert_int_equal(store_finish(s, a.id, "succeeded", 2002, "{\"mean\":[]}", smp, 2, 3, NULL, &err), 0);
  assert_int_equal(store_finish(s, a.id, "failed", 2003, NULL, NULL, 0, 0, "{}", &err), STORE_ECONFLICT);
  assert_int_equal(store_get(s, a.id, &g, &err), 0);
  assert_string_equal(g.state, "succeeded");
  assert_int_equal(g.attempts, 1);
  assert_int_equal(g.started_ms, 2000);
  assert_int_equal(g.finished_ms, 2002);
  assert_int_equal(g.samples_dim, 3);
  assert_string_equal(g.result, "{\"mean\":[]}");
  store_run_free(&g);
  float *data;
  int S, d;
  assert_int_equal(store_samples(s, a.id, &data, &S, &d, &err), 0);
  assert_int_equal(S, 2);
  assert_int_equal(d, 3);
  assert_memory_equal(data, smp, sizeof smp);
  free(data);
  store_run_free(&a);
  store_close(s);
}

static int n_pushed;
static char pushed[8][40];
static void collect(void *ctx, const char *id) {
  (void)ctx;
  if (n_pushed < 8) snprintf(pushed[n_pushed++], 40, "%s", id);
}

static void test_recovery_and_attempts(void **state) {
  (void)state;
  store *s = open_fresh("recover.db");
  store_run a, b, c;
  int rep, taken, requeued, failed;
  sb_error err = {0};
  insert(s, NULL, "h", &a, &rep, 0);
  insert(s, NULL, "h", &b, &rep, 0);
  insert(s, NULL, "h", &c, &rep, 0);
  assert_int_equal(store_mark_running(s, a.id, 1, &taken, &err), 0);
  assert_int_equal(store_mark_running(s, b.id, 1, &taken, &err), 0);
  /* b already had its last attempt: max_attempts 1 fails it */
  n_pushed = 0;
  assert_int_equal(store_recover(s, 2, 5, collect, NULL, &requeued, &failed, &err), 0);
  assert_int_equal(requeued, 2);
  assert_int_equal(failed, 0);
  assert_int_equal(n_pushed, 3);
  assert_string_equal(pushed[0], a.id); /* oldest first */
  assert_string_equal(pushed[2], c.id);
  assert_int_equal(store_mark_running(s, a.id, 6, &taken, &err), 0);
  n_pushed = 0;
  assert_int_equal(store_recover(s, 2, 7, collect, NULL, &requeued, &failed, &err), 0);
  assert_int_equal(failed, 1);
  store_run g;
  assert_int_equal(store_get(s, a.id, &g, &err), 0);
  assert_string_equal(g.state, "failed");
  assert_non_null(strstr(g.error, "interrupted"));
  store_run_free(&g);
  store_run_free(&a);
  store_run_free(&b);
  store_run_free(&c);
  store_close(s);
}

static void test_list_and_retention(void **state) {
  (void)state;
  store *s = open_fresh("list.db");
  char ids[6][40];
  sb_error err = {0};
  for (int i = 0; i < 6; i++) {
    store_run a;
    int rep, taken;
    insert(s, NULL, "h", &a, &rep, 0);
    memcpy(ids[i], a.id, 40);
    store_run_free(&a);
    if (i < 4) {
      assert_int_equal(store_mark_running(s, ids[i], 10, &taken, &err), 0);
      assert_int_equal(store_finish(s, ids[i], "succeeded", 100 + i, "{}", NULL, 0, 0, NULL, &err), 0);
    }
  }
  store_run *runs;
  int n;
  assert_int_equal(store_list(s, NULL, NULL, 0, 4, &runs, &n, &err), 0);
  assert_int_equal(n, 4);
  assert_string_equal(runs[0].id, ids[5]); /* newest first */
  long long before = runs[3].seq;
  for (int i = 0; i < n; i++) store_run_free(&runs[i]);
  free(runs);
  assert_int_equal(store_list(s, NULL, NULL, before, 4, &runs, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_string_equal(runs[1].id, ids[0]);
  for (int i = 0; i < n; i++) store_run_free(&runs[i]);
  free(runs);
  assert_int_equal(store_list(s, "queued", "l96-sakov-etkf", 0, 10, &runs, &n, &err), 0);
  assert_int_equal(n, 2);
  for (int i = 0; i < n; i++) store_run_free(&runs[i]);
  free(runs);
  long long deleted;
  /* age: finished before 102 goes; count: keep 1 finished; queued runs stay */
  assert_int_equal(store_cleanup(s, 1102, 1000, 0, &deleted, &err), 0);
  assert_int_equal(deleted, 2);
  assert_int_equal(store_cleanup(s, 1102, 0, 1, &deleted, &err), 0);
  assert_int_equal(deleted, 1);
  long long counts[5];
  assert_int_equal(store_count_states(s, counts, &err), 0);
  assert_int_equal(counts[0], 2);
  assert_int_equal(counts[2], 1);
  store_run g;
  assert_int_equal(store_get(s, ids[3], &g, &err), 0);
  store_run_free(&g);
  assert_int_equal(store_check_writable(s, &err), 0);
  store_close(s);
}

static void test_open_failures(void **state) {
  (void)state;
  store *s;
  sb_error err = {0};
  assert_int_equal(store_open(&s, "/nonexistent-dir/x/sbida.db", &err), SB_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent-dir"));
  assert_null(s);
}

static void test_config(void **state) {
  (void)state;
  config c;
  sb_error err = {0};
  char *argv1[] = {"sbidad", "--listen", "[::1]:9000", "--workers=3", "--max-samples", "77", NULL};
  setenv("SBIDA_MAX_QUEUE", "5", 1);
  setenv("SBIDA_WORKERS", "9", 1);
  assert_int_equal(config_load(&c, 6, argv1, &err), 0);
  assert_string_equal(c.host, "::1");
  assert_int_equal(c.port, 9000);
  assert_int_equal(c.workers, 3);     /* flag beats environment */
  assert_int_equal(c.max_queue, 5);   /* environment beats default */
  assert_int_equal(c.max_samples, 77);
  unsetenv("SBIDA_MAX_QUEUE");
  unsetenv("SBIDA_WORKERS");
  char *bad1[] = {"sbidad", "--workers", "-1", NULL};
  assert_int_equal(config_load(&c, 3, bad1, &err), SB_EINVAL);
  char *bad2[] = {"sbidad", "--listen", "localhost", NULL};
  assert_int_equal(config_load(&c, 3, bad2, &err), SB_EINVAL);
  char *bad3[] = {"sbidad", "--max-queue", NULL};
  assert_int_equal(config_load(&c, 2, bad3, &err), SB_EINVAL);
  char path[600];
  snprintf(path, sizeof path, "%s/sbidad.conf", tu_tmpdir());
  FILE *f = fopen(path, "w");
  fprintf(f, "# comment\nmax-samples = 12\n\ndb=/tmp/x.db\n");
  fclose(f);
  char *argv2[] = {"sbidad", "--config", path, NULL};
  assert_int_equal(config_load(&c, 3, argv2, &err), 0);
  assert_int_equal(c.max_samples, 12);
  assert_string_equal(c.db, "/tmp/x.db");
  f = fopen(path, "w");
  fprintf(f, "bogus = 1\n");
  fclose(f);
  assert_int_equal(config_load(&c, 3, argv2, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "bogus"));
}

/* ---- Durability: a counting VFS.
 * A run is acknowledged (the 202) only after store_insert returns, so the
 * insert must have reached the disk by then: with WAL and synchronous=FULL the
 * commit calls xSync on the WAL file; with NORMAL or OFF it does not. This
 * shim wraps SQLite's default VFS (registered as the new default before
 * store_open, so both of the store's connections use it), forwards every call
 * and counts xSync per file kind. Counting syncs at the VFS is more robust than
 * reading PRAGMA synchronous (the store's connections are private) or an
 * LD_PRELOAD fsync shim (which AddressSanitizer builds refuse, and which would
 * also see syncs from other files). The order "commit, then reply" in
 * api_assim_create is plain control flow: store_insert returns before the
 * response is queued. */
typedef struct {
  sqlite3_file base;
  int is_wal;
  sqlite3_file *real; /* allocated right after this struct */
} cnt_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs cnt_vfs;
static int wal_syncs, db_syncs;
/* failure injection (fail_writes, fail_syncs above): every write fails as a
 * full disk; every WAL sync fails */

#define REAL(f) (((cnt_file *)(f))->real)
static int cnt_close(sqlite3_file *f) {
  int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
  return rc;
}
static int cnt_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) { return REAL(f)->pMethods->xRead(REAL(f), b, n, o); }
static int cnt_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
  if (__atomic_load_n(&fail_writes, __ATOMIC_RELAXED)) return SQLITE_FULL;
  return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int cnt_truncate(sqlite3_file *f, sqlite3_int64 n) { return REAL(f)->pMethods->xTruncate(REAL(f), n); }
static int cnt_sync(sqlite3_file *f, int flags) {
  if (((cnt_file *)f)->is_wal) wal_syncs++;
  else db_syncs++;
  if (((cnt_file *)f)->is_wal && __atomic_load_n(&fail_syncs, __ATOMIC_RELAXED)) return SQLITE_IOERR_FSYNC;
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int cnt_size(sqlite3_file *f, sqlite3_int64 *n) { return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int cnt_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int cnt_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int cnt_reserved(sqlite3_file *f, int *r) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int cnt_fcntl(sqlite3_file *f, int op, void *a) { return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int cnt_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int cnt_devchar(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int cnt_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **p) {
  return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p);
}
static int cnt_shm_lock(sqlite3_file *f, int o, int n, int fl) { return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl); }
static void cnt_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int cnt_shm_unmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int cnt_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p) { return REAL(f)->pMethods->xFetch(REAL(f), o, n, p); }
static int cnt_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) { return REAL(f)->pMethods->xUnfetch(REAL(f), o, p); }

static const sqlite3_io_methods cnt_io = {3,           cnt_close,  cnt_read,        cnt_write,     cnt_truncate,
                                          cnt_sync,    cnt_size,   cnt_lock,        cnt_unlock,    cnt_reserved,
                                          cnt_fcntl,   cnt_sector, cnt_devchar,     cnt_shm_map,   cnt_shm_lock,
                                          cnt_shm_barrier, cnt_shm_unmap, cnt_fetch, cnt_unfetch};

static int cnt_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags) {
  (void)v;
  cnt_file *c = (cnt_file *)f;
  c->real = (sqlite3_file *)(c + 1);
  c->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
  int rc = real_vfs->xOpen(real_vfs, name, c->real, flags, out_flags);
  /* SQLite calls xClose only when pMethods is set: set it when the real file is open */
  c->base.pMethods = c->real->pMethods ? &cnt_io : NULL;
  return rc;
}
static int cnt_delete(sqlite3_vfs *v, const char *n, int sync) { (void)v; return real_vfs->xDelete(real_vfs, n, sync); }
static int cnt_access(sqlite3_vfs *v, const char *n, int fl, int *r) { (void)v; return real_vfs->xAccess(real_vfs, n, fl, r); }
static int cnt_fullpath(sqlite3_vfs *v, const char *n, int len, char *out) {
  (void)v;
  return real_vfs->xFullPathname(real_vfs, n, len, out);
}
static int cnt_random(sqlite3_vfs *v, int n, char *out) { (void)v; return real_vfs->xRandomness(real_vfs, n, out); }
static int cnt_sleep(sqlite3_vfs *v, int us) { (void)v; return real_vfs->xSleep(real_vfs, us); }
static int cnt_time(sqlite3_vfs *v, double *t) { (void)v; return real_vfs->xCurrentTime(real_vfs, t); }
static int cnt_lasterr(sqlite3_vfs *v, int n, char *b) {
  (void)v;
  return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, b) : 0;
}
static int cnt_time64(sqlite3_vfs *v, sqlite3_int64 *t) { (void)v; return real_vfs->xCurrentTimeInt64(real_vfs, t); }

static void cnt_vfs_install(void) {
  /* already the default (a failed test did not remove it): keep the real one */
  if (sqlite3_vfs_find(NULL) == &cnt_vfs) return;
  real_vfs = sqlite3_vfs_find(NULL);
  assert_non_null(real_vfs);
  memset(&cnt_vfs, 0, sizeof cnt_vfs);
  cnt_vfs.iVersion = 2;
  cnt_vfs.szOsFile = (int)sizeof(cnt_file) + real_vfs->szOsFile;
  cnt_vfs.mxPathname = real_vfs->mxPathname;
  cnt_vfs.zName = "sbida-sync-count";
  cnt_vfs.xOpen = cnt_open;
  cnt_vfs.xDelete = cnt_delete;
  cnt_vfs.xAccess = cnt_access;
  cnt_vfs.xFullPathname = cnt_fullpath;
  cnt_vfs.xRandomness = cnt_random;
  cnt_vfs.xSleep = cnt_sleep;
  cnt_vfs.xCurrentTime = cnt_time;
  cnt_vfs.xGetLastError = cnt_lasterr;
  cnt_vfs.xCurrentTimeInt64 = cnt_time64;
  assert_int_equal(sqlite3_vfs_register(&cnt_vfs, 1), SQLITE_OK);
}

static void cnt_vfs_remove(void) {
  sqlite3_vfs_register(real_vfs, 1);
  sqlite3_vfs_unregister(&cnt_vfs);
}

static void test_insert_synced_before_it_returns(void **state) {
  (void)state;
  cnt_vfs_install();
  store *s = open_fresh("sync.db");
  store_run a;
  int rep, taken;
  sb_error err = {0};
  int w0 = wal_syncs;
  insert(s, NULL, "h", &a, &rep, 0);
  /* the insert's commit fsynced the WAL before store_insert returned */
  assert_true(wal_syncs > w0);
  /* queued -> running is lazy (documented): it may skip the sync ... */
  assert_int_equal(store_mark_running(s, a.id, 10, &taken, &err), 0);
  /* ... but the connection is back to FULL afterwards: the next insert and
   * the finish sync again */
  store_run b;
  w0 = wal_syncs;
  insert(s, NULL, "h2", &b, &rep, 0);
  assert_true(wal_syncs > w0);
  w0 = wal_syncs;
  assert_int_equal(store_finish(s, a.id, "succeeded", 20, "{}", NULL, 0, 0, NULL, &err), 0);
  assert_true(wal_syncs > w0);
  /* an insert with an idempotency key syncs too */
  store_run c;
  w0 = wal_syncs;
  insert(s, "key", "h3", &c, &rep, 0);
  assert_true(wal_syncs > w0);
  store_run_free(&a);
  store_run_free(&b);
  store_run_free(&c);
  store_close(s);
  cnt_vfs_remove();
}

/* A damaged or hand-edited database: text columns that read as NULL (a
 * zero-length blob in a NOT NULL column) come back as "", never as a NULL
 * printed with %s. */
static void test_null_columns_read_as_empty(void **state) {
  (void)state;
  store *s = open_fresh("nulls.db");
  store_run a, g;
  int rep;
  sb_error err = {0};
  insert(s, NULL, "h", &a, &rep, 0);
  char path[600];
  snprintf(path, sizeof path, "%s/nulls.db", tu_tmpdir());
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "UPDATE runs SET estimator = x''", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(store_get(s, a.id, &g, &err), 0);
  assert_string_equal(g.estimator, "");
  assert_string_equal(g.state, "queued");
  store_run_free(&g);
  store_run_free(&a);
  store_close(s);
}

/* Readiness checks what a submission needs: on a disk that refuses writes
 * (or a full database) it fails, where an empty transaction succeeded. */
static void test_check_writable_sees_a_failing_disk(void **state) {
  (void)state;
  cnt_vfs_install();
  store *s = open_fresh("ready.db");
  sb_error err = {0};
  assert_int_equal(store_check_writable(s, &err), 0);
  assert_int_equal(store_write_failing(s), 0);
  fail_writes = 1;
  assert_int_not_equal(store_check_writable(s, &err), 0);
  assert_int_equal(store_write_failing(s), 1);
  fail_writes = 0;
  assert_int_equal(store_check_writable(s, &err), 0);
  assert_int_equal(store_write_failing(s), 0);
  /* a database at its size cap: the probe needs new pages and is refused */
  assert_int_equal(store_set_max_bytes(s, 65536, &err), 0);
  assert_int_not_equal(store_check_writable(s, &err), 0);
  assert_non_null(strstr(err.msg, "full"));
  store_close(s);
  cnt_vfs_remove();
}

/* ---- A job whose store writes fail is never stranded */
static void wait_state(store *s, const char *id, const char *want, double seconds) {
  store_run r;
  sb_error err = {0};
  for (int i = 0; i < (int)(seconds * 20); i++) {
    assert_int_equal(store_get(s, id, &r, &err), 0);
    int ok = !strcmp(r.state, want);
    store_run_free(&r);
    if (ok) return;
    usleep(50000);
  }
  assert_int_equal(store_get(s, id, &r, &err), 0);
  fail_msg("run %s is %s, not %s, after %g s", id, r.state, want, seconds);
}

static const char *queue_request(char *buf, size_t size) {
  int n = snprintf(buf, size, "{\"estimator\":\"l96-sakov-etkf\",\"time_index\":4,\"n_samples\":16,\"seed\":3,"
                              "\"operator\":{\"type\":\"identity\"},\"noise_std\":1.0,\"observations\":[");
  for (int w = 0; w < 5; w++) {
    n += snprintf(buf + n, size - (size_t)n, "%s[", w ? "," : "");
    for (int i = 0; i < 40; i++) n += snprintf(buf + n, size - (size_t)n, "%s%d.5", i ? "," : "", (i * 7 + w) % 5 - 2);
    n += snprintf(buf + n, size - (size_t)n, "]");
  }
  snprintf(buf + n, size - (size_t)n, "]}");
  return buf;
}

static void test_store_failure_never_strands_a_job(void **state) {
  (void)state;
  cnt_vfs_install();
  store *s = open_fresh("strand.db");
  registry reg;
  memset(&reg, 0, sizeof reg);
  sb_error err = {0};
  assert_int_equal(reg_load(&reg, "/nonexistent-models-dir", &err), 0);
  job_queue *q;
  job_queue_opts o = {s, &reg, 1, 1, 16, NULL, NULL, NULL, NULL, 50, "test", 30, 10, 3};
  char req[8192];
  store_new_run n = {"l96-sakov-etkf", 4, 16, queue_request(req, sizeof req), NULL, "h"};
  store_run a;
  int rep;
  /* 1. queued -> running (the claim) cannot be written: the job stays
   * queued, the queue reports it unsettled, and it runs once the store can
   * write again (the workers start claiming at once: fail first) */
  assert_int_equal(store_insert(s, &n, &a, &rep, &err), 0);
  fail_writes = 1;
  assert_int_equal(job_queue_start(&q, &o, &err), 0);
  job_queue_push(q, a.id, 0);
  for (int i = 0; i < 100 && !job_queue_unsettled(q); i++) usleep(50000);
  assert_int_equal(job_queue_unsettled(q), 1);
  wait_state(s, a.id, "queued", 1);
  fail_writes = 0;
  wait_state(s, a.id, "succeeded", 30);
  assert_int_equal(job_queue_unsettled(q), 0);
  store_run_free(&a);
  /* 2. the final write cannot be committed: not left running with no
   * worker; once the store works the job is failed with a readable problem */
  assert_int_equal(store_insert(s, &n, &a, &rep, &err), 0);
  fail_syncs = 1;
  job_queue_push(q, a.id, 0);
  for (int i = 0; i < 200 && !job_queue_unsettled(q); i++) usleep(50000);
  assert_int_equal(job_queue_unsettled(q), 1);
  fail_syncs = 0;
  wait_state(s, a.id, "failed", 10);
  store_run g;
  assert_int_equal(store_get(s, a.id, &g, &err), 0);
  assert_non_null(g.error);
  assert_non_null(strstr(g.error, "could not be stored"));
  store_run_free(&g);
  store_run_free(&a);
  assert_int_equal(job_queue_stop(q, 1), 0);
  job_queue_free(q);
  reg_free(&reg);
  store_close(s);
  cnt_vfs_remove();
}

/* ---- The lease: a superseded worker cannot overwrite the result.
 * Runs on SQLite, and on PostgreSQL when SBIDA_TEST_PG_URL names a fresh
 * database (tests/py/test_api_replicas.py starts a server and runs this
 * binary so, filtered to the test_lease* tests). */
static store *open_lease_store(const char *name) {
  const char *url = getenv("SBIDA_TEST_PG_URL");
  if (!url || !*url) return open_fresh(name);
  store *s = NULL;
  sb_error err = {0};
  if (store_open(&s, url, &err)) fail_msg("store_open %s: %s", url, err.msg);
  return s;
}

static void test_lease_superseded_write_refused(void **state) {
  (void)state;
  store *s = open_lease_store("lease.db");
  sb_error err = {0};
  int version = 0;
  assert_int_equal(store_schema_version(s, &version, &err), 0);
  assert_int_equal(version, 3);
  store_run a;
  int rep, claimed, attempt, requeued, failed;
  char id[40];
  insert(s, NULL, "h", &a, &rep, 0);
  long long queued = 0;
  assert_int_equal(store_count_queued(s, &queued, &err), 0);
  assert_int_equal(queued, 1);
  /* worker 1 claims it: lease until 1000 + 500 */
  assert_int_equal(store_claim(s, "w1", 1000, 500, id, &attempt, &claimed, &err), 0);
  assert_int_equal(claimed, 1);
  assert_string_equal(id, a.id);
  assert_int_equal(attempt, 1);
  assert_int_equal(store_claim(s, "w2", 1000, 500, id, &attempt, &claimed, &err), 0);
  assert_int_equal(claimed, 0); /* nothing else queued */
  { /* the claim's clock (1000) was read before the run was created: it starts when created */
    store_run g;
    assert_int_equal(store_get(s, a.id, &g, &err), 0);
    assert_true(g.created_ms > 1000);
    assert_int_equal(g.started_ms, g.created_ms);
    store_run_free(&g);
  }
  /* a heartbeat at 1400 extends it to 1900: a sweep at 1600 leaves it */
  const char ids[1][40] = {0};
  memcpy((char *)ids[0], a.id, 40);
  int attempts[1] = {1}, st[1] = {9};
  assert_int_equal(store_renew(s, 1, ids, attempts, 1400, 500, st, &err), 0);
  assert_int_equal(st[0], 0);
  assert_int_equal(store_sweep(s, 3, 1600, &requeued, &failed, &err), 0);
  assert_int_equal(requeued, 0);
  /* worker 1 goes silent: at 2000 the lease has expired and the run is queued again */
  assert_int_equal(store_sweep(s, 3, 2000, &requeued, &failed, &err), 0);
  assert_int_equal(requeued, 1);
  assert_int_equal(failed, 0);
  assert_int_equal(store_claim(s, "w2", 2001, 500, id, &attempt, &claimed, &err), 0);
  assert_int_equal(claimed, 1);
  assert_int_equal(attempt, 2);
  /* worker 1's late heartbeat learns it lost the run; its late write is refused */
  assert_int_equal(store_renew(s, 1, ids, attempts, 2100, 500, st, &err), 0);
  assert_int_equal(st[0], -1);
  assert_int_equal(store_finish_attempt(s, a.id, 1, "succeeded", 2200, "{\"late\":1}", NULL, 0, 0, NULL, &err),
                   STORE_ECONFLICT);
  assert_int_equal(store_requeue_attempt(s, a.id, 1, "late", &err), 0);
  store_run g;
  assert_int_equal(store_get(s, a.id, &g, &err), 0);
  assert_string_equal(g.state, "running"); /* the stale requeue changed nothing */
  store_run_free(&g);
  /* worker 2's write is the one recorded */
  float smp[2] = {1, 2};
  assert_int_equal(store_finish_attempt(s, a.id, 2, "succeeded", 2300, "{\"w\":2}", smp, 1, 2, NULL, &err), 0);
  assert_int_equal(store_finish_attempt(s, a.id, 2, "succeeded", 2301, "{\"w\":2}", smp, 1, 2, NULL, &err),
                   STORE_ECONFLICT);
  assert_int_equal(store_get(s, a.id, &g, &err), 0);
  assert_string_equal(g.state, "succeeded");
  assert_string_equal(g.result, "{\"w\":2}");
  assert_int_equal(g.attempts, 2);
  store_run_free(&g);
  /* a run whose lease expired on its last attempt fails with the interrupted problem */
  store_run b;
  insert(s, NULL, "h", &b, &rep, 0);
  assert_int_equal(store_claim(s, "w1", 3000, 100, id, &attempt, &claimed, &err), 0);
  assert_string_equal(id, b.id);
  assert_int_equal(store_sweep(s, 1, 3200, &requeued, &failed, &err), 0);
  assert_int_equal(failed, 1);
  assert_int_equal(store_get(s, b.id, &g, &err), 0);
  assert_string_equal(g.state, "failed");
  assert_non_null(strstr(g.error, "interrupted"));
  store_run_free(&g);
  /* a cancel reaches the heartbeat of the worker running the run */
  store_run c;
  int was_running = 0;
  insert(s, NULL, "h", &c, &rep, 0);
  assert_int_equal(store_claim(s, "w1", 4000, 1000, id, &attempt, &claimed, &err), 0);
  assert_string_equal(id, c.id);
  assert_int_equal(store_cancel(s, c.id, 4100, &was_running, &err), 0);
  assert_int_equal(was_running, 1);
  memcpy((char *)ids[0], c.id, 40);
  attempts[0] = attempt;
  assert_int_equal(store_renew(s, 1, ids, attempts, 4200, 1000, st, &err), 0);
  assert_int_equal(st[0], 1);
  store_run_free(&a);
  store_run_free(&b);
  store_run_free(&c);
  store_close(s);
}

/* Streams: a cycle and its run in one transaction, only on top of the newest
 * cycle the caller saw; listing newest first; delete keeps the runs. On
 * PostgreSQL too when SBIDA_TEST_PG_URL is set (open_lease_store). */
static void test_streams_and_cycles(void **state) {
  (void)state;
  store *s = open_lease_store("streams.db");
  sb_error err = {0};
  char sid[40];
  assert_int_equal(store_stream_create(s, "{\"window\":1}", 5, sid, &err), 0);
  store_stream st;
  assert_int_equal(store_stream_get(s, sid, &st, &err), 0);
  assert_string_equal(st.config, "{\"window\":1}");
  assert_int_equal((int)st.created_ms, 5);
  store_stream_free(&st);
  store_new_run n = {"l96-sakov-etkf", 0, 4, "{}", NULL, NULL};
  store_run r0, r1, rx;
  assert_int_equal(store_cycle_insert(s, sid, 0, "[1]", -1, &n, &r0, &err), 0);
  assert_string_equal(r0.state, "queued");
  /* built on a stale view (no cycle yet): refused, nothing written */
  assert_int_equal(store_cycle_insert(s, sid, 1, "[2]", -1, &n, &rx, &err), STORE_ECONFLICT);
  n.time_index = 3;
  assert_int_equal(store_cycle_insert(s, sid, 3, "null", 0, &n, &r1, &err), 0);
  assert_int_equal(store_cycle_insert(s, "nope", 4, "[2]", 3, &n, &rx, &err), STORE_ENOTFOUND);
  store_cycle *cy;
  int count;
  assert_int_equal(store_cycle_list(s, sid, 1000, 0, 10, &cy, &count, &err), 0);
  assert_int_equal(count, 2);
  assert_int_equal((int)cy[0].time_index, 3);
  assert_string_equal(cy[0].run_id, r1.id);
  assert_string_equal(cy[0].observations, "null");
  assert_string_equal(cy[1].state, "queued");
  for (int i = 0; i < count; i++) store_cycle_free(&cy[i]);
  free(cy);
  /* only succeeded ones, and at or before a time */
  int taken = 0;
  assert_int_equal(store_mark_running(s, r0.id, 8, &taken, &err), 0);
  assert_int_equal(taken, 1);
  assert_int_equal(store_finish(s, r0.id, "succeeded", 9, "{\"mean\":[1]}", NULL, 0, 0, NULL, &err), 0);
  assert_int_equal(store_cycle_list(s, sid, 2, 1, 10, &cy, &count, &err), 0);
  assert_int_equal(count, 1);
  assert_string_equal(cy[0].run_id, r0.id);
  assert_string_equal(cy[0].result, "{\"mean\":[1]}");
  store_cycle_free(&cy[0]);
  free(cy);
  store_stream *all;
  assert_int_equal(store_stream_list(s, 0, 100, &all, &count, &err), 0);
  assert_true(count >= 1);
  for (int i = 0; i < count; i++) store_stream_free(&all[i]);
  free(all);
  assert_int_equal(store_stream_delete(s, sid, &err), 0);
  assert_int_equal(store_stream_get(s, sid, &st, &err), STORE_ENOTFOUND);
  assert_int_equal(store_stream_delete(s, sid, &err), STORE_ENOTFOUND);
  assert_int_equal(store_cycle_list(s, sid, 1000, 0, 10, &cy, &count, &err), 0);
  assert_int_equal(count, 0);
  free(cy);
  store_run g;
  assert_int_equal(store_get(s, r1.id, &g, &err), 0); /* the jobs stay */
  store_run_free(&g);
  store_run_free(&r0);
  store_run_free(&r1);
  store_close(s);
}

int main(void) {
  if (getenv("SBIDA_TEST_PG_URL") && *getenv("SBIDA_TEST_PG_URL")) cmocka_set_test_filter("test_lease*");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lease_superseded_write_refused), cmocka_unit_test(test_sql_state_literals),
      cmocka_unit_test(test_streams_and_cycles),
      cmocka_unit_test(test_idempotency),         cmocka_unit_test(test_state_machine),
      cmocka_unit_test(test_recovery_and_attempts), cmocka_unit_test(test_list_and_retention),
      cmocka_unit_test(test_open_failures),       cmocka_unit_test(test_config),
      cmocka_unit_test(test_insert_synced_before_it_returns),
      cmocka_unit_test(test_null_columns_read_as_empty),
      cmocka_unit_test(test_check_writable_sees_a_failing_disk),
      cmocka_unit_test(test_store_failure_never_strands_a_job),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
