"""The decoder processes of `alcli pack`: tasks go to the workers in turn over one pipe each, so task k's
result is the next message on worker k mod W's pipe: results come back in order with no reordering
buffer, and a bounded number of tasks in flight per worker keeps memory flat whatever the number of
images. With one worker the same calls run in-process.

Pixels do not cross the pipes: `share` gives each worker a buffer that it and the parent both map (an
anonymous memory file, its descriptor passed over the pipe), one slot per task in flight; a worker writes a
task's rows into its slot and answers with their sizes only, and the parent copies them out before the
slot's next task is sent. (Through the pipe, each row was copied four times in the parent: socket, buffer,
unpickling, join; the reads alone took a third of the parent's time.)

No executor, queue or feeder thread: nothing that can hang the interpreter's exit once workers are killed.
Workers start from a forkserver (no fork of a process with threads and open HDF5 files). Ctrl-C is the
parent's alone: the forkserver starts with SIGINT blocked, so each worker is born deaf to it, and then
ignores it and SIGTERM (alcli.images.decode.worker_init); the parent kills the workers on its way
out. A worker whose parent is gone ends at its next read or write on the pipe.
"""

from __future__ import annotations

import contextlib
import mmap
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


_SHARE = "share"  # the message that a buffer's descriptor follows


def _memory_file(nbytes: int) -> int:
    """A descriptor of `nbytes` of anonymous shared memory (a memfd; elsewhere an unlinked temporary file)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("alcli-pack", os.MFD_CLOEXEC)
    else:  # pragma: no cover - not Linux
        import tempfile

        with tempfile.TemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as fh:
            fd = os.dup(fh.fileno())
    os.ftruncate(fd, max(1, nbytes))
    return fd


class Pool:
    """`workers` decoder processes, each behind its own pipe."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from multiprocessing import forkserver

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["alcli.images.decode", "alcli.images.workers"])
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            forkserver.ensure_running()  # inherits the blocked SIGINT, and so does every worker it forks
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        self.buffers: list[mmap.mmap] = []
        for _ in range(workers):
            mine, theirs = context.Pipe()
            proc = context.Process(target=serve, args=(theirs,), daemon=True, name="alcli-decoder")
            self.procs.append(proc)
            self.conns.append(mine)
            proc.start()
            theirs.close()  # only the worker holds its end: its death reads as EOF here

    def share(self, nbytes: int) -> list[mmap.mmap]:
        """Give each worker a buffer of `nbytes` shared with this process; this process's maps, by worker."""
        from multiprocessing import reduction

        self._unmap()
        for conn, proc in zip(self.conns, self.procs, strict=True):
            fd = _memory_file(nbytes)
            try:
                conn.send(_SHARE)
                reduction.send_handle(conn, fd, proc.pid)
                self.buffers.append(mmap.mmap(fd, max(1, nbytes)))
            except OSError:  # the worker is gone (killed, out of memory) before its first image
                raise AlcliError("a decoder process died before it started", "pack") from None
            finally:
                os.close(fd)
        return self.buffers

    def _unmap(self) -> None:
        for buffer in self.buffers:
            with contextlib.suppress(BufferError):  # a row still viewed: the map goes with its last view
                buffer.close()
        self.buffers = []

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(5)
        self.kill()

    def kill(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.join(2)
        for conn in self.conns:
            conn.close()
        self._unmap()


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Pool | None]:
    """A Pool of `workers` decoder processes, or None for one worker (decode in-process)."""
    if workers <= 1:
        yield None
        return
    pool: Pool | None = None
    try:
        pool = Pool(workers)
        yield pool
    except BaseException:
        if pool is not None:
            pool.kill()
        raise
    pool.close()


def serve(conn: Any) -> None:
    """A worker's life: (fn, args) in, ("ok", result) or ("error", traceback) out, until None or EOF."""
    import traceback
    from multiprocessing import reduction

    from alcli.images.decode import use_buffer, worker_init

    worker_init()
    try:
        while (task := conn.recv()) is not None:
            if task == _SHARE:
                fd = reduction.recv_handle(conn)
                use_buffer(mmap.mmap(fd, os.fstat(fd).st_size))
                os.close(fd)
                continue
            fn, args = task
            try:
                reply = ("ok", fn(*args))
            except Exception:  # a bug: the parent reports it (exit 1)
                reply = ("error", traceback.format_exc())
            conn.send(reply)
    except (EOFError, OSError):  # the parent is gone
        pass
    os._exit(0)


def ordered(pool: Pool | None, fn: Callable[..., Any], tasks: Iterable[tuple[Any, ...]], depth: int,
            what: Callable[[tuple[Any, ...]], str], check: Callable[[], None]) -> Iterator[Any]:
    """fn(*task) for each task, in the tasks' order, at most `depth` tasks in flight per worker. `what(task)`
    names a task's files when a worker dies on it; `check()` (alcli.signals.at_safe_points) is called at
    least every 0.1 s while waiting."""
    if pool is None:
        for task in tasks:
            check()
            yield fn(*task)
        return
    width = len(pool.conns)
    pending: deque[tuple[int, tuple[Any, ...]]] = deque()  # (worker, task) in submission order

    def result(worker: int, task: tuple[Any, ...]) -> Any:
        conn = pool.conns[worker]
        try:
            while not conn.poll(0.1):
                check()
            status, value = conn.recv()
        except (EOFError, OSError):
            check()  # a signal to the whole process group may have ended the worker first
            raise AlcliError(f"a decoder process died (out of memory, or a decoder crash) on one of {what(task)}",
                             "pack") from None
        if status == "error":
            raise RuntimeError(f"a decoder process failed:\n{value}")
        return value

    for k, task in enumerate(tasks):
        worker = k % width
        pool.conns[worker].send((fn, task))
        pending.append((worker, task))
        if len(pending) >= depth * width:
            yield result(*pending.popleft())
    while pending:
        yield result(*pending.popleft())
