/* cmd_bench.c: `sbida bench nn`: the C nn engine against PyTorch on the same
 * network: by default the residual conv1d net (width 64, 6 blocks, N = 40,
 * 11 -> 1 channels, τ embedding), one training step (forward + backward +
 * AdamW) at batch 256 and inference at batch 4096; with --arch unet2d the 2D
 * U-Net sized for the Kolmogorov state (4 x 32 x 32 in, 2 out, widths
 * 64/128/256, 2 blocks per level, 2 mid blocks), training at batch 32 and
 * inference at batch 128, with a per-layer profile. The machine's sgemm peak
 * is measured in the same run. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool/cmd.h"
#include "util/cli.h"
#include "nn/nn_layers.h"
#include "nn/nn_model.h"
#include "nn/nn_optim.h"
#include "nn/nn_parallel.h"
#include "util/rng.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[n / 2];
}

/* best GFLOP/s of a large square sgemm with the current BLAS threads */
static double sgemm_peak(void) {
  int n = 2048;
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
        *c = malloc(sizeof(float) * n * n);
  if (!a || !b || !c) {
    free(a), free(b), free(c);
    return 0.0;
  }
  for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
  double best = 1e30;
  for (int r = 0; r < 4; r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double t = now() - t0;
    if (r > 0 && t < best) best = t;
  }
  free(a), free(b), free(c);
  return 2.0 * n * (double)n * n / best * 1e-9;
}

typedef struct mse_ctx {
  const float *target;
  int on;
} mse_ctx;

/* mean squared error over the whole batch; the slice writes its dout */
static double mse_slice(void *p, int b0, int B, int n_total, const float *out, float *dout) {
  mse_ctx *c = p;
  size_t n = (size_t)B * c->on;
  double l = nn_mse_loss(dout, out, c->target + (size_t)b0 * c->on, n, 1.0f);
  float scale = (float)B / (float)n_total; /* slice mean -> share of the batch mean */
  for (size_t i = 0; i < n; i++) dout[i] *= scale;
  return l * scale;
}

/* per-sample forward FLOPs of the convolutions (the GEMM work) */
static double fwd_flops(const nn_resnet_config *c) {
  double S = (double)c->h * c->w, k = 3.0 * (c->dims == 2 ? 3 : 1);
  double f = 2.0 * c->width * c->cin * k * S;                  /* in conv */
  f += c->blocks * 2 * (2.0 * c->width * c->width * k * S);    /* two convs per block */
  f += 2.0 * c->cout * c->width * k * S;                        /* out conv */
  return f;
}

static double loadavg(void) {
  double l = -1.0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1.0;
    fclose(f);
  }
  return l;
}

/* Median seconds of one training step (zero grads, forward, loss, backward,
 * AdamW) at batch BT and of one inference pass at batch BI, over reps. */
static int measure_c(nn_model *m, nn_workspace *wt, nn_workspace *wi, int T, int BT, int BI,
                     const float *x, const float *s, float *y, mse_ctx *mc, int reps,
                     double *train, double *infer, sb_error *err) {
  nn_adamw opt = nn_adamw_default();
  opt.lr = 1e-4f;
  double tt[1002], ti[1002], loss = 0.0;
  int rc = 0;
  for (int k = 0; k < reps + 2 && !rc; k++) {
    double t0 = now();
    nn_zero_grad(m);
    rc = nn_grad_mt(m, wt, T, x, s, BT, mse_slice, mc, NULL, &loss, err);
    if (!rc && nn_adamw_step(m, &opt, opt.lr, NULL) < 0)
      rc = sb_fail(err, SB_ENOMEM, "out of memory for Adam moments");
    tt[k] = now() - t0;
  }
  int ireps = reps / 2 > 3 ? reps / 2 : 3;
  for (int k = 0; k < ireps + 1 && !rc; k++) {
    double t0 = now();
    rc = nn_infer_mt(m, wi, T, x, s, BI, y, err);
    ti[k] = now() - t0;
  }
  if (rc) return rc;
  *train = median(tt + 2, reps);
  *infer = median(ti + 1, ireps);
  return 0;
}

/* The per-layer profile of one training step and one inference pass (T
 * threads, each with its own profile, summed): per layer class its share of
 * the time, its GEMM rate per thread and that rate as a fraction of the
 * per-thread sgemm peak. Returns the forward FLOPs per sample. */
