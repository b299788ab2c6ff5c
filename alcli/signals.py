"""How an `alcli` process ends on a signal: one line on stderr, the right exit status, no temporary file left.

The entry point (alcli.entry) installs the first handlers before any heavy import and arms the watchdog.

Ctrl-C must end any command with one line and exit 130, wherever it lands:
- while modules import (the first ~0.3 s, longer on a busy box) there is nothing to clean up, so the
  handler installed here, before any heavy import, prints the line and leaves at once (`os._exit`, no
  interpreter shutdown that could wait on half-initialised native libraries);
- while a command runs, SIGINT raises KeyboardInterrupt in the main thread as usual, so temporary files
  are removed on the way out (alcli.artifacts.io), and alcli.cli prints the line;
- inside a long native call (FAISS, BLAS, CBC, torch) the main thread sees the KeyboardInterrupt only when
  the call returns, so a watchdog thread, woken by the signal itself (signal.set_wakeup_fd), gives the
  main thread a short grace period, then removes this process's temporary files and exits 130 itself.

Whoever ends the process with a line (the main thread or the watchdog) first takes `_claim`, so there is
one line even when both see the same Ctrl-C. A SIGINT that the parent ignored (a shell's background job)
stays ignored, as Python itself does.

SIGTERM (`kill`, `timeout`, make stopping a failed build, a supervisor) takes the same paths with its own
line, `alcli: error: terminated`, and exit 143 (128 + 15): no temporary file is left behind.

SIGXFSZ (a file size limit) is ignored so that a write beyond the limit fails with EFBIG and becomes a
one-line error naming the output, instead of killing the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

GRACE_SECONDS = 1.0  # how long a native call may hold the main thread after Ctrl-C
EXIT_SECONDS = 10.0  # how long an exit already under way may take before the watchdog ends it

_ENDINGS = {  # the signals that end a command cleanly: the line on stderr, the exit status
    signal.SIGINT: (b"alcli: error: interrupted\n", 130),
    signal.SIGTERM: (b"alcli: error: terminated\n", 143),
}
_state: dict[str, object] = {"ignored": set(), "armed": False}
_claim = threading.Lock()  # held by whoever ends the process with a line: the main thread or the watchdog


class Terminated(KeyboardInterrupt):
    """SIGTERM while a command runs: unwinds (and cleans up) as a Ctrl-C does; alcli.cli exits 143."""


def announce(phase: str) -> None:
    """With ALCLI_STARTED_FILE set (tests, supervisors), write "PID PHASE" there: `importing` once the
    interrupt handler is in place, `running` when a command's own work begins (after its checks)."""
    path = os.environ.get("ALCLI_STARTED_FILE")
    if path:
        with open(path, "w") as fh:
            fh.write(f"{os.getpid()} {phase}\n")


def exiting() -> bool:
    """Called by the main thread when it leaves, before it prints its error line (if any): True, print it;
    when the watchdog is already printing the interrupt line, this waits for it to end the process, so
    there is exactly one line either way. A Ctrl-C from now on is ignored."""
    if not _state["armed"]:  # no watchdog (alcli.cli.main called from another program)
        return True
    if threading.current_thread() is threading.main_thread():
        for signum in _ENDINGS:
            signal.signal(signum, signal.SIG_IGN)
    if _claim.acquire(blocking=False):
        return True
    threading.Event().wait(EXIT_SECONDS)  # the watchdog calls os._exit meanwhile
    os._exit(int(_state.get("code", 130)))  # type: ignore[call-overload]


def install_early() -> None:
    """Before the heavy imports: Ctrl-C or SIGTERM ends the process at once with its line; SIGXFSZ ignored."""
    for signum in _ENDINGS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            _ignored().add(signum)  # e.g. Ctrl-C in a shell's background job: keep it ignored
        else:
            signal.signal(signum, _ended_while_starting)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def end_on(exc: KeyboardInterrupt) -> None:
    """A KeyboardInterrupt in the instants between the watchdog taking over and cli.main's handlers."""
    message, code = _ENDINGS[signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT]
    if exiting():
        remove_temp_files()
        os.write(2, message)
    os._exit(code)


def _ignored() -> set[int]:
    return _state["ignored"]  # type: ignore[return-value]


def _ended_while_starting(signum: int, frame: object) -> None:
    message, code = _ENDINGS[signal.Signals(signum)]
    os.write(2, message)
    os._exit(code)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


