/* sbida train: trains a model of any kind from a JSON config, in one process
 * or in several started by mpirun (train/train_dist.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinds/kinds.h"
#include "tool/cmd.h"
#include "util/cli.h"
#include "util/jsonb.h"
#include "util/par.h"
#include "train/train.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: sbida train --config CONFIG.json --out MODEL.safetensors [--steps N]\n"
          "                   [--time-budget DURATION] [--threads N] [--resume STATE] [--seed S]\n"
          "                   [--log-every N] [--check-ranks]\n"
          "       mpirun -np P sbida train ...   (data parallel over P processes)\n\n"
          "Trains a model of one of the kinds below on fresh simulations (a pool of\n"
          "trajectories refreshed every batch), keeps an EMA of the weights, validates on a\n"
          "fixed held-out set and writes the EMA model to --out plus the training state to\n"
          "--out.state every train.ckpt_every steps (resume with --resume OUT.state).\n"
          "Progress: a bar on a terminal, JSON lines otherwise (stderr).\n"
          "Started by mpirun, the P processes train one model: train.batch is the global\n"
          "batch, each process computes the gradient of 1/P of it, the gradients are\n"
          "summed (MPI_Allreduce) and rank 0 alone validates and writes files and progress\n"
          "(docs/training-mpi.md; this build %s).\n\n"
          "  --config FILE        training configuration (see models/configs/)\n"
          "  --out FILE           model file to write (.safetensors; its stem is the estimator name)\n"
          "  --steps N            override train.steps\n"
          "  --time-budget D      stop in time: seconds, or with a unit: 90s, 40m, 1h (overrides train.time_budget_s)\n"
          "  --threads N          override train.threads\n"
          "  --seed S             override train.seed\n"
          "  --resume FILE        continue from a training state written by an earlier run\n"
          "  --log-every N        also a JSON progress line every N steps (with that step's batch_loss)\n"
          "  --check-ranks        under mpirun: after every step, fail unless all processes hold the\n"
          "                       same weights (a fingerprint allreduce; always checked at the end)\n"
          "  -h, --help           this text\n\n"
          "Kinds (the config's \"kind\") and the config section of each kind's own settings:\n",
          train_dist_available() ? "has MPI" : "has no MPI");
  const model_kind *k;
  for (int i = 0; (k = model_kind_at(i)); i++)
    fprintf(f, "  %-20s %s%s%s\n", k->name, k->config_key ? "section \"" : "no section of its own",
            k->config_key ? k->config_key : "", k->config_key ? "\"" : "");
}

static int parse_duration(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v <= 0) return -1;
  if (!*end || !strcmp(end, "s")) *out = v;
  else if (!strcmp(end, "m")) *out = v * 60;
  else if (!strcmp(end, "h")) *out = v * 3600;
  else return -1;
  return 0;
}

int cmd_train(int argc, char **argv) {
  const char *config = NULL, *budget = NULL;
  train_opts o = {0};
  long seed = -1, threads = 0;
  int check_ranks = 0;
  const cli_flag flags[] = {
      {"config", CLI_STR, &config, 0, 0, NULL},           {"out", CLI_STR, &o.out, 0, 0, NULL},
      {"steps", CLI_LONG, &o.steps, 1, 1e9, NULL},        {"time-budget", CLI_STR, &budget, 0, 0, NULL},
      {"threads", CLI_LONG, &threads, 1, SB_THREADS_MAX, NULL}, {"resume", CLI_STR, &o.resume, 0, 0, NULL},
      {"seed", CLI_LONG, &seed, 0, 2147483647, NULL},     {"log-every", CLI_LONG, &o.log_every, 1, 1e9, NULL},
      {"check-ranks", CLI_BOOL, &check_ranks, 0, 0, NULL}, {NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida train", flags, usage, 0, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  o.threads = (int)threads;
  if (budget && parse_duration(budget, &o.time_budget_s)) {
    fprintf(stderr, "sbida train: --time-budget expects a duration such as 600, 90s, 40m or 1h\n");
    return 2;
  }
  if (!config || !o.out) {
    fprintf(stderr, "sbida train: --config and --out are required (see --help)\n");
    return 2;
  }
  json_error_t je;
  json_t *cfg = json_load_file(config, 0, &je);
  if (!cfg) {
    fprintf(stderr, "sbida train: %s: %s (line %d)\n", config, je.text, je.line);
    return 2;
  }
  if (seed >= 0) {
    int bad = 0;
    json_t *tr = json_object_get(cfg, "train");
    if (!tr) jb_set(cfg, "train", tr = jb_object(&bad), &bad);
    if (!bad && json_is_object(tr)) jb_set(tr, "seed", json_integer(seed), &bad);
    if (bad) {
      fprintf(stderr, "sbida train: out of memory\n");
      json_decref(cfg);
      return 1;
    }
  }
  sb_error err = {0};
  train_dist dist;
  if (train_dist_init(&dist, &err)) {
    fprintf(stderr, "sbida train: %s\n", err.msg);
    json_decref(cfg);
    train_dist_abort(&dist, 1);
    train_dist_finalize(&dist);
    return 1;
  }
  o.dist = &dist;
  o.check_ranks = check_ranks;
  o.progress = dist.rank == 0 ? stderr : NULL;
  o.progress_tty = isatty(fileno(stderr));
  int rc = train_model(cfg, &o, &err);
  json_decref(cfg);
  if (rc) {
    int code = rc == SB_EINVAL || rc == SB_ERANGE ? 2 : 1;
    if (dist.size > 1) {
      /* the other ranks may wait in a collective for this one: end them all */
      fprintf(stderr, "sbida train (rank %d of %d): %s\n", dist.rank, dist.size, err.msg);
      train_dist_abort(&dist, code);
    }
    fprintf(stderr, "sbida train: %s\n", err.msg);
    train_dist_finalize(&dist);
    return code;
  }
  if (dist.rank == 0) {
    char *s = json_dumps(o.summary, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
  }
  json_decref(o.summary);
  train_dist_finalize(&dist);
  return 0;
}
