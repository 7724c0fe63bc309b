/* version.h: the one version string of sbida (the tools, the daemon's
 * /metrics and /openapi.json, and the sbida.version of model files). */
#ifndef SB_VERSION_H
#define SB_VERSION_H
#define SBIDA_VERSION "0.1.0"
#endif
