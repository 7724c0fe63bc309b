/* http_wait.h: requests suspended until their job finishes or a deadline
 * passes (POST /v1/assimilations?wait=SECONDS). Finishing jobs and the
 * loop's timer resume them; the handler then answers with the job's state. */
#ifndef SB_HTTP_WAIT_H
#define SB_HTTP_WAIT_H

#include "http_server.h"

/* Suspends q until job id finishes or deadline (clock_mono_s) passes.
 * Returns 0 when suspended; SB_EINVAL when the daemon is stopping or the job
 * finished already (check is_done under the waiter lock). */
int http_wait_suspend(http_req *q, const char *id, double deadline, int (*is_done)(http_req *q, const char *id));
/* Resumes every request waiting for id (on_done of the job queue). */
void http_wait_notify(void *ctx, const char *id);
/* Resumes requests whose deadline passed (loop timer). */
void http_wait_tick(void *ctx);
/* Resumes all and refuses new waits (shutdown). */
void http_wait_shutdown(void);

#endif
