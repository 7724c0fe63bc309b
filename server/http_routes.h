/* http_routes.h: the route table (path pattern -> handler per method).
 * "*" in a pattern matches one path segment, copied into http_req.param. */
#ifndef SB_HTTP_ROUTES_H
#define SB_HTTP_ROUTES_H

#include "http_server.h"

typedef enum MHD_Result (*http_handler)(http_req *q);

typedef struct http_route {
  const char *pattern;
  const char *label;    /* metrics label, e.g. /v1/assimilations/{id} */
  http_handler get, post, del;
  int json_body;        /* POST needs an application/json body */
  int public;           /* answered without a bearer token */
  int quiet;            /* successful answers logged at debug (probes, scrapes) */
} http_route;

extern const http_route http_routes[];
extern const int http_n_routes;   /* the last entry, "other", matches nothing */

/* Index of the route matching path (no query string), or -1. */
int http_route_match(const char *path, char *param, size_t psize);
/* "GET, HEAD, POST" style list for the Allow header. */
void http_route_allow(int route, char *buf, size_t size);

/* handlers */
enum MHD_Result api_assim_create(http_req *q);
enum MHD_Result api_assim_list(http_req *q);
enum MHD_Result api_assim_get(http_req *q);
enum MHD_Result api_assim_delete(http_req *q);
enum MHD_Result api_assim_samples(http_req *q);
enum MHD_Result api_assim_cancel(http_req *q);
enum MHD_Result api_forecast_create(http_req *q);
enum MHD_Result api_stream_create(http_req *q);
enum MHD_Result api_stream_list(http_req *q);
enum MHD_Result api_stream_get(http_req *q);
enum MHD_Result api_stream_delete(http_req *q);
enum MHD_Result api_cycle_create(http_req *q);
enum MHD_Result api_cycle_list(http_req *q);
enum MHD_Result api_est_list(http_req *q);
enum MHD_Result api_est_get(http_req *q);
enum MHD_Result api_est_reload(http_req *q);
enum MHD_Result api_health_live(http_req *q);
enum MHD_Result api_health_ready(http_req *q);
enum MHD_Result api_metrics(http_req *q);
enum MHD_Result api_openapi(http_req *q);
enum MHD_Result api_web_index(http_req *q);
enum MHD_Result api_web_asset(http_req *q);

#endif
