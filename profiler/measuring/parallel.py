"""Independent measurements at once: one forked process per CPU, the results in the order of the calls.

Each call runs whole in one process (a step is measured where it runs, nothing is shared but the inputs and the
returned figures), so a result is the one a serial run gives; tests/test_cli_measure.py checks it. A worker dies
with the process that started it (die_with_parent). Where fork is not the safe way to start a process (not Linux),
where there is one CPU or one call, the calls run here, in order.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

Call = tuple[Callable[..., Any], tuple]  # (a module-level function, its positional arguments)
PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when the thread that started it exits


def die_with_parent(parent: int) -> None:
    """In a worker: the kernel kills it when its parent dies (prctl PR_SET_PDEATHSIG, SIGKILL), so a command killed
    with kill -9 leaves no worker behind; where the parent is gone already, the worker leaves at once."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def workers_for(calls: int) -> int:
    """How many processes run `calls` calls: one per CPU this process may use, at most one per call; 1 where
    fork is not available."""
    if sys.platform != "linux":
        return 1
    return max(1, min(calls, len(os.sched_getaffinity(0))))


def run_calls(calls: Sequence[Call], description: str, progress: bool = True) -> list[Any]:
    """[function(*arguments) for each call], run in parallel where workers_for allows; a progress bar (on a
    terminal) counts the calls done. An exception in a call is raised here."""
    bar = tqdm(total=len(calls), desc=description, unit="step", file=sys.stderr, disable=None if progress else True)
    workers = workers_for(len(calls))
    try:
        if workers == 1:
            results = []
            for function, arguments in calls:
                results.append(function(*arguments))
                bar.update()
            return results
        # Every step imports torch._dynamo on its first op (Optimizer.add_param_group is wrapped in
        # torch._disable_dynamo, as are torch's Python meta kernels): imported once here, before forking, rather
        # than once in every worker.
        import torch._dynamo  # noqa: F401

        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent,
                                                    initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(function, *arguments) for function, arguments in calls]
            for _ in concurrent.futures.as_completed(futures):
                bar.update()
            return [future.result() for future in futures]
    finally:
        bar.close()
