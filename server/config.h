/* config.h: daemon settings from flags, SBIDA_* environment variables and an
 * optional key = value file (--config). Precedence: flag > environment >
 * file > default. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "util/sb_error.h"

typedef struct config {
  char listen[256];       /* host:port */
  char models[1024];
  char db[1024];
  char tokens_file[1024];
  char config_file[1024];
  char log_level[16];
  long workers;
  long max_queue;
  long max_body_bytes;
  long max_samples;
  long http_threads;
  long job_threads;       /* threads inside one job (estimators that use them) */
  long max_attempts;      /* starts of one job before recovery fails it */
  double retention_days;  /* 0 = keep forever; fractions allowed */
  long retention_max_runs;/* 0 = no limit */
  double shutdown_grace;  /* seconds running jobs get to finish on SIGTERM */
  long max_job_memory;    /* bytes one job may need (estimate before queueing) */
  double max_job_work;    /* floating-point operations one job may need (estimate) */
  double request_timeout; /* seconds a whole request (line, headers, body) may take to arrive */
  long idle_timeout;      /* seconds a connection may stay silent */
  long max_connections;
  long max_connections_per_ip;
  long max_body_total;    /* request body bytes buffered across all requests at once */
  long max_db_bytes;      /* 0 = no limit; the database refuses to grow past it */
  double lease_seconds;   /* a claimed job's lease, renewed every heartbeat_seconds */
  double heartbeat_seconds;
  long batch_rows;        /* dynamic batching of score-model evaluations: most rows per pass, 0 = off */
  double batch_wait_ms;   /* longest an evaluation waits for others to join its pass */
  long batch_threads;     /* threads of one batched pass; 0 = workers x job_threads */
  long batch_pack;        /* 1: pack rows of several jobs into one GEMM (samples equal alone to rounding only) */
  /* derived */
  char host[256];
  int port;
} config;

/* Fills c from defaults, file, environment and argv. Returns 0, 1 when --help
 * or --version was printed (caller exits 0), or SB_EINVAL with a message
 * (also when --models does not name a readable directory). */
int config_load(config *c, int argc, char **argv, sb_error *err);
void config_usage(FILE *f);

#endif