static double profile_c(nn_model *m, nn_workspace *wt, nn_workspace *wi, int T, int BT, int BI,
                        const float *x, const float *s, float *y, mse_ctx *mc, double peak,
                        int json, sb_error *err) {
  nn_profile pt[64], pi[64];
  memset(pt, 0, sizeof pt), memset(pi, 0, sizeof pi);
  double loss;
  for (int t = 0; t < T; t++) wt[t].prof = &pt[t], wi[t].prof = &pi[t];
  nn_zero_grad(m);
  int rc = nn_grad_mt(m, wt, T, x, s, BT, mse_slice, mc, NULL, &loss, err);
  if (!rc) rc = nn_infer_mt(m, wi, T, x, s, BI, y, err);
  for (int t = 0; t < T; t++) wt[t].prof = wi[t].prof = NULL;
  if (rc) return -1;
  nn_profile st = {0}, si = {0};
  for (int t = 0; t < T; t++)
    for (int k = 0; k < NN_PROF_N; k++) {
      st.fwd_s[k] += pt[t].fwd_s[k], st.bwd_s[k] += pt[t].bwd_s[k];
      st.fwd_flop[k] += pt[t].fwd_flop[k], st.bwd_flop[k] += pt[t].bwd_flop[k];
      si.fwd_s[k] += pi[t].fwd_s[k], si.fwd_flop[k] += pi[t].fwd_flop[k];
    }
  double tot_t = 0, tot_i = 0, ff = 0;
  for (int k = 0; k < NN_PROF_N; k++) {
    tot_t += st.fwd_s[k] + st.bwd_s[k];
    tot_i += si.fwd_s[k];
    ff += si.fwd_flop[k];
  }
  /* per-thread sgemm peak, GFLOP/s: one BLAS thread, as the workers run */
  int blas = openblas_get_num_threads();
  openblas_set_num_threads(1);
  double pk = sgemm_peak();
  openblas_set_num_threads(blas);
  (void)peak;
  if (json) printf("{\"bench\": \"nn-profile\", \"threads\": %d, \"layers\": [", T);
  else
    printf("per-layer profile (%d threads; time summed over threads; GEMM rate per thread vs "
           "the 1-thread sgemm peak %.1f GFLOP/s)\n  %-16s %22s %22s %22s\n", T, pk, "layer",
           "train fwd", "train bwd", "inference");
  for (int k = 0; k < NN_PROF_N; k++) {
    double r[3] = {st.fwd_s[k] > 0 ? st.fwd_flop[k] / st.fwd_s[k] * 1e-9 : 0,
                   st.bwd_s[k] > 0 ? st.bwd_flop[k] / st.bwd_s[k] * 1e-9 : 0,
                   si.fwd_s[k] > 0 ? si.fwd_flop[k] / si.fwd_s[k] * 1e-9 : 0};
    double sh[3] = {st.fwd_s[k] / tot_t, st.bwd_s[k] / tot_t, si.fwd_s[k] / tot_i};
    if (json) {
      printf("%s{\"layer\": \"%s\", \"train_fwd_share\": %.4f, \"train_bwd_share\": %.4f, "
             "\"infer_share\": %.4f, \"train_fwd_gflops\": %.2f, \"train_bwd_gflops\": %.2f, "
             "\"infer_gflops\": %.2f, \"infer_peak_fraction\": %.3f, "
             "\"train_bwd_peak_fraction\": %.3f}",
             k ? ", " : "", nn_profile_names[k], sh[0], sh[1], sh[2], r[0], r[1], r[2],
             r[2] / pk, r[1] / pk);
    } else {
      char cell[3][64];
      for (int j = 0; j < 3; j++) {
        if (r[j] > 0)
          snprintf(cell[j], sizeof cell[j], "%5.1f%% %5.1f GF/s %3.0f%%", 100 * sh[j], r[j],
                   100 * r[j] / pk);
        else
          snprintf(cell[j], sizeof cell[j], "%5.1f%%", 100 * sh[j]);
      }
      printf("  %-16s %22s %22s %22s\n", nn_profile_names[k], cell[0], cell[1], cell[2]);
    }
  }
  if (json) printf("]}\n");
  return ff / BI;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: sbida bench nn [--arch resnet1d|unet2d] [--json] [--threads T] [--reps R]\n"
          "                      [--chunk C] [--no-torch] [--profile]\n"
          "       sbida bench sample --estimator SPEC [--samples S] [--threads T] ... (see --help)\n"
          "       sbida bench kolmogorov [--trajectories B] [--intervals T] [--json] (see --help)\n"
          "  --chunk: samples per inference pass of each thread's workspace (default 256;\n"
          "  unet2d: 32)\n"
          "  --profile: per-layer time and GEMM rate (unet2d only; always with --arch unet2d)\n"
          "  C engine vs PyTorch (/usr/bin/python3 tests/bench/nn_torch.py, run from the repo\n"
          "  root) on the L96 score network; speedup = torch time / C time.\n");
}

