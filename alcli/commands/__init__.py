"""One module per `alcli` subcommand; each exposes `command`."""
