/* par.h: the fork-join every threaded kernel uses. */
#ifndef SB_PAR_H
#define SB_PAR_H

#include <stddef.h>

#define SB_PAR_MAX_THREADS 64

/* Runs fn(args + t * stride) for t = 0..T-1 (T <= SB_PAR_MAX_THREADS), t = 0
 * on the calling thread, and returns when all have finished. A thread that
 * cannot be started runs its share on the caller, so the work is always done. */
void sb_par_run(int T, void *(*fn)(void *), void *args, size_t stride);

#endif
