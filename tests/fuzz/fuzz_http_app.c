/* fuzz_http_app.c: see fuzz_http_app.h. */
#include "fuzz_http_app.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "server/app.h"
#include "server/clock.h"
#include "server/http_routes.h"
#include "server/http_server.h"
#include "server/http_wait.h"
#include "server/log.h"
#include "server/metrics.h"

static app A;
static char job_id[40], queued_id[40];
static char token0[] = "fuzz-token";
static char *tokens[] = {token0};

static const char fixture_request[] =
    "{\"estimator\":\"l96-sakov-etkf\",\"time_index\":2,\"operator\":{\"type\":\"subsample\",\"stride\":4},"
    "\"noise_std\":1.0,\"n_samples\":4,\"seed\":1,\"observations\":[[1,2,3,4,5,6,7,8,9,10],null,"
    "[1,2,3,4,5,6,7,8,9,10]]}";

static void make_run(char *id, int finish) {
  store_new_run n = {"l96-sakov-etkf", 2, 4, fixture_request, NULL, "0"};
  store_run r;
  int replayed = 0, taken = 0;
  sb_error err = {0};
  if (store_insert(A.store, &n, &r, &replayed, &err)) fuzz_fail("fixture insert: %s", err.msg);
  memcpy(id, r.id, 40);
  store_run_free(&r);
  if (!finish) {
    job_queue_push(A.jq, id, 0);
    return;
  }
  float samples[4 * 40];
  for (int i = 0; i < 4 * 40; i++) samples[i] = (float)i * 0.25f;
  if (store_mark_running(A.store, id, clock_now_ms(), &taken, &err) || !taken ||
      store_finish(A.store, id, "succeeded", clock_now_ms(), "{\"mean\":[0],\"std\":[1]}", samples, 4, 40, NULL, &err))
    fuzz_fail("fixture finish: %s", err.msg);
}

static void tick(void *ctx) { http_wait_tick(ctx); }

void fuzz_app_start(void) {
  signal(SIGPIPE, SIG_IGN);
  log_set_level("error");
  char db[512], models[4096];
  fuzz_tmp_path("sbida.db", db, sizeof db);
  fuzz_src_path("tests/data/golden", models, sizeof models);
  char *argv[] = {"sbidad", "--db", db, "--models", models, "--listen", "127.0.0.1:0", "--http-threads", "2",
                  "--max-queue", "1000000", "--max-body-bytes", "65536", NULL};
  sb_error err = {0};
  if (config_load(&A.cfg, (int)(sizeof argv / sizeof argv[0]) - 1, argv, &err)) fuzz_fail("config: %s", err.msg);
  static const char *labels[METRICS_MAX_ROUTES];
  for (int i = 0; i < http_n_routes && i < METRICS_MAX_ROUTES; i++) labels[i] = http_routes[i].label;
  metrics_init(labels, http_n_routes);
  A.tokens = tokens;
  A.n_tokens = 1;
  if (store_open(&A.store, A.cfg.db, &err)) fuzz_fail("store: %s", err.msg);
  if (reg_load(&A.reg, A.cfg.models, &err)) fuzz_fail("registry: %s", err.msg);
  /* no workers: jobs are stored, never run */
  job_queue_opts qo = {A.store, &A.reg, 0, 1, A.cfg.max_queue, http_wait_notify, NULL, tick, NULL, 50,
                       "fuzz", 0, 0, 0};
  if (job_queue_start(&A.jq, &qo, &err)) fuzz_fail("queue: %s", err.msg);
  if (http_start(&A, &err)) fuzz_fail("http: %s", err.msg);
  /* 24 finished runs to page through, then the two fixtures */
  for (int i = 0; i < 24; i++) make_run(job_id, 1);
  make_run(job_id, 1);
  make_run(queued_id, 0);
}

/* The fixtures again when an input deleted or cancelled them. */
static void fixtures(void) {
  store_run r;
  if (store_get(A.store, job_id, &r, NULL)) make_run(job_id, 1);
  else store_run_free(&r);
  if (store_get(A.store, queued_id, &r, NULL)) make_run(queued_id, 0);
  else {
    if (strcmp(r.state, "queued")) make_run(queued_id, 0);
    store_run_free(&r);
  }
}

void fuzz_app_housekeeping(void) {
  store_run *runs;
  int n = 0;
  sb_error err = {0};
  if (!store_list(A.store, "queued", NULL, 0, 500, &runs, &n, &err)) {
    for (int i = 0; i < n; i++) {
      int was_running;
      if (strcmp(runs[i].id, queued_id)) store_cancel(A.store, runs[i].id, clock_now_ms(), &was_running, NULL);
      store_run_free(&runs[i]);
    }
    free(runs);
  }
  long long deleted;
  store_cleanup(A.store, clock_now_ms(), 0, 64, &deleted, NULL);
  fixtures();
}

