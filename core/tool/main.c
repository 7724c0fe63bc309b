/* sbida: the offline tool (simulate, train, eval, compare, bench). */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "tool/cmd.h"
#include "util/version.h"
#include "util/par.h"


static const sb_command commands[] = {
    {"simulate", "simulate trajectories (and observations) of a preset to .npy", cmd_simulate},
    {"train", "train a model of any kind (score, npe, nre) from a JSON config", cmd_train},
    {"model", "show a model file's metadata or change its default sampler settings", cmd_model},
    {"eval", "score an estimator (etkf, letkf, pf, model) on a seeded test set -> JSON, SVG", cmd_eval},
    {"compare", "side-by-side markdown table of eval JSON files", cmd_compare},
    {"cycle", "cycle an estimator in process (analysis, forecast, background) -> RMSE, spread, JSON", cmd_cycle},
    {"bench", "benchmarks: `bench nn` compares the C nn engine with PyTorch", cmd_bench},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
  fprintf(f,
          "sbida %s: Bayesian data assimilation by simulation-based inference (offline tool)\n\n"
          "usage: sbida <command> [flags]    (sbida <command> --help for its flags)\n\n"
          "commands:\n",
          SBIDA_VERSION);
  for (int i = 0; i < n_commands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n  --help     this text\n  --version  print the version\n");
}

int main(int argc, char **argv) {
  sb_runtime_init();
  /* --threads N means N threads: the commands parallelize over samples,
   * cases or batch slices themselves, and OpenBLAS's own threads (one per
   * core by default) would add to them, and spin in sched_yield when the
   * machine is busy (a "one thread" training made 0.25 steps/s instead of
   * 7 with its BLAS thread starved). Benchmarks that want BLAS threads set
   * them. */
  openblas_set_num_threads(1);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("sbida %s\n", SBIDA_VERSION);
    return 0;
  }
  for (int i = 0; i < n_commands; i++)
    if (!strcmp(argv[1], commands[i].name)) {
      int rc = commands[i].run(argc - 1, argv + 1);
      sb_pool_shutdown();
      return rc;
    }
  fprintf(stderr, "sbida: unknown command '%s' (see sbida --help)\n", argv[1]);
  return 2;
}
