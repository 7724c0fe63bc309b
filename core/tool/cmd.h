/* cmd.h: subcommands of the offline tool `sbida`. Each returns the process
 * exit status (0 ok, 1 runtime failure, 2 usage error) and prints its own
 * messages; only main() exits. */
#ifndef SB_CMD_H
#define SB_CMD_H

typedef struct sb_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} sb_command;

int cmd_simulate(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_cycle(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* sbida bench sample (cmd_bench_sample.c) */
int bench_sample(int argc, char **argv);
/* sbida bench kolmogorov (cmd_bench_kolmo.c) */
int bench_kolmogorov(int argc, char **argv);

#endif
