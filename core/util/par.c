#include "par.h"

#include <pthread.h>

void sb_par_run(int T, void *(*fn)(void *), void *args, size_t stride) {
  pthread_t th[SB_PAR_MAX_THREADS];
  int started[SB_PAR_MAX_THREADS] = {0};
  char *a = args;
  if (T > SB_PAR_MAX_THREADS) T = SB_PAR_MAX_THREADS;
  for (int t = 1; t < T; t++) started[t] = !pthread_create(&th[t], NULL, fn, a + (size_t)t * stride);
  fn(a);
  for (int t = 1; t < T; t++) {
    if (started[t]) pthread_join(th[t], NULL);
    else fn(a + (size_t)t * stride);
  }
}
