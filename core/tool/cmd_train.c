/* sbida train: trains a model of any kind from a JSON config. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool/cmd.h"
#include "train/train.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: sbida train --config CONFIG.json --out MODEL.safetensors [--steps N]\n"
          "                   [--time-budget DURATION] [--threads N] [--resume STATE] [--seed S]\n\n"
          "Trains a model (posterior-score, composed-score, npe, nre) on fresh simulations (a pool of\n"
          "trajectories refreshed every batch), keeps an EMA of the weights, validates on a\n"
          "fixed held-out set and writes the EMA model to --out plus the training state to\n"
          "--out.state every train.ckpt_every steps (resume with --resume OUT.state).\n"
          "Progress: a bar on a terminal, JSON lines otherwise (stderr).\n\n"
          "  --config FILE        training configuration (see models/configs/)\n"
          "  --out FILE           model file to write (.safetensors; its stem is the estimator name)\n"
          "  --steps N            override train.steps\n"
          "  --time-budget D      stop in time: seconds, or with a unit: 90s, 40m, 1h (overrides train.time_budget_s)\n"
          "  --threads N          override train.threads\n"
          "  --seed S             override train.seed\n"
          "  --resume FILE        continue from a training state written by an earlier run\n"
          "  -h, --help           this text\n");
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
  static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"out", required_argument, 0, 'o'},
                                       {"steps", required_argument, 0, 's'},  {"time-budget", required_argument, 0, 'b'},
                                       {"threads", required_argument, 0, 't'}, {"resume", required_argument, 0, 'r'},
                                       {"seed", required_argument, 0, 'S'},   {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *config = NULL;
  train_opts o = {0};
  long seed = -1;
  optind = 1;
  opterr = 0;
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'o': o.out = optarg; break;
    case 's':
      o.steps = strtol(optarg, &end, 10);
      if (*end || o.steps < 1) { fprintf(stderr, "sbida train: --steps expects a positive integer\n"); return 2; }
      break;
    case 'b':
      if (parse_duration(optarg, &o.time_budget_s)) {
        fprintf(stderr, "sbida train: --time-budget expects a duration such as 600, 90s, 40m or 1h\n");
        return 2;
      }
      break;
    case 't':
      o.threads = (int)strtol(optarg, &end, 10);
      if (*end || o.threads < 1 || o.threads > 64) { fprintf(stderr, "sbida train: --threads expects 1..64\n"); return 2; }
      break;
    case 'S':
      seed = strtol(optarg, &end, 10);
      if (*end || seed < 0 || seed > 2147483647L) { fprintf(stderr, "sbida train: --seed expects 0..2147483647\n"); return 2; }
      break;
    case 'r': o.resume = optarg; break;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "sbida train: unknown or incomplete flag '%s' (see sbida train --help)\n", argv[optind - 1]);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "sbida train: unexpected argument '%s'\n", argv[optind]);
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
    json_t *tr = json_object_get(cfg, "train");
    if (!tr) json_object_set_new(cfg, "train", tr = json_object());
    if (json_is_object(tr)) json_object_set_new(tr, "seed", json_integer(seed));
  }
  o.progress = stderr;
  o.progress_tty = isatty(fileno(stderr));
  sb_error err = {0};
  int rc = train_model(cfg, &o, &err);
  json_decref(cfg);
  if (rc) {
    fprintf(stderr, "sbida train: %s\n", err.msg);
    return rc == SB_EINVAL || rc == SB_ERANGE ? 2 : 1;
  }
  char *s = json_dumps(o.summary, JSON_COMPACT);
  printf("%s\n", s);
  free(s);
  json_decref(o.summary);
  return 0;
}
