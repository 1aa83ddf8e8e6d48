"""The `dln` command line: `dln COMMAND [options]`.

Each command lives in a module with `add_arguments(parser)` and `main(args)`;
bad input exits with code 2 and one line that names the argument and its range.
Ctrl-C (or SIGTERM) exits with one line and code 130 (143); files being written are
removed (`dln._io.atomic_path`); a closed output pipe (`dln ... | head`) ends quietly.
A Ctrl-C that Python swallows ("Exception ignored in" a weakref or `__del__` callback)
still ends the command that way: at the command's next `raise_if_interrupted()`, or when it returns.
Warnings raised while a command runs are printed as one line each after it, and
dropped when it fails with an input error (the error line says what went wrong).
"""
import argparse
import importlib
import os
import re
import signal
import sys
import threading
import warnings
from contextlib import contextmanager

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
    """argparse with one-line errors (exit code 2), and negative numbers (`-1e-3`, `-inf`, `-1,2`)
    taken as values, so that the range check, not "expected one argument", answers them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class _Terminated(Exception):
    """SIGTERM, raised in the main thread so that `finally` blocks remove partial files."""


def _terminate(signum, frame):
    raise _Terminated


#: the Ctrl-Cs received while the current command runs (see `_signals`)
_interrupts = []


def _interrupt(signum, frame):
    """SIGINT: noted, then raised as `KeyboardInterrupt`, which Python swallows when it lands in a weakref
    or `__del__` callback; the note outlives it."""
    _interrupts.append(signum)
    raise KeyboardInterrupt


def _unraisable(previous):
    """An unraisable-exception hook: a swallowed `KeyboardInterrupt` is noted and not printed (the command
    ends with its one line instead); any other exception goes to `previous`."""
    def hook(unraisable):
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            _interrupts.append(signal.SIGINT)
        else:
            previous(unraisable)
    return hook


def raise_if_interrupted():
    """Raise `KeyboardInterrupt` if Ctrl-C was pressed during this command but swallowed on the way; a
    command that works in units (a figure each) calls it between them, so it stops at once."""
    if _interrupts:
        raise KeyboardInterrupt


@contextmanager
def _signals():
    """While a command runs in the main thread (signal handlers live there only): SIGTERM raises
    `_Terminated`, SIGINT is noted and raised (unless it is ignored, as in a background job `dln ... &`),
    and a swallowed `KeyboardInterrupt` is noted, not printed. Everything is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupts.clear()
    hook = sys.unraisablehook
    term = signal.signal(signal.SIGTERM, _terminate)
    intr = signal.getsignal(signal.SIGINT)
    ours = intr not in (signal.SIG_IGN, None)  # None: a handler set outside Python, left alone
    if ours:
        signal.signal(signal.SIGINT, _interrupt)
    sys.unraisablehook = _unraisable(hook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        if ours:
            signal.signal(signal.SIGINT, intr)
        signal.signal(signal.SIGTERM, term)


def main(argv=None):
    """`dln COMMAND ...`; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    cmd = argv[0] if argv and argv[0] in COMMANDS else None
    prog = f"dln {cmd}" if cmd else "dln"
    try:
        with _signals(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = _main(argv)
            raise_if_interrupted()  # never a success after a swallowed Ctrl-C
            if code != 2:
                for text in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
                    sys.stderr.write(f"{prog}: warning: {' '.join(text.split())}\n")
            return code
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except _Terminated:
        sys.stderr.write(f"{prog}: terminated\n")
        return 143
    except BrokenPipeError:
        # the reader (e.g. `head`) closed the pipe: stop quietly, and keep Python's exit-time flush of
        # stdout from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv):
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
    from . import _interrupts_deferred
    with _interrupts_deferred():  # the command's modules (sympy, matplotlib) load for a while
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
