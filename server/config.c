#include "config.h"

#include "util/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/version.h"

typedef enum { OPT_STR, OPT_LONG, OPT_DOUBLE } opt_type;

typedef struct {
  const char *name; /* flag without "--"; env is SBIDA_ + upper(name with - as _) */
  opt_type type;
  size_t offset, size;
  const char *def;
  const char *help;
} config_opt;

#define STR(f) OPT_STR, offsetof(config, f), sizeof(((config *)0)->f)
#define LNG(f) OPT_LONG, offsetof(config, f), 0
#define DBL(f) OPT_DOUBLE, offsetof(config, f), 0

static const config_opt config_opts[] = {
    {"listen", STR(listen), "127.0.0.1:8080", "HOST:PORT to listen on (loopback by default; use tokens elsewhere)"},
    {"models", STR(models), "models", "directory scanned for *.safetensors model files"},
    {"db", STR(db), "var/sbida.db", "SQLite database file (created, WAL mode), or postgresql://... shared by replicas"},
    {"workers", LNG(workers), "2", "worker threads running assimilation jobs"},
    {"max-queue", LNG(max_queue), "256", "queued jobs before POST answers 429"},
    {"max-body-bytes", LNG(max_body_bytes), "8388608", "largest request body accepted (413 above)"},
    {"max-samples", LNG(max_samples), "10000", "largest n_samples of one assimilation"},
    {"tokens-file", STR(tokens_file), "", "file with one bearer token per line; empty: no authentication"},
    {"config", STR(config_file), "", "file of 'name = value' lines with these same names"},
    {"http-threads", LNG(http_threads), "4", "HTTP threads (libmicrohttpd thread pool)"},
    {"job-threads", LNG(job_threads), "1", "threads inside one job (score sampling); workers x this <= cores"},
    {"max-attempts", LNG(max_attempts), "3", "starts of a job before a restart marks it failed"},
    {"retention-days", DBL(retention_days), "30", "delete finished runs older than this many days (0: keep)"},
    {"retention-max-runs", LNG(retention_max_runs), "100000", "keep at most this many finished runs (0: no limit)"},
    {"shutdown-grace", DBL(shutdown_grace), "10", "seconds running jobs get to finish on SIGTERM before re-queueing"},
    {"max-job-memory", LNG(max_job_memory), "1073741824", "bytes one job may need, estimated before it is queued (422 above)"},
    {"max-job-work", DBL(max_job_work), "1e12", "floating-point operations one job may need, estimated (422 above)"},
    {"request-timeout", DBL(request_timeout), "30", "seconds a whole request (headers and body) may take to arrive"},
    {"idle-timeout", LNG(idle_timeout), "60", "seconds a connection may stay silent before it is closed"},
    {"max-connections", LNG(max_connections), "1024", "open HTTP connections at most"},
    {"max-connections-per-ip", LNG(max_connections_per_ip), "256", "open HTTP connections from one client address at most (a reverse proxy is one address)"},
    {"max-body-total", LNG(max_body_total), "268435456", "request body bytes buffered across all requests (503 above)"},
    {"max-db-bytes", LNG(max_db_bytes), "0", "largest database file in bytes (0: no limit); full: POST 503, not ready"},
    {"lease-seconds", DBL(lease_seconds), "30", "a running job stays this daemon's this long after each heartbeat; then another takes it over"},
    {"heartbeat-seconds", DBL(heartbeat_seconds), "0", "lease renewal and expiry sweep period (0: lease-seconds / 3)"},
    {"batch-rows", LNG(batch_rows), "1024", "score models: most rows (samples) of concurrent jobs in one batched network pass (0: no batching)"},
    {"batch-wait-ms", DBL(batch_wait_ms), "2", "score models: longest a network evaluation waits for other jobs to join its pass"},
    {"batch-threads", LNG(batch_threads), "0", "threads of one batched pass (0: workers x job-threads)"},
    {"batch-pack", LNG(batch_pack), "0", "1: pack rows of several jobs into one GEMM (samples then equal a job alone only to float rounding)"},
    {"log-level", STR(log_level), "info", "debug, info, warn or error"},
};
#define N_OPTS (sizeof config_opts / sizeof config_opts[0])

void config_usage(FILE *f) {
  fprintf(f, "usage: sbidad [options]\n\nServes Bayesian data assimilation over HTTP/JSON (API v1, see /openapi.json).\n"
             "Every option can also be set by the environment variable SBIDA_<NAME> (upper case, '-' as '_')\n"
             "or in the --config file; flags win over the environment, the environment over the file.\n\n");
  for (size_t i = 0; i < N_OPTS; i++) {
    char env[64];
    snprintf(env, sizeof env, "SBIDA_%s", config_opts[i].name);
    for (char *p = env; *p; p++) *p = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    fprintf(f, "  --%-20s %s\n  %-22s (env %s, default '%s')\n", config_opts[i].name, config_opts[i].help, "", env,
            config_opts[i].def);
  }
  fprintf(f, "  --%-20s this text\n", "help");
  fprintf(f, "  --%-20s print the version and exit\n", "version");
}

