"""`dln sweep` and `dln make-data`: grids of runs from a TOML spec, and problems as files.

    dln sweep SPEC.toml --out RESULTS.zarr [--chunk N] [--workers N | --scheduler ADDRESS]
    dln sweep --status RESULTS.zarr
    dln make-data [--n N --d D --s S --noise SIGMA --seed K --n-test M] --out FILE.npz

`dln sweep` runs `dln.sweep` (see `dln/sweep.py` for the spec): the same command run again
after a crash or a kill continues where it stopped. `--scheduler tcp://HOST:8786` submits the
tasks to a running Dask cluster (`dask scheduler`, `dask worker ADDRESS`).
"""
import json
import os
import re
import time

import numpy as np

from ._checks import InputError
from ._io import writable_file
from .cli_simulate import _load, _number, _problem_arguments
from .sweep import MAX_CHUNK, MAX_WORKERS

#: library argument names -> the flags that set them
FLAGS = {"out": "--out", "chunk": "--chunk", "workers": "--workers", "scheduler": "--scheduler", "spec": "SPEC"}


def add_arguments(parser, cmd):
    if cmd == "make-data":
        _problem_arguments(parser)
        parser.add_argument("--out", required=True, metavar="FILE.npz", help="the .npz file to write")
        return
    parser.add_argument("spec", nargs="?", metavar="SPEC.toml", help="the sweep's spec (see README, Sweeps)")
    parser.add_argument("--out", metavar="RESULTS.zarr", help="zarr store the results go to, task by task; "
                                                              "run again to resume")
    parser.add_argument("--chunk", type=_number(int, 1, MAX_CHUNK),
                        help="runs per task (one vectorized run; default 64, or the store's when resuming)")
    parser.add_argument("--workers", type=_number(int, 1, MAX_WORKERS),
                        help="local worker processes, one BLAS thread each (default: the cores; 1: in this process; "
                             "never more than the tasks)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--status", metavar="RESULTS.zarr", help="say how much of a stored sweep is done, then exit")


def _flagify(message):
    return re.sub(r"`([a-z_]+)`", lambda m: f"`{FLAGS.get(m.group(1), m.group(1))}`", str(message))


def _make_data(args, cmd):
    """`dln make-data`: generate (or load) a problem and write it to `--out`, checked before any work."""
    writable_file(args.out, "--out")
    problem = _load(args, cmd)
    problem.save(args.out)
    info = {"out": args.out, "n": problem.n, "d": problem.d,
            "n_test": 0 if problem.X_test is None else problem.X_test.shape[1]}
    print(json.dumps(info) if args.json else
          f"wrote {args.out}: n = {info['n']}, d = {info['d']}, n_test = {info['n_test']}")
    return 0


def _status(path):
    from .sweep import status
    try:
        s = status(path)
    except InputError as e:
        raise InputError(str(e).replace("`out`", "`--status`")) from None
    state = "complete" if s["complete"] else ("not started" if not s["tasks_done"] else "incomplete")
    print(f"{path}: {s['tasks_done']} of {s['tasks']} tasks done ({s['runs_done']} of {s['runs']} runs), "
          f"{state}; started {s['start_time']}" + (f", finished {s['end_time']}" if s["end_time"] else ""))
    return 0


def main(args, cmd):
    if cmd == "make-data":
        return _make_data(args, cmd)
    from .sweep import sweep
    if args.status is not None:
        if args.spec is not None:
            raise InputError("`--status` takes the store alone; give SPEC.toml without --status to run it")
        return _status(args.status)
    if args.spec is None:
        raise InputError("`SPEC` is required: dln sweep SPEC.toml --out RESULTS.zarr")
    if args.out is None:
        raise InputError("`--out` is required: the zarr store the results go to (run again to resume)")
    if args.scheduler is not None and args.workers is not None:
        raise InputError("`--workers` has no effect with `--scheduler` (the cluster's workers run the tasks)")
    t0 = time.perf_counter()
    try:
        ds = sweep(args.spec, args.out, chunk=args.chunk, workers=args.workers, scheduler=args.scheduler,
                   progress=os.environ.get("DLN_NO_PROGRESS") != "1")
    except InputError as e:
        raise InputError(_flagify(e)) from None
    status, counts = np.unique(ds.status.values.astype(str), return_counts=True)
    print(f"{ds.status.size} grid points ({ds.attrs['tasks']} tasks) in {time.perf_counter() - t0:.1f} s -> "
          f"{args.out}: " + ", ".join(f"{c} {s}" for s, c in zip(status, counts)))
    return 0
