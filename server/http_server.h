/* http_server.h: libmicrohttpd glue. One http_req per request carries the
 * capped body buffer and the routing result; handlers answer through the
 * http_reply_* helpers, which also count the answer in the metrics.
 *
 * Handlers return MHD_YES/MHD_NO (enum MHD_Result) as libmicrohttpd wants. */
#ifndef SB_HTTP_SERVER_H
#define SB_HTTP_SERVER_H

#include <jansson.h>
#include <microhttpd.h>

#include "app.h"
#include "dynbuf.h"

typedef struct http_req {
  app *app;
  struct MHD_Connection *conn;
  const char *method, *url;
  int route;            /* index in the route table, -1 = none */
  char param[160];      /* {id} or {name} from the path */
  dynbuf body;
  int too_large;
  int started;          /* handler already ran once (suspended requests) */
  int suspended;
  char wait_id[40];     /* job a suspended request waits for */
  double t0;
  /* set by the URI callback from the raw request line, before MHD decodes it */
  int bad_path;         /* %00 or a control character in the path */
  int fd;               /* the connection's socket (request deadline) */
  int receiving;        /* in the deadline list: the request has not fully arrived */
  struct http_req *dl_prev, *dl_next;
  size_t body_budget;   /* bytes of --max-body-total this request holds */
} http_req;

int http_start(app *a, sb_error *err);
/* Waits up to timeout_s for requests in flight (e.g. resumed waiters) to
 * finish sending their answers; returns how many were still in flight. */
long http_drain(app *a, double timeout_s);
void http_stop(app *a);
/* Closes (shutdown) connections whose request has not fully arrived within
 * --request-timeout; called every tick from the loop thread. */
void http_deadline_tick(app *a);
/* q-value (0..1) the Accept header value gives the media type (the most
 * specific of exact type, type/ wildcard and wildcard); -1 when accept is
 * NULL (no preference). *named (may be NULL): the type is named exactly. */
double http_accept_q(const char *accept, const char *type, int *named);

/* body (stolen) as JSON; NULL is a 500 problem (a builder out of memory),
 * except with 204 (no content). location: a Location header or NULL. */
enum MHD_Result http_reply_json(http_req *q, int status, json_t *body, const char *location);
/* problem (stolen) may carry extra header: name/value or NULLs. */
enum MHD_Result http_reply_problem(http_req *q, json_t *problem, const char *hname, const char *hvalue);
enum MHD_Result http_reply_buffer(http_req *q, int status, const char *ctype, void *data, size_t len,
                                  enum MHD_ResponseMemoryMode mode);
/* 200 with a constant buffer (the web console's files) and browser security headers. */
enum MHD_Result http_reply_static(http_req *q, const char *ctype, const char *data, size_t len);
const char *http_header(http_req *q, const char *name);
const char *http_query(http_req *q, const char *name);

#endif