/* A missing or unreadable models directory is a mistake worth stopping for
 * (a typo would otherwise serve only the baselines, silently). */
static int config_check_models(const config *c, sb_error *err) {
  struct stat st;
  if (stat(c->models, &st))
    return sb_fail(err, SB_EINVAL, "--models %s: %s; create the directory (an empty one serves only the etkf, letkf "
                   "and pf baselines) or point --models at the folder holding the *.safetensors model files",
                   c->models, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return sb_fail(err, SB_EINVAL, "--models %s is not a directory", c->models);
  if (access(c->models, R_OK | X_OK))
    return sb_fail(err, SB_EINVAL, "--models %s cannot be read: %s", c->models, strerror(errno));
  return SB_OK;
}

static int config_set(config *c, const config_opt *o, const char *v, const char *origin, sb_error *err) {
  char *base = (char *)c + o->offset, *end;
  errno = 0;
  switch (o->type) {
  case OPT_STR:
    if (strlen(v) >= o->size) return sb_fail(err, SB_EINVAL, "%s: %s is too long", origin, o->name);
    memcpy(base, v, strlen(v) + 1);
    return SB_OK;
  case OPT_LONG: {
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0)
      return sb_fail(err, SB_EINVAL, "%s: %s needs a non-negative integer, got '%s'", origin, o->name, v);
    *(long *)base = x;
    return SB_OK;
  }
  case OPT_DOUBLE: {
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= 0))
      return sb_fail(err, SB_EINVAL, "%s: %s needs a non-negative number, got '%s'", origin, o->name, v);
    *(double *)base = x;
    return SB_OK;
  }
  }
  return SB_EINVAL;
}

static const config_opt *config_find(const char *name, size_t len) {
  for (size_t i = 0; i < N_OPTS; i++)
    if (strlen(config_opts[i].name) == len && !strncmp(config_opts[i].name, name, len)) return &config_opts[i];
  return NULL;
}

static char *config_trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = 0;
  return s;
}

static int config_file(config *c, const char *path, sb_error *err) {
  FILE *f = fopen(path, "r");
  if (!f) return sb_fail(err, SB_EIO, "cannot read config file %s: %s", path, strerror(errno));
  char line[2048];
  int lineno = 0, rc = SB_OK;
  while (!rc && fgets(line, sizeof line, f)) {
    lineno++;
    char *s = config_trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      rc = sb_fail(err, SB_EINVAL, "%s:%d: expected 'name = value'", path, lineno);
      break;
    }
    *eq = 0;
    char *k = config_trim(s), *v = config_trim(eq + 1);
    const config_opt *o = config_find(k, strlen(k));
    if (!o || !strcmp(k, "config")) {
      rc = sb_fail(err, SB_EINVAL, "%s:%d: unknown setting '%s' (see sbidad --help)", path, lineno, k);
      break;
    }
    char origin[1100];
    snprintf(origin, sizeof origin, "%s:%d", path, lineno);
    rc = config_set(c, o, v, origin, err);
  }
  fclose(f);
  return rc;
}

