#include <stdio.h>
#include "cmd.h"
int cmd_simulate(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "simulate: not yet\n"); return 1; }
