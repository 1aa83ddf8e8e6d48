"""The `dln` command line: `dln COMMAND [options]`.

Each command lives in a module with `add_arguments(parser)` and `main(args)`;
bad input exits with code 2 and one line that names the argument and its range.
"""
import argparse
import importlib
import sys

from ._checks import InputError

#: command -> (module, one-line help)
COMMANDS = {
    "simulate": ("dln.cli_simulate", "train a diagonal linear network (flow or steps)"),
    "solve": ("dln.cli_simulate", "solve the implicit-bias problem argmin Q_alpha s.t. X beta = y"),
    "validate": ("analysis.validate", "check every claim of the theory against simulation"),
    "figures": ("figures.cli", "regenerate the theory figures"),
    "explore": ("dln.explore", "interactive explorer"),
    "bench": ("benchmarks.bench", "speed and memory benchmarks"),
    "sweep": ("dln.cli_sweep", "run a grid of runs from a TOML spec into a resumable zarr store"),
    "make-data": ("dln.cli_sweep", "write a generated problem to an .npz file (the --data format)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    top = _Parser(prog="dln", description=__doc__.splitlines()[0])
    top.add_argument("command", choices=list(COMMANDS), help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    if argv and argv[0] in ("-V", "--version"):
        from . import __version__
        print(f"dln {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    cmd = top.parse_args(argv[:1]).command
    module = importlib.import_module(COMMANDS[cmd][0])
    parser = _Parser(prog=f"dln {cmd}", description=COMMANDS[cmd][1])
    module.add_arguments(parser, cmd)
    args = parser.parse_args(argv[1:])
    try:
        return module.main(args, cmd) or 0
    except InputError as e:
        sys.stderr.write(f"dln {cmd}: error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