static int bench_nn(int argc, char **argv) {
  int json = 0, no_torch = 0, prof = 0;
  long lT = 2, lreps = 10, lchunk = 0;
  const char *arch = "resnet1d";
  const cli_flag flags[] = {
      {"json", CLI_BOOL, &json, 0, 0, NULL},        {"threads", CLI_LONG, &lT, 1, 64, NULL},
      {"reps", CLI_LONG, &lreps, 1, 1000, NULL},    {"chunk", CLI_LONG, &lchunk, 0, 4096, NULL},
      {"no-torch", CLI_BOOL, &no_torch, 0, 0, NULL}, {"arch", CLI_STR, &arch, 0, 0, NULL},
      {"profile", CLI_BOOL, &prof, 0, 0, NULL},     {NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida bench nn", flags, usage, 0, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  int unet = !strcmp(arch, "unet2d");
  if (!unet && strcmp(arch, "resnet1d")) {
    fprintf(stderr, "bench: --arch must be resnet1d or unet2d (got %s)\n", arch);
    return 2;
  }
  int T = (int)lT, reps = (int)lreps, chunk = lchunk ? (int)lchunk : unet ? 32 : 256;
  int torch = !no_torch;
  if (unet) prof = 1;
  if (T < 1 || T > 64 || reps < 1 || reps > 1000 || chunk < 1 || chunk > 4096) {
    usage(stderr);
    return 2;
  }
  const int BT = unet ? 32 : 256, BI = unet ? 128 : 4096;
  nn_resnet_config cfg = {.dims = 1, .h = 1, .w = 40, .cin = 11, .cout = 1, .width = 64,
                          .blocks = 6, .groups = 8, .n_scalars = 1, .emb_dim = 32};
  nn_unet_config ucfg = {.dims = 2, .h = 32, .w = 32, .cin = 4, .cout = 2, .levels = 3,
                         .widths = {64, 128, 256}, .blocks = 2, .mid = 2, .groups = 8,
                         .n_scalars = 1, .emb_dim = 32};
  sb_error err = {0};
  nn_model m;
  if (unet ? nn_unet_init(&m, &ucfg, &err) : nn_resnet_init(&m, &cfg, &err)) {
    fprintf(stderr, "bench: %s\n", err.msg);
    return 1;
  }
  nn_model_init_params(&m, 1);
  openblas_set_num_threads(T);
  double peak = sgemm_peak();

  int in = nn_in_size(&m), on = nn_out_size(&m);
  float *x = malloc(sizeof(float) * (size_t)BI * in), *s = malloc(sizeof(float) * BI);
  float *y = malloc(sizeof(float) * (size_t)BI * on), *tgt = malloc(sizeof(float) * (size_t)BT * on);
  nn_workspace *wt = calloc((size_t)T, sizeof *wt), *wi = calloc((size_t)T, sizeof *wi);
  int rc = !x || !s || !y || !tgt || !wt || !wi;
  for (int t = 0; !rc && t < T; t++) {
    rc = nn_workspace_init(&wt[t], &m, (BT + T - 1) / T, 1, &err);
    if (!rc) rc = nn_workspace_init(&wi[t], &m, chunk, 0, &err);
  }
  if (rc) {
    fprintf(stderr, "bench: %s\n", err.msg[0] ? err.msg : "out of memory");
    return 1;
  }
  rng r;
  rng_init(&r, 7, 0);
  rng_fill_normal_f(&r, x, (size_t)BI * in);
  rng_fill_normal_f(&r, tgt, (size_t)BT * on);
  for (int i = 0; i < BI; i++) s[i] = (float)rng_uniform(&r);

  mse_ctx mc = {tgt, on};
  double load0 = loadavg();
  double c_train, c_infer, c_train2 = -1, c_infer2 = -1;
  if (measure_c(&m, wt, wi, T, BT, BI, x, s, y, &mc, reps, &c_train, &c_infer, &err)) {
    fprintf(stderr, "bench: %s\n", err.msg);
    return 1;
  }
  double ff = fwd_flops(&cfg);
  if (unet || prof) {
    ff = profile_c(&m, wt, wi, T, BT, BI, x, s, y, &mc, peak, json, &err);
    if (ff < 0) {
      fprintf(stderr, "bench: %s\n", err.msg);
      return 1;
    }
  }

  double t_train = -1, t_infer = -1;
  char tver[64] = "", note[256] = "";
  if (torch) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 tests/bench/nn_torch.py --arch %s --threads %d --reps %d "
             "--train-batch %d --infer-batch %d 2>/dev/null",
             arch, T, reps < 5 ? reps : 5, BT, BI);
    FILE *p = access("tests/bench/nn_torch.py", R_OK) ? NULL : popen(cmd, "r");
    char line[1024] = "";
    if (p) {
      if (!fgets(line, sizeof line, p)) line[0] = 0;
      pclose(p);
    }
    char *a = strstr(line, "\"torch_train_step_s\":"), *b = strstr(line, "\"torch_infer_s\":");
    char *v = strstr(line, "\"torch_version\": \"");
    if (a && b) {
      t_train = atof(a + 21);
      t_infer = atof(b + 16);
      if (v) sscanf(v + 18, "%63[^\"]", tver);
    } else {
      snprintf(note, sizeof note, "torch unavailable (needs /usr/bin/python3 with torch and "
                                  "tests/bench/nn_torch.py; run from the repo root)");
    }
  } else {
    snprintf(note, sizeof note, "torch skipped (--no-torch)");
  }

  /* the machine is shared: C is measured before AND after torch and the two
   * medians averaged, so a load change during the run biases neither side */
  if (t_train > 0) {
    if (measure_c(&m, wt, wi, T, BT, BI, x, s, y, &mc, reps, &c_train2, &c_infer2, &err)) {
      fprintf(stderr, "bench: %s\n", err.msg);
      return 1;
    }
  }
  double c_train1 = c_train, c_infer1 = c_infer;
  if (c_train2 > 0) {
    c_train = 0.5 * (c_train1 + c_train2);
    c_infer = 0.5 * (c_infer1 + c_infer2);
  }
  double load1 = loadavg();
  char ctr2[32] = "null", cin2[32] = "null";
  if (c_train2 > 0) {
    snprintf(ctr2, sizeof ctr2, "%.6f", c_train2);
    snprintf(cin2, sizeof cin2, "%.6f", c_infer2);
  }
  size_t n_weights = 0; /* m.n_params includes the 16-float alignment padding */
  for (int i = 0; i < m.n_tensors; i++) n_weights += m.tensors[i].numel;
  const char *netdesc = unet ? "unet2d 32x32 cin=4 cout=2 widths=64,128,256 blocks=2 mid=2 "
                               "groups=8 tau-embedding"
                             : "resnet1d width=64 blocks=6 groups=8 N=40 cin=11 cout=1 tau-embedding";
  double train_gf = 3.0 * ff * BT / c_train * 1e-9, infer_gf = ff * BI / c_infer * 1e-9;
  char ttr[32] = "null", tin[32] = "null", str[32] = "null", sin_[32] = "null";
  if (t_train > 0) {
    snprintf(ttr, sizeof ttr, "%.6f", t_train);
    snprintf(tin, sizeof tin, "%.6f", t_infer);
    snprintf(str, sizeof str, "%.3f", t_train / c_train);
    snprintf(sin_, sizeof sin_, "%.3f", t_infer / c_infer);
  }
  if (json) {
    printf("{\"bench\": \"nn\", \"threads\": %d, \"net\": \"%s\", \"n_params\": %zu, "
           "\"train_batch\": %d, \"infer_batch\": %d, "
           "\"c_train_step_s\": %.6f, \"torch_train_step_s\": %s, \"train_speedup\": %s, "
           "\"c_infer_s\": %.6f, \"torch_infer_s\": %s, \"infer_speedup\": %s, "
           "\"sgemm_peak_gflops\": %.1f, \"c_train_gflops\": %.1f, \"c_infer_gflops\": %.1f, "
           "\"c_train_step_s_before_after\": [%.6f, %s], \"c_infer_s_before_after\": [%.6f, %s], "
           "\"loadavg_start_end\": [%.2f, %.2f], "
           "\"torch_version\": %s%s%s, \"note\": \"%s\"}\n",
           T, netdesc, n_weights, BT, BI, c_train, ttr, str, c_infer, tin, sin_, peak, train_gf, infer_gf, c_train1,
           ctr2, c_infer1, cin2, load0, load1,
           tver[0] ? "\"" : "", tver[0] ? tver : "null", tver[0] ? "\"" : "", note);
  } else {
    printf("nn bench %s, %zu parameters (%d threads): sgemm peak %.1f GFLOP/s, load average "
           "%.2f -> %.2f\n", netdesc, n_weights, T, peak, load0, load1);
    printf("  train step B=%d: C %.4f s (%.1f GFLOP/s), torch %s s, speedup %s\n", BT, c_train,
           train_gf, ttr, str);
    printf("  inference  B=%d: C %.4f s (%.1f GFLOP/s), torch %s s, speedup %s\n", BI, c_infer,
           infer_gf, tin, sin_);
    if (note[0]) printf("  note: %s\n", note);
  }
  free(x), free(s), free(y), free(tgt);
  for (int t = 0; t < T; t++) nn_workspace_free(&wt[t]), nn_workspace_free(&wi[t]);
  free(wt), free(wi);
  nn_model_free(&m);
  return 0;
}

int cmd_bench(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "nn")) return bench_nn(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "sample")) return bench_sample(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "kolmogorov")) return bench_kolmogorov(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  usage(stderr);
  return 2;
}
