#include "http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "http_routes.h"
#include "log.h"
#include "metrics.h"
#include "problem.h"
#include "text.h"

#include <pthread.h>
#include <sys/socket.h>

const char *http_header(http_req *q, const char *name) {
  return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

const char *http_query(http_req *q, const char *name) {
  return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, name);
}

static void http_log_answer(http_req *q, int status) {
  int route = q->route < 0 ? http_n_routes - 1 : q->route;
  metrics_request(route, status);
  /* probes and scrapes are too frequent to log at info */
  int quiet = http_routes[route].quiet && status < 400;
  if (log_enabled(quiet ? LOG_DEBUG : LOG_INFO))
    log_event(quiet ? LOG_DEBUG : LOG_INFO, "http_request",
              json_pack("{s:o, s:o, s:i, s:f}", "method", text_json(q->method, 64), "path", text_json(q->url, 2048),
                        "status", status, "ms", 1e3 * (clock_mono_s() - q->t0)));
}

enum MHD_Result http_reply_buffer(http_req *q, int status, const char *ctype, void *data, size_t len,
                                  enum MHD_ResponseMemoryMode mode) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, data, mode);
  if (!r) {
    if (mode == MHD_RESPMEM_MUST_FREE) free(data);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  enum MHD_Result ok = MHD_queue_response(q->conn, (unsigned)status, r);
  MHD_destroy_response(r);
  http_log_answer(q, status);
  return ok;
}