/* req with the placeholders replaced (malloc'd) */
static uint8_t *substitute(const uint8_t *req, size_t len, size_t *out_len) {
  static const char *names[] = {"@JOB@", "@QUEUED@"};
  const char *ids[] = {job_id, queued_id};
  uint8_t *o = malloc(len * 8 + 1);
  size_t k = 0;
  if (!o) fuzz_fail("out of memory");
  for (size_t i = 0; i < len;) {
    int hit = 0;
    for (int p = 0; p < 2 && !hit; p++) {
      size_t pl = strlen(names[p]);
      if (i + pl <= len && !memcmp(req + i, names[p], pl)) {
        size_t il = strlen(ids[p]);
        memcpy(o + k, ids[p], il);
        k += il, i += pl, hit = 1;
      }
    }
    if (!hit) o[k++] = req[i++];
  }
  *out_len = k;
  return o;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

char *fuzz_app_exchange(const uint8_t *req0, size_t len0, int timeout_ms, size_t *ans_len) {
  fixtures();
  size_t len;
  uint8_t *req = substitute(req0, len0, &len);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) fuzz_fail("socketpair: %s", strerror(errno));
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(40000);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (MHD_add_connection(A.mhd, sv[1], (struct sockaddr *)&sin, sizeof sin) != MHD_YES) {
    close(sv[0]);
    close(sv[1]);
    free(req);
    return NULL; /* connection limit: not the input's fault */
  }
  double end = now_ms() + timeout_ms;
  size_t off = 0;
  size_t cap = 1 << 16, n = 0;
  char *ans = malloc(cap + 1);
  if (!ans) fuzz_fail("out of memory");
  int wr_open = 1, got_eof = 0;
  while (!got_eof) {
    double left = end - now_ms();
    if (left <= 0) break;
    struct pollfd p = {sv[0], (short)(POLLIN | (wr_open ? POLLOUT : 0)), 0};
    if (poll(&p, 1, (int)left + 1) <= 0) continue;
    if (wr_open && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = off < len ? send(sv[0], req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
      if (w > 0) off += (size_t)w;
      if (off >= len || w < 0) {
        shutdown(sv[0], SHUT_WR); /* the request ends here */
        wr_open = 0;
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      if (n == cap) {
        if (cap >= (1 << 22)) break; /* enough to check */
        cap *= 2;
        char *b = realloc(ans, cap + 1);
        if (!b) fuzz_fail("out of memory");
        ans = b;
      }
      ssize_t r = recv(sv[0], ans + n, cap - n, MSG_DONTWAIT);
      if (r > 0) n += (size_t)r;
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) got_eof = 1;
    }
  }
  close(sv[0]);
  free(req);
  ans[n] = 0;
  *ans_len = n;
  if (!got_eof && !n) {
    free(ans);
    return NULL;
  }
  return ans;
}

/* Value of header name in the header block [h, end), or NULL; copies into buf. */
static const char *header(const char *h, const char *end, const char *name, char *buf, size_t size) {
  size_t nl = strlen(name);
  for (const char *l = h; l < end;) {
    const char *e = memchr(l, '\n', (size_t)(end - l));
    if (!e) e = end;
    if ((size_t)(e - l) > nl && !strncasecmp(l, name, nl) && l[nl] == ':') {
      const char *v = l + nl + 1;
      while (v < e && *v == ' ') v++;
      size_t vl = (size_t)(e - v);
      while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' ')) vl--;
      if (vl >= size) vl = size - 1;
      memcpy(buf, v, vl);
      buf[vl] = 0;
      return buf;
    }
    l = e + 1;
  }
  return NULL;
}

void fuzz_app_check_answer(const char *ans, size_t len, int head) {
  const char *p = ans, *end = ans + len;
  for (;;) {
    FUZZ_CHECK(len >= 12 && !strncmp(p, "HTTP/1.", 7), "the answer has no status line: %.80s", p);
    int status = atoi(p + 9);
    FUZZ_CHECK(status >= 100 && status <= 599, "status %d", status);
    const char *hend = strstr(p, "\r\n\r\n");
    if (!hend) return; /* cut short by the time limit */
    if (status >= 200) {
      char cc[64], ct[128], cl[32];
      const char *body = hend + 4;
      if (!header(p, hend, "Cache-Control", cc, sizeof cc) || strcmp(cc, "no-store") || status < 400) return;
      /* issue 18 defect 6: a message with invalid UTF-8 makes problem_new return NULL: 500, no body */
      if (fuzz_known_defects() && status == 500 && !header(p, hend, "Content-Type", ct, sizeof ct)) return;
      /* an error answer of ours: RFC 9457 problem+json */
      FUZZ_CHECK(header(p, hend, "Content-Type", ct, sizeof ct) && !strcmp(ct, "application/problem+json"),
                 "error %d of the daemon is not problem+json", status);
      if (head) return;
      size_t blen = (size_t)(end - body);
      if (header(p, hend, "Content-Length", cl, sizeof cl) && (size_t)atol(cl) <= blen) blen = (size_t)atol(cl);
      json_t *j = json_loadb(body, blen, 0, NULL);
      FUZZ_CHECK(j, "error %d: the body is not JSON: %.200s", status, body);
      FUZZ_CHECK(json_integer_value(json_object_get(j, "status")) == status, "error %d: problem status differs",
                 status);
      FUZZ_CHECK(json_is_string(json_object_get(j, "detail")), "error %d: problem without a detail", status);
      json_decref(j);
      return;
    }
    p = hend + 4; /* 100 Continue: the real answer follows */
    len = (size_t)(end - p);
    if (!len) return;
  }
}
