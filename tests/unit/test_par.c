/* test_par.c: the thread runtime (util/par.h): every task runs once, worker
 * indices stay in range and are never shared by two running tasks, nested
 * and concurrent calls finish, the pool is reused, cancel tokens. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/par.h"

typedef struct count_ctx {
  atomic_int hits[1000];
  atomic_int busy[SB_THREADS_MAX];
  atomic_int bad;
  int T;
} count_ctx;

static void count_task(void *arg, int task, int worker) {
  count_ctx *c = arg;
  if (worker < 0 || worker >= c->T) atomic_store(&c->bad, 1);
  else if (atomic_fetch_add(&c->busy[worker], 1) != 0) atomic_store(&c->bad, 1);
  atomic_fetch_add(&c->hits[task], 1);
  for (volatile int spin = 0; spin < 1000; spin++) {
  }
  if (worker >= 0 && worker < c->T) atomic_fetch_sub(&c->busy[worker], 1);
}

static void run_counts(int n, int threads) {
  static count_ctx c;
  memset(&c, 0, sizeof c);
  c.T = sb_threads(threads, n);
  sb_parallel_for(n, threads, count_task, &c);
  assert_int_equal(atomic_load(&c.bad), 0);
  for (int i = 0; i < n; i++) assert_int_equal(atomic_load(&c.hits[i]), 1);
}

static void test_every_task_once(void **state) {
  (void)state;
  int threads[] = {0, 1, 2, 3, 8, 64, 1000};
  for (int r = 0; r < 20; r++) /* the pool is reused across calls */
    for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) run_counts(1 + (r * 37) % 1000, threads[k]);
  assert_int_equal(sb_threads(0, 10), 1);
  assert_int_equal(sb_threads(8, 3), 3);
  assert_int_equal(sb_threads(1000, 1000), SB_THREADS_MAX);
}

typedef struct nest_ctx {
  atomic_long sum;
} nest_ctx;

static void inner(void *arg, int task, int worker) {
  (void)worker;
  atomic_fetch_add(&((nest_ctx *)arg)->sum, task);
}

static void outer(void *arg, int task, int worker) {
  (void)task, (void)worker;
  sb_parallel_for(100, 4, inner, arg); /* a nested call from a pool thread */
}

static void *caller(void *arg) {
  for (int r = 0; r < 10; r++) sb_parallel_for(8, 3, outer, arg);
  return NULL;
}

static void test_nested_and_concurrent(void **state) {
  (void)state;
  nest_ctx c;
  atomic_init(&c.sum, 0);
  pthread_t th[3];
  for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&th[i], NULL, caller, &c), 0);
  caller(&c);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&c.sum), 4L * 10 * 8 * 4950);
  sb_pool_shutdown();
  run_counts(100, 4); /* restarts after a shutdown */
  sb_pool_shutdown();
}

static void test_cancel(void **state) {
  (void)state;
  sb_cancel c;
  sb_cancel_init(&c);
  assert_false(sb_cancelled(&c));
  assert_false(sb_cancelled(NULL));
  sb_cancel_request(&c);
  assert_true(sb_cancelled(&c));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_task_once),
      cmocka_unit_test(test_nested_and_concurrent),
      cmocka_unit_test(test_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
