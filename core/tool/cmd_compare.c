#include <stdio.h>
#include "cmd.h"
int cmd_compare(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "compare: not yet\n"); return 1; }
