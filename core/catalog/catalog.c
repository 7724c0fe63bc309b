/* catalog.c: estimators by name (baselines) or file (models); see catalog.h. */
#include "catalog/catalog.h"

#include <string.h>

#include "baselines/baselines.h"
#include "kinds/kinds.h"

static int open_etkf(estimator **out, sim *s, sb_error *err) { return est_etkf_create(out, s, 0, err); }
static int open_letkf(estimator **out, sim *s, sb_error *err) { return est_etkf_create(out, s, 1, err); }

static const struct {
  const char *name;
  int (*create)(estimator **out, sim *s, sb_error *err); /* takes ownership of s */
} baselines[] = {{"etkf", open_etkf}, {"letkf", open_letkf}, {"pf", est_pf_create}};
#define N_BASELINES ((int)(sizeof baselines / sizeof baselines[0]))

const char *catalog_baseline_at(int i) { return i >= 0 && i < N_BASELINES ? baselines[i].name : NULL; }

int catalog_is_model_file(const char *spec) {
  size_t len = spec ? strlen(spec) : 0;
  return len > 12 && !strcmp(spec + len - 12, ".safetensors");
}

int est_open(estimator **out, const char *spec, const char *preset, int N, sb_error *err) {
  *out = NULL;
  if (!spec || !*spec) return sb_fail(err, SB_EINVAL, "no estimator given (etkf, letkf, pf or a model file)");
  if (catalog_is_model_file(spec)) {
    int rc = model_open_estimator(out, spec, err);
    if (rc) return rc;
    /* a model that runs at any state size (local-score) serves N */
    if (N > 0 && (*out)->dim_max > 0 && (!preset || !*preset || !strcmp(preset, (*out)->sim->preset)) &&
        (rc = est_set_dim(*out, N, err))) {
      est_free(*out);
      *out = NULL;
      return rc;
    }
    if (preset && *preset && (strcmp(preset, (*out)->sim->preset) || (N > 0 && N != (*out)->sim->dim))) {
      rc = sb_fail(err, SB_EINVAL, "model %s is for %s with %d nodes, not %s", spec, (*out)->sim->preset,
                   (*out)->sim->dim, preset);
      est_free(*out);
      *out = NULL;
    }
    return rc;
  }
  for (int i = 0; i < N_BASELINES; i++)
    if (!strcmp(spec, baselines[i].name)) {
      sim *s;
      int rc = sim_create(&s, preset, N, err);
      if (rc) return rc;
      return baselines[i].create(out, s, err);
    }
  return sb_fail(err, SB_EINVAL, "unknown estimator '%s' (etkf, letkf, pf or a .safetensors model file)", spec);
}
