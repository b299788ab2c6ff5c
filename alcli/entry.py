"""The `alcli` process entry point: signals first, then the heavy imports, then the command line.

Ctrl-C must end any command with one line and exit 130, wherever it lands:
- while modules import (the first ~0.3 s, longer on a busy box) there is nothing to clean up, so the
  handler installed here, before any heavy import, prints the line and leaves at once (`os._exit`, no
  interpreter shutdown that could wait on half-initialised native libraries);
- while a command runs, SIGINT raises KeyboardInterrupt in the main thread as usual, so temporary files
  are removed on the way out (alcli.artifacts.io), and alcli.cli prints the line;
- inside a long native call (FAISS, BLAS, CBC, torch) the main thread sees the KeyboardInterrupt only when
  the call returns, so a watchdog thread, woken by the signal itself (signal.set_wakeup_fd), gives the
  main thread a short grace period, then removes this process's temporary files and exits 130 itself.

SIGXFSZ (a file size limit) is ignored so that a write beyond the limit fails with EFBIG and becomes a
one-line error naming the output, instead of killing the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

GRACE_SECONDS = 1.0  # how long a native call may hold the main thread after Ctrl-C
EXIT_SECONDS = 10.0  # how long an exit already under way may take before the watchdog ends it

_MESSAGE = b"alcli: error: interrupted\n"
_state = {"exiting": False}


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    announce("importing")
    from alcli import cli  # click, rich, numpy, h5py and every command module

    _arm_watchdog()
    cli.main()


def announce(phase: str) -> None:
    """With ALCLI_STARTED_FILE set (tests, supervisors), write "PID PHASE" there: `importing` once the
    interrupt handler is in place, `running` when a command's own work begins (after its checks)."""
    path = os.environ.get("ALCLI_STARTED_FILE")
    if path:
        with open(path, "w") as fh:
            fh.write(f"{os.getpid()} {phase}\n")


def exiting() -> None:
    """Called by the main thread once it has handled the interrupt and is leaving on its own."""
    _state["exiting"] = True


def _interrupted_while_starting(signum: int, frame: object) -> None:
    os.write(2, _MESSAGE)
    os._exit(130)


def _arm_watchdog() -> None:
    import socket

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread (alcli embedded in another program): keep Python's default
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=_watch, args=(reader, writer), name="alcli-interrupt", daemon=True)
    thread.start()


def _watch(reader: object, writer: object) -> None:
    import time

    while True:
        data = reader.recv(64)  # type: ignore[attr-defined]
        if data and signal.SIGINT in data:
            break
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline:
        if _state["exiting"]:
            time.sleep(EXIT_SECONDS)  # the main thread is on its way out; only a hung shutdown gets here
            os._exit(130)
        time.sleep(0.02)
    _remove_temp_files()
    os.write(2, _MESSAGE)
    os._exit(130)


def _remove_temp_files() -> None:
    io = sys.modules.get("alcli.artifacts.io")
    for path in list(getattr(io, "temp_files", ())):
        with contextlib.suppress(OSError):
            os.unlink(path)