_HANDLERS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _raise_terminated}


def arm_watchdog() -> None:
    handled = [signum for signum in _ENDINGS if signum not in _ignored()]
    if not handled:
        return
    import socket

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread (alcli embedded in another program): the handlers only
        handled = []
    for signum in _ENDINGS:
        if signum not in _ignored():
            signal.signal(signum, _HANDLERS[signum])
    if not handled:
        return
    thread = threading.Thread(target=_watch, args=(reader, writer, handled), name="alcli-interrupt", daemon=True)
    thread.start()
    _state["armed"] = True


def _watch(reader: object, writer: object, handled: list[int]) -> None:
    import time

    signum = None
    while signum is None:
        data = reader.recv(64)  # type: ignore[attr-defined]
        signum = next((s for s in data if s in handled), None)
    message, code = _ENDINGS[signal.Signals(signum)]
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and not _claim.locked():
        time.sleep(0.02)
    if not _claim.acquire(blocking=False):
        time.sleep(EXIT_SECONDS)  # the main thread is on its way out; only a hung shutdown gets here
        os._exit(code)
    _state["code"] = code
    remove_temp_files()
    os.write(2, message)
    os._exit(code)


@contextlib.contextmanager
def at_safe_points() -> Iterator[Callable[[], None]]:
    """Around a loop of Python code that runs library machinery (a process pool's futures and threads, weakref
    callbacks): Ctrl-C or SIGTERM is only noted when it lands, and raised (KeyboardInterrupt, Terminated) by
    the yielded check() where the loop calls it. A KeyboardInterrupt raised inside a weakref callback or a
    __del__ is swallowed ('Exception ignored in ...' on stderr) and the Ctrl-C lost. The loop must call
    check() at least every few tenths of a second (the watchdog ends the process after GRACE_SECONDS)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    landed: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in _ENDINGS if signum not in _ignored()}

    def note(signum: int, frame: object) -> None:
        landed.append(signum)

    def check() -> None:
        if landed:
            raise Terminated() if landed[0] == signal.SIGTERM else KeyboardInterrupt()

    for signum in previous:
        signal.signal(signum, note)
    try:
        yield check
        check()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def keep_sigint() -> Iterator[None]:
    """Around a native call that installs its own SIGINT handler for its duration (CBC does, for each solve,
    and then swallows Ctrl-C): a helper thread puts alcli's handler back within milliseconds each time,
    so Ctrl-C still reaches the watchdog. A no-op without the watchdog or where libc cannot be reached."""
    saved = _sigaction() if _state["armed"] else None
    if saved is None:
        yield
        return
    done = threading.Event()

    def restore() -> None:
        with contextlib.suppress(Exception):  # named in /proc/PID/task/*/comm (tests watch for it)
            _libc[0].prctl(15, b"alcli-sigint", 0, 0, 0)  # type: ignore[attr-defined]  # PR_SET_NAME
        while not done.wait(0.002):
            now = _sigaction()
            if now is not None and now[:_HANDLER] != saved[:_HANDLER] and now[:_HANDLER] != _SIG_IGN:
                _sigaction(saved)

    thread = threading.Thread(target=restore, name="alcli-keep-sigint", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        _sigaction(saved)


_HANDLER = 8 if sys.maxsize > 2**32 else 4  # sa_handler, struct sigaction's first field (Linux, macOS)
_SIG_IGN = (1).to_bytes(_HANDLER, sys.byteorder)
_libc: list[object] = []


def _sigaction(new: bytes | None = None) -> bytes | None:
    """SIGINT's raw struct sigaction (opaque bytes), or set it from such bytes. None when unavailable."""
    import ctypes

    try:
        if not _libc:
            _libc.append(ctypes.CDLL(None, use_errno=True))
        old = ctypes.create_string_buffer(512)  # larger than any struct sigaction
        arg = ctypes.create_string_buffer(new, 512) if new is not None else None
        if _libc[0].sigaction(signal.SIGINT, arg, None if new is not None else old) != 0:  # type: ignore[attr-defined]
            return None
    except (OSError, AttributeError):
        return None
    return old.raw


def remove_temp_files() -> None:
    io = sys.modules.get("alcli.artifacts.output")
    for path in list(getattr(io, "temp_files", ())):
        with contextlib.suppress(OSError):
            os.unlink(path)
