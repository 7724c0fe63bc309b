#include <string.h>

#include "est_baseline.h"
#include "est_score.h"

int est_open(estimator **out, const char *spec, const char *preset, int N, sb_error *err) {
  *out = NULL;
  if (!spec || !*spec) return sb_fail(err, SB_EINVAL, "no estimator given (etkf, letkf, pf or a model file)");
  size_t len = strlen(spec);
  if (len > 12 && !strcmp(spec + len - 12, ".safetensors")) {
    /* a model file carries its own preset; preset/N only have to agree */
    int rc = est_score_open(out, spec, err);
    if (rc) return rc;
    if (preset && *preset && (strcmp(preset, (*out)->sim->preset) || (N > 0 && N != (*out)->sim->dim))) {
      rc = sb_fail(err, SB_EINVAL, "model %s is for %s with %d nodes, not %s", spec, (*out)->sim->preset,
                   (*out)->sim->dim, preset);
      est_free(*out);
      *out = NULL;
    }
    return rc;
  }
  int kind = !strcmp(spec, "etkf") ? 0 : !strcmp(spec, "letkf") ? 1 : !strcmp(spec, "pf") ? 2 : -1;
  if (kind < 0)
    return sb_fail(err, SB_EINVAL, "unknown estimator '%s' (etkf, letkf, pf or a .safetensors model file)", spec);
  sim *s;
  int rc = sim_create(&s, preset, N, err);
  if (rc) return rc;
  if (kind == 2) return est_pf_create(out, s, err);
  return est_etkf_create(out, s, kind, err);
}
