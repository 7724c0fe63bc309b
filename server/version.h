/* version.h: the daemon's version, reported by /metrics (sbida_build_info)
 * and /openapi.json's info.version. */
#ifndef SB_VERSION_H
#define SB_VERSION_H
#define SBIDA_VERSION "0.1.0"
#endif
