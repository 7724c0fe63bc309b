/* sbida simulate: trajectories (and observations) of a preset to .npy. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/cmd.h"
#include "util/cli.h"
#include "util/npy.h"
#include "obs/obs.h"
#include "sim/sim.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: sbida simulate --preset NAME --trajectories B --length T --seed S --out FILE.npy\n"
          "                      [--N N] [--operator JSON --noise-std STD --obs-out FILE.npy]\n\n"
          "Simulates B independent trajectories of T states each and writes them as float32\n"
          "[B, T, state shape]: [B, T, N] for Lorenz96 and linear-gauss, [B, T, 2, 32, 32] (velocity\n"
          "u, v) for the Kolmogorov flow. State 0 is a draw from the preset's initial distribution\n"
          "(l96-sakov: on the attractor after 1000 spin-up steps; l96-thesis: N(0, I); kolmogorov: on\n"
          "the attractor after 64 intervals of spin-up from a random smooth field; kolmogorov-t: the\n"
          "random field; linear-gauss: N(0, Sigma0)); state k is k observation intervals later\n"
          "(Lorenz96 0.05, Kolmogorov 0.2 model time units; linear-gauss: one shift by a node).\n"
          "Trajectory b uses RNG stream b of the seed, so the same seed gives the same trajectories on\n"
          "any thread count (Lorenz96: on any machine; Kolmogorov: with the same FFTW build and CPU,\n"
          "as FFTW's SIMD code may differ in the last bits elsewhere).\n\n"
          "  --preset NAME        l96-sakov (N = 40), l96-thesis (N = 32, any multiple of 4 in 8..256),\n"
          "                       kolmogorov (2 x 32 x 32, stationary), kolmogorov-t (time index 0..127),\n"
          "                       linear-gauss (N = 16, 4..1024): a stationary Gaussian field shifted one\n"
          "                       node per interval, whose posterior is known exactly (core/sim/lingauss.h)\n"
          "  --N N                number of nodes (default: the preset's)\n"
          "  --trajectories B     number of trajectories, 1..1000000\n"
          "  --length T           states per trajectory, 1..1000000\n"
          "  --seed S             non-negative integer seed\n"
          "  --out FILE           states, float32 .npy [B, T, N] or [B, T, C, H, W]\n"
          "  --operator JSON      observation operator, e.g. '{\"type\":\"subsample\",\"stride\":2}'\n"
          "                       (identity, subsample, stations, random_stations, kernel_stations, coarsen,\n"
          "                       vorticity, dense; 2D forms in README)\n"
          "  --noise-std STD      observation noise std: a number or a JSON array, one per observation\n"
          "  --obs-out FILE       observations y_t = A x_t + noise, float32 .npy [B, T, n_obs]\n"
          "  --operator-out FILE  write the operator's full JSON (e.g. kernel station positions)\n"
          "  -h, --help           this text\n");
}

int cmd_simulate(int argc, char **argv) {
  const char *preset = NULL, *out = NULL, *op_text = NULL, *noise_text = NULL, *obs_out = NULL, *op_out = NULL;
  long N = 0, B = -1, T = -1, seed = -1;
  const cli_flag flags[] = {
      {"preset", CLI_STR, &preset, 0, 0, NULL},          {"N", CLI_LONG, &N, 4, 1024, NULL},
      {"trajectories", CLI_LONG, &B, 1, 1000000, NULL},  {"length", CLI_LONG, &T, 1, 1000000, NULL},
      {"seed", CLI_LONG, &seed, 0, 9e18, NULL},          {"out", CLI_STR, &out, 0, 0, NULL},
      {"operator", CLI_STR, &op_text, 0, 0, NULL},       {"noise-std", CLI_STR, &noise_text, 0, 0, NULL},
      {"obs-out", CLI_STR, &obs_out, 0, 0, NULL},        {"operator-out", CLI_STR, &op_out, 0, 0, NULL},
      {NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida simulate", flags, usage, 0, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  if (!preset || !out || B < 0 || T < 0 || seed < 0) {
    fprintf(stderr, "sbida simulate: --preset, --trajectories, --length, --seed and --out are required (see --help)\n");
    return 2;
  }
  if ((op_text != NULL) != (obs_out != NULL) || (noise_text && !op_text)) {
    fprintf(stderr, "sbida simulate: --operator, --noise-std and --obs-out go together\n");
    return 2;
  }
  sb_error err = {0};
  sim *s = NULL;
  obs_op *op = NULL;
  obs_noise nz = {0};
  double *x = NULL, *traj = NULL, *y = NULL;
  float *f = NULL;
  int status = 1;
  if (sim_create(&s, preset, (int)N, &err)) {
    fprintf(stderr, "sbida simulate: %s\n", err.msg);
    return 2;
  }
  if ((double)B * (double)T * s->dim > 5e8) {
    fprintf(stderr, "sbida simulate: %ld x %ld states of %d values is too large for one file (limit 5e8 values)\n", B,
            T, s->dim);
    status = 2;
    goto done;
  }
  if (T - 1 > s->t_max) {
    fprintf(stderr, "sbida simulate: %s supports time indices up to %ld, so --length at most %ld\n", preset,
            s->t_max, s->t_max + 1);
    status = 2;
    goto done;
  }
  if (op_text) {
    if (obs_from_string(&op, op_text, s->channels, s->height, s->width, &err)) {
      fprintf(stderr, "sbida simulate: --operator: %s\n", err.msg);
      status = 2;
      goto done;
    }
    json_error_t je;
    json_t *jn = json_loads(noise_text ? noise_text : "1.0", JSON_DECODE_ANY, &je);
    int rc = jn ? obs_noise_from_json(&nz, jn, op->n_obs, &err) : sb_fail(&err, SB_EINVAL, "not a number or JSON array");
    json_decref(jn);
    if (rc) {
      fprintf(stderr, "sbida simulate: --noise-std: %s\n", err.msg);
      status = 2;
      goto done;
    }
  }
  int D = s->dim;
  size_t nstates = (size_t)B * (size_t)T;
  x = malloc(sizeof(double) * (size_t)B * D);
  traj = malloc(sizeof(double) * nstates * D);
  if (!x || !traj) {
    fprintf(stderr, "sbida simulate: out of memory\n");
    goto done;
  }
  if (s->init(s, x, (size_t)B, (uint64_t)seed, 0, &err)) goto fail;
  for (long t = 0; t < T; t++) {
    if (t > 0 && s->advance(s, x, (size_t)B, 1, &err)) goto fail;
    for (long b = 0; b < B; b++) memcpy(traj + ((size_t)b * T + t) * D, x + (size_t)b * D, sizeof(double) * D);
  }
  f = malloc(sizeof(float) * nstates * D);
  if (!f) goto done;
  for (size_t i = 0; i < nstates * D; i++) f[i] = (float)traj[i];
  size_t shape[5] = {(size_t)B, (size_t)T};
  int sdims = sim_state_shape(s, shape + 2);
  if (npy_write(out, NPY_F32, 2 + sdims, shape, f, &err)) goto fail;
  if (op) {
    y = malloc(sizeof(double) * nstates * op->n_obs);
    float *fy = realloc(f, sizeof(float) * nstates * (op->n_obs > D ? op->n_obs : D));
    if (!y || !fy) goto done;
    f = fy;
    obs_apply(op, traj, y, nstates);
    /* noise streams start far above the trajectory streams */
    obs_add_noise(&nz, y, nstates, (uint64_t)seed, (uint64_t)1 << 40);
    for (size_t i = 0; i < nstates * op->n_obs; i++) f[i] = (float)y[i];
    size_t yshape[3] = {(size_t)B, (size_t)T, (size_t)op->n_obs};
    if (npy_write(obs_out, NPY_F32, 3, yshape, f, &err)) goto fail;
    if (op_out) {
      json_t *j = obs_to_json(op);
      int wrc = json_dump_file(j, op_out, JSON_INDENT(1));
      json_decref(j);
      if (wrc) {
        sb_fail(&err, SB_EIO, "cannot write %s", op_out);
        goto fail;
      }
    }
  }
  status = 0;
  goto done;
fail:
  fprintf(stderr, "sbida simulate: %s\n", err.msg);
done:
  free(x);
  free(traj);
  free(y);
  free(f);
  obs_free(op);
  obs_noise_free(&nz);
  sim_free(s);
  return status;
}
