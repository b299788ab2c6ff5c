"""The `alcli` command line: parse options, open artifacts, call the library, report on stderr.

Exit status: 0 success, 2 bad input or usage (one line on stderr naming the file and what is wrong),
1 an internal error (a bug: please report it), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import sys

import click

from alcli import __version__, console
from alcli.errors import AlcliError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="alcli")
@click.option("-q", "--quiet", is_flag=True, help="No summaries or progress bars on stderr.")
def cli(quiet: bool) -> None:
    """Batch active learning: train, embed, select (core-set k-Center and baselines), evaluate.

    Commands exchange HDF5 artifacts; `-` means stdin/stdout, so a round is a pipeline:

        alcli embed pool.h5 --checkpoint ckpt.h5 - | alcli select - --labeled l0.h5 --budget 100 -o l1.h5
    """
    console.set_quiet(quiet)


def _register() -> None:
    """Every module in alcli/commands/ exposes `command`. Modules import heavy libraries (torch)
    inside their functions, so `alcli select` never pays for torch."""
    import importlib
    import pkgutil

    from alcli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"alcli.commands.{info.name}")
        cli.add_command(module.command)


_register()


def run(args: list[str] | None = None) -> object:
    """Parse and run one command line; what `cli.main(standalone_mode=False)` does, without its handler of
    KeyboardInterrupt, which writes a blank line to stderr (before alcli's one line) when Ctrl-C lands in
    click's own frames (parsing, the group callback). Shell completion (_ALCLI_COMPLETE) is click's own."""
    if os.environ.get("_ALCLI_COMPLETE"):
        return cli.main(args, prog_name="alcli")  # prints the completion script or the candidates, exits
    try:
        with cli.make_context("alcli", list(sys.argv[1:] if args is None else args)) as ctx:
            return cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code


def main() -> None:
    try:
        code = run()
        if isinstance(code, int) and code:
            sys.exit(code)
    except AlcliError as exc:
        _fail(str(exc), exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        from alcli.signals import Terminated

        _fail(*(("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)))
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare `alcli`: the help, on stderr, exit 2
        _fail(exc.format_message(), 2, prefix="")
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        _fail(f"{where}{exc.format_message()} (see --help)", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), 2 if exc.exit_code == 2 else exc.exit_code)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not our error; keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)


def _fail(message: str, code: int, prefix: str = "alcli: error: ") -> None:
    from alcli import signals

    if signals.exiting():  # False: the interrupt watchdog is printing the line and ending the process
        sys.stderr.write(f"{prefix}{message}\n")
        sys.stderr.flush()
    io = sys.modules.get("alcli.artifacts.output")
    if io is not None and io.hdf5_state["left_open"]:  # a failed HDF5 write: skip HDF5's exit handler
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os._exit(code)
    sys.exit(code)
