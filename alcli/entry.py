"""The `alcli` process entry point: signal handlers first, then the heavy imports, then the command line.

How each signal ends a command is alcli.signals' concern; this module only orders the start so that a
Ctrl-C while click, rich, numpy, h5py and the command modules import still ends with one line.
"""

from __future__ import annotations

from alcli import signals


def main() -> None:
    signals.install_early()
    signals.announce("importing")
    from alcli import cli  # click, rich, numpy, h5py and every command module

    try:
        signals.arm_watchdog()
        cli.main()
    except KeyboardInterrupt as exc:
        signals.end_on(exc)
    signals.exiting()  # done: a Ctrl-C from now on changes nothing