int config_load(config *c, int argc, char **argv, sb_error *err) {
  memset(c, 0, sizeof *c);
  int rc;
  for (size_t i = 0; i < N_OPTS; i++)
    if ((rc = config_set(c, &config_opts[i], config_opts[i].def, "default", err))) return rc;
  /* The config file name itself: flag, then environment. */
  const char *cfg = getenv("SBIDA_CONFIG");
  /* the flags: one long option per setting, plus --help */
  struct option opts[N_OPTS + 3];
  for (size_t i = 0; i < N_OPTS; i++) opts[i] = (struct option){config_opts[i].name, required_argument, NULL, 256 + (int)i};
  opts[N_OPTS] = (struct option){"help", no_argument, NULL, 'h'};
  opts[N_OPTS + 1] = (struct option){"version", no_argument, NULL, 'V'};
  opts[N_OPTS + 2] = (struct option){NULL, 0, NULL, 0};
  int ch;
  cli_reset();
  while ((ch = cli_next(argc, argv, "h", opts, err)) != -1) {
    if (ch == '?') return sb_wrap(err, "see --help");
    if (ch >= 256 && !strcmp(config_opts[ch - 256].name, "config")) cfg = optarg;
  }
  if (cfg && *cfg && (rc = config_file(c, cfg, err))) return rc;
  for (size_t i = 0; i < N_OPTS; i++) {
    char env[64];
    snprintf(env, sizeof env, "SBIDA_%s", config_opts[i].name);
    for (char *p = env; *p; p++) *p = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    const char *v = getenv(env);
    if (v && (rc = config_set(c, &config_opts[i], v, env, err))) return rc;
  }
  cli_reset();
  while ((ch = cli_next(argc, argv, "h", opts, err)) != -1) {
    if (ch == 'h') {
      config_usage(stdout);
      return 1;
    }
    if (ch == 'V') {
      printf("sbidad %s\n", SBIDA_VERSION);
      return 1;
    }
    if ((rc = config_set(c, &config_opts[ch - 256], optarg, "flag", err))) return rc;
  }
  if (optind < argc) return sb_fail(err, SB_EINVAL, "unexpected argument '%s' (see --help)", argv[optind]);
  /* listen = host:port (host may be [v6]) */
  const char *colon = strrchr(c->listen, ':');
  if (!colon) return sb_fail(err, SB_EINVAL, "--listen needs HOST:PORT, got '%s'", c->listen);
  size_t hl = (size_t)(colon - c->listen);
  const char *h = c->listen;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  memcpy(c->host, h, hl);
  c->host[hl] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535)
    return sb_fail(err, SB_EINVAL, "--listen port must be 0..65535, got '%s'", colon + 1);
  c->port = (int)port;
  if (c->workers < 1 || c->workers > 256) return sb_fail(err, SB_EINVAL, "--workers must be 1..256");
  if (c->http_threads < 1 || c->http_threads > 256) return sb_fail(err, SB_EINVAL, "--http-threads must be 1..256");
  if (c->job_threads < 1 || c->job_threads > 256) return sb_fail(err, SB_EINVAL, "--job-threads must be 1..256");
  if (c->batch_rows < 0 || c->batch_rows > 1000000) return sb_fail(err, SB_EINVAL, "--batch-rows must be 0..1000000");
  if (!(c->batch_wait_ms >= 0 && c->batch_wait_ms <= 10000))
    return sb_fail(err, SB_EINVAL, "--batch-wait-ms must be 0..10000");
  if (c->batch_threads < 0 || c->batch_threads > 256) return sb_fail(err, SB_EINVAL, "--batch-threads must be 0..256");
  if (c->batch_pack != 0 && c->batch_pack != 1) return sb_fail(err, SB_EINVAL, "--batch-pack must be 0 or 1");
  if (c->max_queue < 1) return sb_fail(err, SB_EINVAL, "--max-queue must be at least 1");
  if (c->max_samples < 1 || c->max_samples > 1000000) return sb_fail(err, SB_EINVAL, "--max-samples must be 1..1000000");
  if (c->max_body_bytes < 1024) return sb_fail(err, SB_EINVAL, "--max-body-bytes must be at least 1024");
  if (c->max_attempts < 1) return sb_fail(err, SB_EINVAL, "--max-attempts must be at least 1");
  if (c->retention_days > 36500) return sb_fail(err, SB_EINVAL, "--retention-days must be 0..36500 (100 years)");
  if (c->shutdown_grace > 3600) return sb_fail(err, SB_EINVAL, "--shutdown-grace must be 0..3600 seconds");
  if (c->max_job_memory < (1L << 20)) return sb_fail(err, SB_EINVAL, "--max-job-memory must be at least 1048576");
  if (!(c->max_job_work >= 1e6 && c->max_job_work <= 1e18))
    return sb_fail(err, SB_EINVAL, "--max-job-work must be 1e6..1e18");
  if (!(c->request_timeout >= 1 && c->request_timeout <= 3600))
    return sb_fail(err, SB_EINVAL, "--request-timeout must be 1..3600 seconds");
  if (c->idle_timeout < 1 || c->idle_timeout > 3600) return sb_fail(err, SB_EINVAL, "--idle-timeout must be 1..3600");
  if (c->max_connections < 1 || c->max_connections > 65536)
    return sb_fail(err, SB_EINVAL, "--max-connections must be 1..65536");
  if (c->max_connections_per_ip < 1) return sb_fail(err, SB_EINVAL, "--max-connections-per-ip must be at least 1");
  if (c->max_body_total < c->max_body_bytes)
    return sb_fail(err, SB_EINVAL, "--max-body-total must be at least --max-body-bytes");
  if (!(c->lease_seconds >= 1 && c->lease_seconds <= 3600))
    return sb_fail(err, SB_EINVAL, "--lease-seconds must be 1..3600");
  if (c->heartbeat_seconds == 0) c->heartbeat_seconds = c->lease_seconds / 3;
  if (!(c->heartbeat_seconds >= 0.1 && c->heartbeat_seconds <= c->lease_seconds / 2))
    return sb_fail(err, SB_EINVAL, "--heartbeat-seconds must be 0.1..lease-seconds/2 (a lease survives one missed "
                   "heartbeat)");
  if (c->max_db_bytes && c->max_db_bytes < 65536) return sb_fail(err, SB_EINVAL, "--max-db-bytes must be 0 or >= 65536");
  return config_check_models(c, err);
}