enum MHD_Result http_reply_static(http_req *q, const char *ctype, const char *data, size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  /* the files change only with the binary; revalidate rather than guess */
  MHD_add_response_header(r, "Cache-Control", "no-cache");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(r, "Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                          "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  enum MHD_Result ok = MHD_queue_response(q->conn, 200, r);
  MHD_destroy_response(r);
  http_log_answer(q, 200);
  return ok;
}

static enum MHD_Result http_reply_json_h(http_req *q, int status, json_t *body, const char *ctype,
                                         const char *h1, const char *v1, const char *h2, const char *v2) {
  char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
  json_decref(body);
  size_t len = text ? strlen(text) : 0;
  struct MHD_Response *r = MHD_create_response_from_buffer(len, text ? text : (void *)"",
                                                           text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  if (text) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  if (h1 && v1) MHD_add_response_header(r, h1, v1);
  if (h2 && v2) MHD_add_response_header(r, h2, v2);
  enum MHD_Result ok = MHD_queue_response(q->conn, (unsigned)status, r);
  MHD_destroy_response(r);
  http_log_answer(q, status);
  return ok;
}

enum MHD_Result http_reply_json(http_req *q, int status, json_t *body, const char *location) {
  /* a builder gives NULL when memory ran out (util/jsonb.h): never a success with an empty body */
  if (!body && status != 204)
    return http_reply_problem(q, problem_new(PROB_INTERNAL, 0, "out of memory while building the response"), NULL,
                              NULL);
  return http_reply_json_h(q, status, body, "application/json", location ? "Location" : NULL, location, NULL, NULL);
}

enum MHD_Result http_reply_problem(http_req *q, json_t *problem, const char *hname, const char *hvalue) {
  int status = problem ? (int)json_integer_value(json_object_get(problem, "status")) : 500;
  if (status < 400 || status > 599) status = 500;
  if (!problem) problem = problem_new(PROB_INTERNAL, 0, "the error could not be described (out of memory)");
  if (q->url) json_object_set_new(problem, "instance", text_json(q->url, 2048));
  return http_reply_json_h(q, status, problem, "application/problem+json", hname, hvalue, NULL, NULL);
}

/* Constant-time comparison of the presented token with every configured one. */
static int http_token_ok(const app *a, const char *auth) {
  if (!a->tokens) return 1;
  if (!auth || strncasecmp(auth, "Bearer ", 7)) return 0;
  const char *t = auth + 7;
  size_t tl = strlen(t);
  int ok = 0;
  for (int i = 0; i < a->n_tokens; i++) {
    const char *k = a->tokens[i];
    size_t kl = strlen(k);
    unsigned char diff = (unsigned char)(tl != kl);
    for (size_t j = 0; j < kl; j++) diff |= (unsigned char)(k[j] ^ (tl ? t[j % tl] : 0));
    ok |= diff == 0;
  }
  return ok;
}

static int http_is_json_type(const char *ct) {
  if (!ct) return 0;
  while (*ct == ' ') ct++;
  size_t n = strlen("application/json");
  return !strncasecmp(ct, "application/json", n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

/* ---- request deadline: requests whose line, headers and body have not all
 * arrived within --request-timeout get their socket shut down by the tick.
 * The list holds requests between the URI callback and their last upload
 * call (or completion); a shut-down socket makes MHD close the connection. */
static pthread_mutex_t dl_mu = PTHREAD_MUTEX_INITIALIZER;
static http_req *dl_head;

static void http_dl_remove(http_req *q) {
  pthread_mutex_lock(&dl_mu);
  if (q->receiving) {
    if (q->dl_prev) q->dl_prev->dl_next = q->dl_next;
    else dl_head = q->dl_next;
    if (q->dl_next) q->dl_next->dl_prev = q->dl_prev;
    q->receiving = 0;
    q->dl_prev = q->dl_next = NULL;
  }
  pthread_mutex_unlock(&dl_mu);
}

void http_deadline_tick(app *a) {
  double now = clock_mono_s(), limit = a->cfg.request_timeout;
  pthread_mutex_lock(&dl_mu);
  for (http_req *q = dl_head; q; q = q->dl_next)
    if (now - q->t0 > limit && q->fd >= 0) {
      shutdown(q->fd, SHUT_RDWR);
      q->fd = -1; /* once */
    }
  pthread_mutex_unlock(&dl_mu);
}

/* Called by MHD with the raw request line's URI before it decodes it: the
 * request's state starts here, so a %00 (which decoding would turn into an
 * early end of the path) is still visible. */
static void *http_uri_cb(void *cls, const char *uri, struct MHD_Connection *conn) {
  app *a = cls;
  http_req *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  __atomic_fetch_add(&a->inflight, 1, __ATOMIC_RELAXED);
  q->app = a;
  q->conn = conn;
  q->route = -1;
  q->t0 = clock_mono_s();
  dynbuf_init(&q->body, (size_t)a->cfg.max_body_bytes);
  size_t plen = strcspn(uri, "?");
  for (size_t i = 0; i < plen; i++) {
    unsigned char c = (unsigned char)uri[i];
    if (c < 0x20 || c == 0x7F) q->bad_path = 1;
    if (c == '%' && i + 2 < plen) {
      char hex[3] = {uri[i + 1], uri[i + 2], 0}, *end;
      long v = strtol(hex, &end, 16);
      if (!*end && (v < 0x20 || v == 0x7F)) q->bad_path = 1;
    }
  }
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  q->fd = ci ? ci->connect_fd : -1;
  pthread_mutex_lock(&dl_mu);
  q->receiving = 1;
  q->dl_next = dl_head;
  if (dl_head) dl_head->dl_prev = q;
  dl_head = q;
  pthread_mutex_unlock(&dl_mu);
  return q;
}

typedef struct {
  int n;
  char first[32];
  int differ;
} http_cl_count;

static enum MHD_Result http_count_cl(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  http_cl_count *c = cls;
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) return MHD_YES;
  if (c->n++ == 0) snprintf(c->first, sizeof c->first, "%s", value ? value : "");
  else if (!value || strcmp(value, c->first)) c->differ = 1;
  return MHD_YES;
}

double http_accept_q(const char *accept, const char *type, int *named) {
  if (named) *named = 0;
  if (!accept) return -1;
  const char *slash = strchr(type, '/');
  size_t tlen = slash ? (size_t)(slash - type) : strlen(type);
  double best = 0;
  int best_spec = -1; /* 2 exact, 1 type/x, 0 x/x: the most specific match wins */
  const char *p = accept;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[256];
    if (len >= sizeof item) len = sizeof item - 1;
    memcpy(item, p, len);
    item[len] = 0;
    char *semi = strchr(item, ';'), *params = NULL;
    if (semi) *semi = 0, params = semi + 1;
    char *mt = item;
    while (*mt == ' ' || *mt == '\t') mt++;
    char *me = mt + strlen(mt);
    while (me > mt && (me[-1] == ' ' || me[-1] == '\t')) *--me = 0;
    double qv = 1;
    for (char *t = params; t && *t;) {
      while (*t == ' ' || *t == '\t' || *t == ';') t++;
      if ((t[0] == 'q' || t[0] == 'Q') && t[1] == '=') {
        char *qe;
        double v = strtod(t + 2, &qe);
        qv = qe == t + 2 || v < 0 ? 0 : v > 1 ? 1 : v;
      }
      t = strchr(t, ';');
    }
    int spec = -1;
    if (!strcasecmp(mt, type)) spec = 2;
    else if (!strcmp(mt, "*/*")) spec = 0;
    else if (strlen(mt) == tlen + 2 && !strncasecmp(mt, type, tlen) && !strcmp(mt + tlen, "/*")) spec = 1;
    if (spec > best_spec) best_spec = spec, best = qv;
    if (spec == 2 && named) *named = 1;
    if (!end) break;
    p = end + 1;
  }
  return best_spec < 0 ? 0 : best;
}

/* Refuses what the request line and headers already show is wrong; NULL
 * when they are fine. */
static json_t *http_check_framing(http_req *q, const char *version, const char **hname, const char **hvalue) {
  if (q->bad_path)
    return problem_new(PROB_BAD_REQUEST, 0, "the path contains %%00 or another control character");
  if (version && !strcmp(version, MHD_HTTP_VERSION_1_1) && !http_header(q, MHD_HTTP_HEADER_HOST))
    return problem_new(PROB_BAD_REQUEST, 0, "an HTTP/1.1 request needs a Host header");
  http_cl_count c = {0};
  MHD_get_connection_values(q->conn, MHD_HEADER_KIND, http_count_cl, &c);
  if (c.differ) return problem_new(PROB_BAD_REQUEST, 0, "the request has Content-Length headers that disagree");
  const char *te = http_header(q, MHD_HTTP_HEADER_TRANSFER_ENCODING);
  if (te && strcasecmp(te, "chunked") && strcasecmp(te, "identity")) {
    *hname = "Connection", *hvalue = "close";
    return problem_new(PROB_NOT_IMPLEMENTED, 0, "Transfer-Encoding '%.40s' is not supported; send the body as is "
                       "(Content-Length) or chunked", te);
  }
  if (te && c.n) return problem_new(PROB_BAD_REQUEST, 0, "the request has both Transfer-Encoding and Content-Length");
  return NULL;
}

/* Takes n more bytes from the daemon-wide body budget (--max-body-total). */
static int http_body_budget(http_req *q, size_t n) {
  app *a = q->app;
  long now = __atomic_add_fetch(&a->body_bytes, (long)n, __ATOMIC_RELAXED);
  if (now > a->cfg.max_body_total) {
    __atomic_sub_fetch(&a->body_bytes, (long)n, __ATOMIC_RELAXED);
    return SB_ERANGE;
  }
  q->body_budget += n;
  return SB_OK;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                   const char *version, const char *upload_data, size_t *upload_data_size,
                                   void **con_cls) {
  app *a = cls;
  http_req *q = *con_cls;
  if (!q) return MHD_NO; /* the URI callback ran out of memory */
  if (!q->method) {
    q->conn = conn;
    q->method = method;
    q->url = url;
    const char *hn = NULL, *hv = NULL;
    json_t *bad = http_check_framing(q, version, &hn, &hv);
    if (bad) {
      http_dl_remove(q);
      return http_reply_problem(q, bad, hn, hv);
    }
    q->route = http_route_match(url, q->param, sizeof q->param);
    if (q->route < 0) {
      http_dl_remove(q);
      return http_reply_problem(q, problem_new(PROB_NOT_FOUND, 0, "no resource at %.200s; the API lives under /v1 "
                                               "(see /openapi.json)", url), NULL, NULL);
    }
    const http_route *r = &http_routes[q->route];
    if (!r->public && !http_token_ok(a, http_header(q, MHD_HTTP_HEADER_AUTHORIZATION))) {
      http_dl_remove(q);
      return http_reply_problem(q, problem_new(PROB_UNAUTHORIZED, 0, "send 'Authorization: Bearer <token>' with a "
                                               "token from the daemon's tokens file"),
                                "WWW-Authenticate", "Bearer realm=\"sbida\"");
    }
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    http_handler h = is_get ? r->get : !strcmp(method, "POST") ? r->post : !strcmp(method, "DELETE") ? r->del : NULL;
    if (!h) {
      char allow[64];
      http_route_allow(q->route, allow, sizeof allow);
      http_dl_remove(q);
      return http_reply_problem(q, problem_new(PROB_METHOD, 0, "%.16s is not allowed on %.200s; allowed: %s", method,
                                               url, allow), "Allow", allow);
    }
    if (!strcmp(method, "POST") && r->json_body) {
      if (!http_is_json_type(http_header(q, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        http_dl_remove(q);
        return http_reply_problem(q, problem_new(PROB_MEDIA_TYPE, 0, "send the body as JSON with 'Content-Type: "
                                                 "application/json'"), "Accept-Post", "application/json");
      }
      const char *cl = http_header(q, MHD_HTTP_HEADER_CONTENT_LENGTH);
      if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end || n > (unsigned long long)a->cfg.max_body_bytes) {
          http_dl_remove(q);
          return http_reply_problem(q, problem_new(PROB_TOO_LARGE, 0, "the body has %.30s bytes, the limit is %ld "
                                                   "(--max-body-bytes); send fewer observations per request", cl,
                                                   a->cfg.max_body_bytes), NULL, NULL);
        }
      }
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (!q->too_large) {
      if (http_body_budget(q, *upload_data_size)) q->too_large = 2;
      else if (dynbuf_add(&q->body, upload_data, *upload_data_size)) q->too_large = 1;
      if (q->too_large) dynbuf_free(&q->body);
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  http_dl_remove(q); /* the whole request is here */
  if (q->too_large == 2)
    return http_reply_problem(q, problem_new(PROB_UNAVAILABLE, 503, "the daemon is buffering %ld bytes of request "
                                             "bodies already (--max-body-total); retry later", a->cfg.max_body_total),
                              "Retry-After", "1");
  if (q->too_large)
    return http_reply_problem(q, problem_new(PROB_TOO_LARGE, 0, "the body is larger than %ld bytes "
                                             "(--max-body-bytes)", a->cfg.max_body_bytes), NULL, NULL);
  const http_route *r = &http_routes[q->route];
  int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  http_handler h = is_get ? r->get : !strcmp(method, "POST") ? r->post : r->del;
  if (q->suspended) q->suspended = 0; /* resumed: the handler answers now */
  enum MHD_Result res = h(q);
  q->started = 1;
  return res;
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
  (void)conn, (void)toe;
  http_req *q = *con_cls;
  if (!q) return;
  app *a = cls;
  http_dl_remove(q);
  __atomic_fetch_sub(&a->inflight, 1, __ATOMIC_RELAXED);
  if (q->body_budget) __atomic_sub_fetch(&a->body_bytes, (long)q->body_budget, __ATOMIC_RELAXED);
  dynbuf_free(&q->body);
  free(q);
  *con_cls = NULL;
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = strlen(buf);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
  log_event(LOG_WARN, "libmicrohttpd", json_pack("{s:o}", "message", text_json(buf, 1024)));
}

/* MHD's own fatal checks (MHD_PANIC) abort the process; say which one in the
 * log first, so an abort is never a bare exit code. */
static void http_mhd_panic(void *cls, const char *file, unsigned int line, const char *reason) {
  (void)cls;
  log_event(LOG_ERROR, "libmicrohttpd_panic", json_pack("{s:s, s:i, s:o}", "file", file ? file : "?", "line", (int)line,
                                                        "reason", text_json(reason ? reason : "", 1024)));
  fflush(NULL);
  abort();
}

int http_start(app *a, sb_error *err) {
  MHD_set_panic_func(http_mhd_panic, NULL);
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char port[16];
  snprintf(port, sizeof port, "%d", a->cfg.port);
  int gai = getaddrinfo(a->cfg.host[0] ? a->cfg.host : NULL, port, &hints, &ai);
  if (gai) return sb_fail(err, SB_EINVAL, "cannot resolve listen address %s: %s", a->cfg.listen, gai_strerror(gai));
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  a->mhd = MHD_start_daemon(flags, (uint16_t)a->cfg.port, NULL, NULL, http_access, a,
                            MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)a->cfg.http_threads,
                            MHD_OPTION_NOTIFY_COMPLETED, http_completed, a,
                            MHD_OPTION_URI_LOG_CALLBACK, http_uri_cb, a,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->cfg.idle_timeout,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->cfg.max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)a->cfg.max_connections_per_ip,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                            MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!a->mhd) return sb_fail(err, SB_EIO, "cannot listen on %s (address in use or not permitted?)", a->cfg.listen);
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
  if (di) a->cfg.port = di->port;
  return SB_OK;
}

long http_drain(app *a, double timeout_s) {
  double end = clock_mono_s() + timeout_s;
  long n;
  while ((n = __atomic_load_n(&a->inflight, __ATOMIC_RELAXED)) > 0 && clock_mono_s() < end) usleep(10000);
  return n;
}

void http_stop(app *a) {
  if (a->mhd) MHD_stop_daemon(a->mhd);
  a->mhd = NULL;
}
