"""The decoder processes of `alcli pack`: a process pool whose results come back in submission order
through a bounded window (so memory stays flat whatever the number of images), or the same calls made
in-process for one worker.

Workers start from a forkserver (no fork of a process with threads and open HDF5 files). Ctrl-C is the
parent's alone: the forkserver is started with SIGINT blocked, so every worker is born deaf to it, and each
worker then ignores it (alcli.images.decode.worker_init); the parent's KeyboardInterrupt stops the pool
(terminating the workers) on its way out. Workers also end by themselves when the parent is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from alcli.errors import AlcliError


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Any]:
    """A ProcessPoolExecutor of `workers` decoder processes, or None for one worker (decode in-process)."""
    if workers <= 1:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import forkserver

    from alcli.images import decode

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["alcli.images.decode"])
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()  # inherits the blocked SIGINT, and so does every worker it forks
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=decode.worker_init)
    try:
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: Any) -> None:
    """End the workers now (Ctrl-C, an error): pending work is dropped, running work killed."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(2)


def ordered(pool: Any, fn: Callable[..., Any], tasks: Iterable[tuple[Any, ...]], window: int,
            what: Callable[[tuple[Any, ...]], str]) -> Iterator[Any]:
    """fn(*task) for each task, in the tasks' order; at most `window` tasks in flight (results that finish
    early wait for those before them). `what(task)` names a task's files when a worker dies on it."""
    if pool is None:
        for task in tasks:
            yield fn(*task)
        return
    from concurrent.futures.process import BrokenProcessPool

    pending: deque[tuple[Any, tuple[Any, ...]]] = deque()

    def result(future: Any, task: tuple[Any, ...]) -> Any:
        try:
            return future.result()
        except BrokenProcessPool:
            raise AlcliError(f"a decoder process died (out of memory, or a decoder crash) on one of {what(task)}",
                             "pack") from None

    for task in tasks:
        pending.append((pool.submit(fn, *task), task))
        if len(pending) >= window:
            yield result(*pending.popleft())
    while pending:
        yield result(*pending.popleft())
