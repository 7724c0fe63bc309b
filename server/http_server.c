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
              json_pack("{s:s, s:s, s:i, s:f}", "method", q->method, "path", q->url, "status", status, "ms",
                        1e3 * (clock_mono_s() - q->t0)));
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
  return http_reply_json_h(q, status, body, "application/json", location ? "Location" : NULL, location, NULL, NULL);
}

enum MHD_Result http_reply_problem(http_req *q, json_t *problem, const char *hname, const char *hvalue) {
  int status = (int)json_integer_value(json_object_get(problem, "status"));
  if (status < 400 || status > 599) status = 500;
  if (q->url) json_object_set_new(problem, "instance", json_string(q->url));
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

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                   const char *version, const char *upload_data, size_t *upload_data_size,
                                   void **con_cls) {
  (void)version;
  app *a = cls;
  http_req *q = *con_cls;
  if (!q) {
    q = calloc(1, sizeof *q);
    if (!q) return MHD_NO;
    *con_cls = q;
    __atomic_fetch_add(&a->inflight, 1, __ATOMIC_RELAXED);
    q->app = a;
    q->conn = conn;
    q->method = method;
    q->url = url;
    q->t0 = clock_mono_s();
    dynbuf_init(&q->body, (size_t)a->cfg.max_body_bytes);
    q->route = http_route_match(url, q->param, sizeof q->param);
    if (q->route < 0)
      return http_reply_problem(q, problem_new(PROB_NOT_FOUND, 0, "no resource at %.200s; the API lives under /v1 "
                                               "(see /openapi.json)", url), NULL, NULL);
    const http_route *r = &http_routes[q->route];
    if (!r->public && !http_token_ok(a, http_header(q, MHD_HTTP_HEADER_AUTHORIZATION)))
      return http_reply_problem(q, problem_new(PROB_UNAUTHORIZED, 0, "send 'Authorization: Bearer <token>' with a "
                                               "token from the daemon's tokens file"),
                                "WWW-Authenticate", "Bearer realm=\"sbida\"");
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    http_handler h = is_get ? r->get : !strcmp(method, "POST") ? r->post : !strcmp(method, "DELETE") ? r->del : NULL;
    if (!h) {
      char allow[64];
      http_route_allow(q->route, allow, sizeof allow);
      return http_reply_problem(q, problem_new(PROB_METHOD, 0, "%.16s is not allowed on %.200s; allowed: %s", method,
                                               url, allow), "Allow", allow);
    }
    if (!strcmp(method, "POST") && r->json_body) {
      if (!http_is_json_type(http_header(q, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return http_reply_problem(q, problem_new(PROB_MEDIA_TYPE, 0, "send the body as JSON with 'Content-Type: "
                                                 "application/json'"), "Accept-Post", "application/json");
      const char *cl = http_header(q, MHD_HTTP_HEADER_CONTENT_LENGTH);
      if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end || n > (unsigned long long)a->cfg.max_body_bytes)
          return http_reply_problem(q, problem_new(PROB_TOO_LARGE, 0, "the body has %s bytes, the limit is %ld "
                                                   "(--max-body-bytes); send fewer observations per request", cl,
                                                   a->cfg.max_body_bytes), NULL, NULL);
      }
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (!q->too_large && dynbuf_add(&q->body, upload_data, *upload_data_size)) {
      q->too_large = 1;
      dynbuf_free(&q->body);
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
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
  __atomic_fetch_sub(&((app *)cls)->inflight, 1, __ATOMIC_RELAXED);
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
  log_event(LOG_WARN, "libmicrohttpd", json_pack("{s:s}", "message", buf));
}

int http_start(app *a, sb_error *err) {
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
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                            MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!a->mhd) return sb_fail(err, SB_EIO, "cannot listen on %s (address in use or not permitted?)", a->cfg.listen);
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
  if (di) a->cfg.port = di->port;
  return SB_OK;
}

void http_quiesce(app *a) {
  if (!a->mhd) return;
  MHD_socket s = MHD_quiesce_daemon(a->mhd);
  if (s != MHD_INVALID_SOCKET) close(s);
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
