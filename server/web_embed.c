/* web_embed.c: the web console's files (server/web/) compiled into the
 * daemon, so it serves them offline with no files to install. The Makefile
 * rebuilds this object when one of them changes (-MMD does not see .incbin).
 * Paths are relative to the repository root, where make runs the compiler. */
#define WEB_ASSET(sym, file)                                  \
  __asm__(".section .rodata\n"                                \
          ".global " #sym "\n"                                \
          ".type " #sym ", @object\n"                         \
          #sym ":\n"                                          \
          ".incbin \"" file "\"\n"                            \
          ".global " #sym "_end\n"                            \
          #sym "_end:\n"                                      \
          ".byte 0\n"                                         \
          ".text\n");

WEB_ASSET(sbida_web_index_html, "server/web/index.html")
WEB_ASSET(sbida_web_app_js, "server/web/app.js")
WEB_ASSET(sbida_web_app_css, "server/web/app.css")
WEB_ASSET(sbida_web_uplot_js, "server/web/vendor/uplot/uPlot.iife.min.js")
WEB_ASSET(sbida_web_uplot_css, "server/web/vendor/uplot/uPlot.min.css")
WEB_ASSET(sbida_web_uplot_license, "server/web/vendor/uplot/LICENSE")
