import os
import sys

from .cli import main

try:
    rc = main()
    sys.stdout.flush()
except BrokenPipeError:
    # the reader went away (e.g. `... list | head`): not an error of ours; exit
    # quietly, with stdout pointed at /dev/null so the interpreter's final flush
    # does not raise again
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    rc = 0
sys.exit(rc)
