"""`python -m profiler`: the CLI (profiler.cli). Once its output is flushed it leaves with os._exit, skipping the
interpreter's teardown of torch's modules (about 0.6 s; every file, pool and process it used is closed by then),
unless a profiler, tracer or debugger (cProfile, coverage, pdb) is attached and must write its results at exit.
A reader that leaves a pipe early (`| head`) ends it quietly, as Python's documentation of SIGPIPE suggests.

`-m` puts the current folder first on sys.path, where a user's project has its own model.py or analytic/; that
entry is replaced by the folder this package was loaded from, so that `model`, `analytic` and `profiler` are
always this project's (run from a checkout's root, the two are the same folder). A profiler.py or profiler/ package
in the current folder is imported by `-m` before this file runs; `python -P -m profiler` or the `adamw-profiler`
script, which never look in the current folder, avoid it."""
import os
import sys

_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.getcwd():
    sys.path[0] = _root

from profiler.cli import main  # noqa: E402  (after the path is set, so that it imports this project's packages)

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    code = 1
sys.stderr.flush()
if sys.gettrace() is None and sys.getprofile() is None:
    os._exit(code)
sys.exit(code)
