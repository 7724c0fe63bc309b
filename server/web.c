#include "web.h"

#include <string.h>

#include "http_routes.h"
#include "problem.h"

#define WEB_SYM(sym) extern const char sym[], sym##_end[];
WEB_SYM(sbida_web_index_html)
WEB_SYM(sbida_web_app_js)
WEB_SYM(sbida_web_app_css)
WEB_SYM(sbida_web_uplot_js)
WEB_SYM(sbida_web_uplot_css)
WEB_SYM(sbida_web_uplot_license)

static web_asset web_assets[] = {
    {"", "text/html; charset=utf-8", sbida_web_index_html, 0},
    {"app.js", "text/javascript; charset=utf-8", sbida_web_app_js, 0},
    {"app.css", "text/css; charset=utf-8", sbida_web_app_css, 0},
    {"uplot.js", "text/javascript; charset=utf-8", sbida_web_uplot_js, 0},
    {"uplot.css", "text/css; charset=utf-8", sbida_web_uplot_css, 0},
    {"uplot-LICENSE.txt", "text/plain; charset=utf-8", sbida_web_uplot_license, 0},
};

static const char *const web_ends[] = {sbida_web_index_html_end, sbida_web_app_js_end, sbida_web_app_css_end,
                                       sbida_web_uplot_js_end,   sbida_web_uplot_css_end, sbida_web_uplot_license_end};

const web_asset *web_find(const char *name) {
  for (size_t i = 0; i < sizeof web_assets / sizeof web_assets[0]; i++) {
    if (strcmp(web_assets[i].name, name)) continue;
    /* the table is constant after this store of the same value; racing
     * first calls write identical lengths */
    __atomic_store_n(&web_assets[i].len, (size_t)(web_ends[i] - web_assets[i].data), __ATOMIC_RELAXED);
    return &web_assets[i];
  }
  return NULL;
}

static enum MHD_Result web_serve(http_req *q, const char *name) {
  const web_asset *w = web_find(name);
  if (!w)
    return http_reply_problem(q, problem_new(PROB_NOT_FOUND, 0, "no console file %.100s", name), NULL, NULL);
  return http_reply_static(q, w->ctype, w->data, __atomic_load_n(&w->len, __ATOMIC_RELAXED));
}

enum MHD_Result api_web_index(http_req *q) {
  return web_serve(q, "");
}

enum MHD_Result api_web_asset(http_req *q) {
  return web_serve(q, q->param);
}
