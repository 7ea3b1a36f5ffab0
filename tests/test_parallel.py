"""profiler.measuring.parallel: workers die with the command that started them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A parent that starts two workers, each sleeping far longer than the test, prints their pids, and waits.
PARENT = """
import os, sys, time
from profiler.measuring import parallel
parallel.workers_for = lambda calls: 2
import threading
def report():
    while True:
        children = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
        if len(children) >= 2:
            print(" ".join(children), flush=True)
            return
        time.sleep(0.05)
threading.Thread(target=report, daemon=True).start()
parallel.run_calls([(time.sleep, (600,)), (time.sleep, (600,))], "test", progress=False)
"""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the workers are forked on Linux only")
def test_workers_die_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        workers += [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers)
    finally:
        parent.kill()
        for pid in filter(alive, workers):  # where the test fails, it leaves no sleeper behind
            os.kill(pid, signal.SIGKILL)
