"""`python -m profiler`: the CLI (profiler.cli). Once its output is flushed it leaves with os._exit, skipping the
interpreter's teardown of torch's modules (about 0.6 s; every file, pool and process it used is closed by then),
unless a profiler, tracer or debugger (cProfile, coverage, pdb) is attached and must write its results at exit.
A reader that leaves a pipe early (`| head`) ends it quietly, as Python's documentation of SIGPIPE suggests."""
import os
import sys

from profiler.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    code = 1
sys.stderr.flush()
if sys.gettrace() is None and sys.getprofile() is None:
    os._exit(code)
sys.exit(code)
