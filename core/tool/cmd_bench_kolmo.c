/* cmd_bench_kolmo.c: `sbida bench kolmogorov`: the C Kolmogorov-flow solver against the
 * numpy implementation of the same scheme on the same grid (tests/data/kolmogorov_ref.py,
 * run by tests/bench/kolmogorov_numpy.py) in one run, on the same initial states, one
 * thread each. Both advance B states by T intervals with 10 IF-RK4 steps each on the
 * 64^2 grid; the C result is checked against numpy's. Also reports the preset's cost
 * (steps adapted to the speed of each state). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool/cmd.h"
#include "sim/kolmogorov.h"
#include "util/cli.h"
#include "util/npy.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void usage(FILE *f) {
  fprintf(f, "usage: sbida bench kolmogorov [--trajectories B] [--intervals T] [--json] [--no-numpy]\n"
             "  B states (default 16, 1..256) advanced T intervals of 0.2 (default 10, 1..1000) by the C\n"
             "  solver and by /usr/bin/python3 tests/bench/kolmogorov_numpy.py (run from the repo root),\n"
             "  64^2 grid, 10 IF-RK4 steps per interval, one thread each; speedup = numpy / C time.\n");
}

int bench_kolmogorov(int argc, char **argv) {
  long B = 16, T = 10;
  int json = 0, no_numpy = 0, first;
  const cli_flag flags[] = {{"trajectories", CLI_LONG, &B, 1, 256, NULL},
                            {"intervals", CLI_LONG, &T, 1, 1000, NULL},
                            {"json", CLI_BOOL, &json, 0, 0, NULL},
                            {"no-numpy", CLI_BOOL, &no_numpy, 0, 0, NULL},
                            {NULL, 0, NULL, 0, 0, NULL}};
  int rc0 = cli_parse(argc, argv, "sbida bench kolmogorov", flags, usage, 0, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  const int numpy = !no_numpy;
  kf_config c;
  kf_config_default(&c);
  c.cfl = 0; /* fixed 10 steps per interval, as the numpy side */
  sb_error err = {0};
  kf_solver *fixed = NULL, *preset = NULL;
  const size_t D = 2 * (size_t)c.m * c.m, n = (size_t)B * D;
  double *x0 = malloc(sizeof(double) * n), *x = malloc(sizeof(double) * n);
  int status = 1;
  char in_path[] = "/tmp/sbida-kf-bench-XXXXXX";
  int fd = -1;
  if (!x0 || !x) {
    fprintf(stderr, "bench kolmogorov: out of memory\n");
    goto done;
  }
  if (kf_create(&fixed, &c, &err)) goto fail;
  kf_config_default(&c);
  if (kf_create(&preset, &c, &err)) goto fail;
  /* states near the attractor: random fields after 20 intervals (not timed) */
  if (kf_init_random(preset, x0, (size_t)B, 99, 0, &err) || kf_advance(preset, x0, (size_t)B, 20, &err)) goto fail;

  double tc[2] = {-1, -1}, tp = -1, tn = -1, diff = -1;
  for (int r = 0; r < 2; r++) {
    if (r == 1 && !numpy) break;
    memcpy(x, x0, sizeof(double) * n);
    double t0 = now();
    if (kf_advance(fixed, x, (size_t)B, T, &err)) goto fail;
    tc[r] = now() - t0;
    if (r == 0 && numpy) {
      /* numpy on the same states, between two C measurements (the machine is shared) */
      fd = mkstemp(in_path);
      if (fd < 0) {
        fprintf(stderr, "bench kolmogorov: cannot create a temporary file\n");
        goto done;
      }
      close(fd);
      size_t shape[4] = {(size_t)B, 2, (size_t)c.m, (size_t)c.m};
      if (npy_write(in_path, NPY_F64, 4, shape, x0, &err)) goto fail;
      char out_path[64], cmd[512];
      snprintf(out_path, sizeof out_path, "%s.out.npy", in_path);
      snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/bench/kolmogorov_numpy.py %s %s %ld 2>&1", in_path,
               out_path, T);
      FILE *p = access("tests/bench/kolmogorov_numpy.py", R_OK) ? NULL : popen(cmd, "r");
      char line[256] = "";
      if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = 0;
        pclose(p);
      }
      char *a = strstr(line, "\"numpy_s\":");
      npy_array y = {0};
      if (a && !npy_read(out_path, &y, &err) && !npy_to_f64(&y, &err) && y.count == n) {
        tn = atof(a + 10);
        diff = 0;
        for (size_t i = 0; i < n; i++) {
          double d = x[i] - ((double *)y.data)[i];
          if (d < 0) d = -d;
          if (d > diff) diff = d;
        }
      } else {
        fprintf(stderr, "bench kolmogorov: the numpy side failed (%s)\n", line[0] ? line : "no output");
      }
      npy_free(&y);
      unlink(out_path);
      unlink(in_path);
    }
  }
  memcpy(x, x0, sizeof(double) * n);
  double t0 = now();
  if (kf_advance(preset, x, (size_t)B, T, &err)) goto fail;
  tp = now() - t0;
  double c_s = tc[1] > 0 ? 0.5 * (tc[0] + tc[1]) : tc[0];
  double per = c_s / (double)T, per_traj_ms = 1e3 * per / (double)B;
  char ns[32] = "null", sp[32] = "null", df[32] = "null", c2[32] = "null";
  if (tc[1] > 0) snprintf(c2, sizeof c2, "%.4f", tc[1]);
  if (tn > 0) {
    snprintf(ns, sizeof ns, "%.4f", tn / (double)T);
    snprintf(sp, sizeof sp, "%.2f", tn / c_s);
    snprintf(df, sizeof df, "%.2e", diff);
  }
  if (json)
    printf("{\"bench\": \"kolmogorov\", \"grid\": 64, \"state\": [2, 32, 32], \"trajectories\": %ld, "
           "\"intervals\": %ld, \"steps_per_interval\": 10, \"c_s_per_interval\": %.5f, "
           "\"c_ms_per_interval_per_trajectory\": %.3f, \"c_s_before_after\": [%.4f, %s], "
           "\"numpy_s_per_interval\": %s, \"speedup\": %s, \"max_abs_diff_c_numpy\": %s, "
           "\"preset_ms_per_interval_per_trajectory\": %.3f}\n",
           B, T, per, per_traj_ms, tc[0], c2, ns, sp, df, 1e3 * tp / (double)T / (double)B);
  else
    printf("kolmogorov bench: %ld states, %ld intervals, 64^2 grid, 10 steps per interval\n"
           "  C %.4f s per interval (%.3f ms per state), numpy %s s, speedup %s, max |C - numpy| %s\n"
           "  preset (steps adapted to each state's speed): %.3f ms per interval per state\n",
           B, T, per, per_traj_ms, ns, sp, df, 1e3 * tp / (double)T / (double)B);
  status = 0;
  goto done;
fail:
  fprintf(stderr, "bench kolmogorov: %s\n", err.msg);
done:
  free(x0);
  free(x);
  kf_free(fixed);
  kf_free(preset);
  return status;
}
