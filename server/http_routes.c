#include "http_routes.h"

#include <stdio.h>
#include <string.h>

const http_route http_routes[] = {
    {"/v1/assimilations", "/v1/assimilations", api_assim_list, api_assim_create, NULL, 1, 0, 0},
    {"/v1/assimilations/*", "/v1/assimilations/{id}", api_assim_get, NULL, api_assim_delete, 0, 0, 0},
    {"/v1/assimilations/*/samples", "/v1/assimilations/{id}/samples", api_assim_samples, NULL, NULL, 0, 0, 0},
    {"/v1/assimilations/*/cancel", "/v1/assimilations/{id}/cancel", NULL, api_assim_cancel, NULL, 0, 0, 0},
    {"/v1/forecasts", "/v1/forecasts", NULL, api_forecast_create, NULL, 1, 0, 0},
    {"/v1/streams", "/v1/streams", api_stream_list, api_stream_create, NULL, 1, 0, 0},
    {"/v1/streams/*", "/v1/streams/{id}", api_stream_get, NULL, api_stream_delete, 0, 0, 0},
    {"/v1/streams/*/cycles", "/v1/streams/{id}/cycles", api_cycle_list, api_cycle_create, NULL, 1, 0, 0},
    {"/v1/estimators", "/v1/estimators", api_est_list, NULL, NULL, 0, 0, 0},
    {"/v1/estimators/*", "/v1/estimators/{name}", api_est_get, NULL, NULL, 0, 0, 0},
    {"/v1/estimators:reload", "/v1/estimators:reload", NULL, api_est_reload, NULL, 0, 0, 0},
    {"/v1/health/live", "/v1/health/live", api_health_live, NULL, NULL, 0, 1, 1},
    {"/v1/health/ready", "/v1/health/ready", api_health_ready, NULL, NULL, 0, 1, 1},
    {"/metrics", "/metrics", api_metrics, NULL, NULL, 0, 0, 1},
    {"/", "/", api_web_index, NULL, NULL, 0, 1, 0},
    {"/ui/*", "/ui/{file}", api_web_asset, NULL, NULL, 0, 1, 0},
    {"/openapi.json", "/openapi.json", api_openapi, NULL, NULL, 0, 1, 1},
    {NULL, "other", NULL, NULL, NULL, 0, 1, 0},
};
const int http_n_routes = sizeof http_routes / sizeof http_routes[0];


int http_route_match(const char *path, char *param, size_t psize) {
  for (int r = 0; http_routes[r].pattern; r++) {
    const char *p = http_routes[r].pattern, *u = path;
    param[0] = 0;
    int ok = 1;
    while (ok && *p) {
      if (*p == '*') {
        const char *end = strchr(u, '/');
        size_t n = end ? (size_t)(end - u) : strlen(u);
        if (n == 0 || n >= psize) ok = 0;
        else {
          memcpy(param, u, n);
          param[n] = 0;
          u += n;
          p++;
        }
      } else if (*p == *u) {
        p++, u++;
      } else {
        ok = 0;
      }
    }
    if (ok && *u == 0) return r;
  }
  return -1;
}

void http_route_allow(int route, char *buf, size_t size) {
  const http_route *r = &http_routes[route];
  snprintf(buf, size, "%s%s%s", r->get ? "GET, HEAD" : "", r->post ? (r->get ? ", POST" : "POST") : "",
           r->del ? ((r->get || r->post) ? ", DELETE" : "DELETE") : "");
}
