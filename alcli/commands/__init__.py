"""One module per `alcli` subcommand; each exposes `command` (alcli.cli registers them all).

A command parses its options, opens its artifacts, calls the library and reports on stderr. It may import
anything below it: learn, labelling, report, scale, selection, kcenter, artifacts, options, console,
errors. Nothing imports a command.
"""
