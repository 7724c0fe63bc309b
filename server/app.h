/* app.h: the daemon's shared state, built by main.c and read by the
 * handlers. Everything here lives from start to shutdown. */
#ifndef SB_APP_H
#define SB_APP_H

#include <stdatomic.h>

#include "config.h"
#include "job_queue.h"
#include "registry.h"
#include "store.h"

typedef struct app {
  config cfg;
  store *store;
  registry reg;
  job_queue *jq;
  struct MHD_Daemon *mhd;
  char **tokens;      /* bearer tokens, NULL when authentication is off */
  int n_tokens;
  atomic_int stopping;     /* set by main at shutdown, read by the HTTP threads */
  long inflight;      /* requests begun and not yet completed (atomic) */
  long body_bytes;    /* request body bytes buffered now, all requests (atomic) */
} app;

#endif
