/* web.h: the web console served by sbidad at / (files embedded at build
 * time by web_embed.c). The files are public: they hold no data, and the
 * page calls the API with the same bearer tokens as any client (it asks for
 * one when the API answers 401). */
#ifndef SB_WEB_H
#define SB_WEB_H

#include <stddef.h>

typedef struct web_asset {
  const char *name;   /* "" for /, else the file name under /ui/ */
  const char *ctype;
  const char *data;
  size_t len;
} web_asset;

/* The asset served at /ui/NAME ("" = the page at /), or NULL. */
const web_asset *web_find(const char *name);

#endif
