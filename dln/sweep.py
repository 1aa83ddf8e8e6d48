"""Sweeps: a labeled grid of runs from one spec, computed in vectorized tasks, stored task by task.

    ds = dln.sweep("spec.toml", out="results.zarr")      # an xarray.Dataset

The spec (a TOML file, or the same content as a dict) has the sections

- `[problem]`: the generated problem (`n, d, s, noise, n_test, seed`, as `make_problem`) or
  `data = "file.npz"` (relative to the spec file);
- `[model]`: `param = "squares" | "product" | "depth"`, `depth`;
- `[algorithm]`: `name` (a key of `dln.ALGORITHMS`), its declared hyperparameters, `sample_seed`;
- `[init]`: `alpha`;
- `[integrator]`: `kind = "flow" | "steps"`, the integrator's declared hyperparameters (`Flow.hyper`,
  `Steps.hyper`), the stopping rule `loss_tol`, `relative`, `max_wall` (seconds, per task), and
  `save_at` (times of the `time` axis).

Every list (except `save_at`) is an axis of the grid, and so are `{logspace = [a, b, k]}` and
`{linspace = [a, b, k]}`; the dimension is named as its key (`name` gives `algorithm`).
A spec without axes is one run (a dataset without grid dimensions). A grid has at most
`MAX_POINTS` points, and its dataset and stored runs must fit in the available memory.
With `name` as an axis, an algorithm ignores the axes of hyperparameters it does not take:
its run is computed once and repeated along them.

Execution: the distinct runs are grouped by what one `dln.run` must share (the problem and every
hyperparameter that is not per run) and each group is cut into tasks of at most `chunk` runs
(`1 <= chunk <= MAX_CHUNK`), in grid order. A task is one vectorized `dln.run` whose runs share
one problem's arrays. A run's last bits depend on the batch it ran in (BLAS products of different
shapes round differently), so the tasks are a function of the spec and `chunk` alone: a store
remembers its `chunk`, and a resumed sweep recomputes exactly the tasks that were missing. The
tasks run in this process, on a local cluster of `1 <= workers <= MAX_WORKERS` processes (never
more than there are tasks to do) or on a Dask scheduler.

Bad input is refused before anything runs, with one `InputError` naming it: every task's objects
are built and checked while planning, the store's directory is checked and the scheduler connected
before the store is created; an `InputError` raised inside a local Dask worker is the sweep's
error, not a worker's logged traceback.

Storage: with `out`, the zarr group `out/tasks` holds every task's runs in its own chunk of flat
arrays and a `done` flag per task, written after the task's data (each zarr chunk is written
atomically), so a task is complete or absent. Once every task is done the labeled dataset is
written at the root of `out` (`xarray.open_zarr(out)` reads it).
"""
import inspect
import itertools
import json
import math
import os
import sys
import tomllib
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import algorithms as _alg
from ._checks import ALPHA_RANGE, InputError, fits_in_memory
from ._hyper import Hyper
from ._io import writable_file
from .flow import Flow
from .integrate import STOP, Steps, run
from .models import Depth, Product
from .problem import generated_fits, load_problem, make_problem

#: default runs per task: a batch large enough to vectorize, small enough to balance workers
CHUNK = 64
#: the most runs per task: a larger batch vectorizes no better, and every task holds `chunk` slots
MAX_CHUNK = 65536
#: the most grid points: the plan forms each point's run in Python (about 20 s for the most)
MAX_POINTS = 1_000_000
#: the most local worker processes
MAX_WORKERS = 256
#: bytes a string of a run (`status`, `message`) is counted as when the memory of a sweep is estimated
TEXT_BYTES = 128
#: environment variables that set the BLAS and OpenMP threads of a local worker (to 1)
BLAS_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: integrator kinds of `[integrator] kind`
INTEGRATORS = {"flow": Flow, "steps": Steps}
#: `[model] param` -> model factory of `depth`
MODELS = {"squares": lambda depth: Depth(2), "product": lambda depth: Product(), "depth": Depth}

ALPHA = Hyper("alpha", "initialization scale u = v = alpha", lo=ALPHA_RANGE[0], hi=ALPHA_RANGE[1], default=1.0)
SAMPLE_SEED = Hyper("sample_seed", "seed of the run's random stream", kind="int", lo=0, default=0)
SEED = Hyper("seed", "seed of the generated problem", kind="int", lo=0)
N_TEST = Hyper("n_test", "test samples of the generated problem (0: none)", kind="int", lo=0)

#: variables of a sweep (per run); `saved_*` are added on the `time` axis when `save_at` is given
SCALARS = ("train_loss", "test_loss", "grad_norm", "t_final")
COORDS = ("beta", "alpha_eff")
COUNTS = ("steps", "grad_evals")
TEXT = ("status", "message")
SAVED = ("saved_t", "saved_train_loss", "saved_test_loss", "saved_grad_norm", "saved_beta", "saved_alpha_eff")


def _generated_keys():
    """`[problem]` keys of a generated problem and their defaults, from `make_problem`'s signature."""
    return {k: p.default for k, p in inspect.signature(make_problem).parameters.items()}


def _read(spec):
    """The spec as a dict and the directory relative `data` paths start from."""
    if isinstance(spec, dict):
        try:  # numpy arrays and scalars become lists and numbers
            return json.loads(json.dumps(spec, default=lambda o: o.tolist())), Path.cwd()
        except (TypeError, AttributeError, ValueError) as e:
            raise InputError(f"`spec` must hold numbers, strings, booleans, lists and tables only: {e}") from None
    if not isinstance(spec, (str, os.PathLike)):
        raise InputError(f"`spec` must be a path to a TOML file or a dict; got {type(spec).__name__}")
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"`spec` must be an existing TOML file; {str(spec)!r} does not exist")
    try:
        return tomllib.loads(path.read_text()), path.parent
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"`spec` file {str(spec)!r} is not valid TOML: {e}") from None


def _values(where, value):
    """`(values, is_axis)` of one spec entry: a list or `{logspace/linspace = [a, b, k]}` is an axis."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("logspace", "linspace"):
            raise InputError(f"`{where}` must be a value, a list, {{logspace = [a, b, k]}} or "
                             f"{{linspace = [a, b, k]}}; got {value!r}")
        kind, arg = next(iter(value.items()))
        if (not isinstance(arg, list) or len(arg) != 3 or
                not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in arg)):
            raise InputError(f"`{where}` {kind} must be [a, b, k] with numbers a, b and a count k; got {arg!r}")
        if not isinstance(arg[2], int) or not 1 <= arg[2] <= MAX_POINTS:
            raise InputError(f"`{where}` {kind} = [a, b, k] needs an integer count 1 <= k <= {MAX_POINTS} (the "
                             f"most grid points); got k = {arg[2]!r}")
        return [float(x) for x in getattr(np, kind)(*arg)], True
    if isinstance(value, list):
        if not value:
            raise InputError(f"axis `{where}` is empty: give at least one value")
        if any(isinstance(x, (list, dict)) for x in value):
            raise InputError(f"axis `{where}` must be a list of plain values; got {value!r}")
        return value, True
    return [value], False


class Plan:
    """A spec resolved into a grid, its distinct runs and the tasks that compute them.

    Attributes
    ----------
    spec : dict
        The spec as given (JSON-ready).
    axes : dict
        Dimension name -> its values, in spec order.
    index : ndarray of int, shape (grid...)
        Slot (`task * chunk + position`) of the run at each grid point.
    tasks : list of dict
        Each task's arguments (`_compute` builds its `dln.run` from them).
    d, save_at, chunk
    """

    def __init__(self, spec, chunk=CHUNK):
        raw, base = _read(spec)
        self.spec = raw
        if not isinstance(chunk, int) or isinstance(chunk, bool) or not 1 <= chunk <= MAX_CHUNK:
            raise InputError(f"`chunk` must be an integer with 1 <= chunk <= {MAX_CHUNK} (runs per task); "
                             f"got {chunk!r}")
        self.chunk = chunk
        sections = {"problem", "model", "algorithm", "init", "integrator"}
        bad = set(raw) - sections
        if bad:
            raise InputError(f"spec: unknown section [{sorted(bad)[0]}]; allowed: {', '.join(sorted(sections))}")
        for s, v in raw.items():
            if not isinstance(v, dict):
                raise InputError(f"spec: [{s}] must be a table of keys; got {v!r}")
        sec = {s: dict(raw.get(s, {})) for s in sections}
        self.data = self._problem(sec["problem"], base)
        self.save_at = self._save_at(sec["integrator"].pop("save_at", []))
        fixed, self.axes, keys = {}, {}, {}
        for s in ("problem", "model", "algorithm", "init", "integrator"):
            for k, v in sec[s].items():
                values, axis = _values(f"{s}.{k}", v)
                if not axis:
                    fixed[s, k] = values[0]
                    continue
                dim = "algorithm" if (s, k) == ("algorithm", "name") else k
                if dim in self.axes:
                    raise InputError(f"spec: two axes named `{dim}` ({keys[dim][0]}.{dim} and {s}.{k}); "
                                     "make one of them a single value")
                self.axes[dim], keys[dim] = values, (s, k)
        self._check_keys(fixed, keys)
        self._check_points()
        self._shapes = set()
        self._runs(fixed, keys)
        self._check_memory()

    # -- the spec's sections ------------------------------------------------------------------

    def _problem(self, problem, base):
        """The `data` problem (loaded once), or None for a generated one; generated keys checked."""
        gen = _generated_keys()
        if "data" in problem:
            others = sorted(set(problem) - {"data"})
            if others:
                raise InputError(f"spec: problem.{others[0]} has no effect with problem.data (give one or the other)")
            path = problem["data"]
            if not isinstance(path, str):
                raise InputError(f"`problem.data` must be one .npz file name; got {path!r}")
            data = _load(base / path)
            if data.P != 1:
                raise InputError(f"`problem.data` must hold one problem (X of shape (n, d)); got {data.P} stacked")
            self.d = data.d
            return data
        unknown = sorted(set(problem) - set(gen))
        if unknown:
            raise InputError(f"spec: unknown key problem.{unknown[0]}; allowed: data or {', '.join(gen)}")
        if isinstance(problem.get("d"), (list, dict)):
            raise InputError("`problem.d` must be a single value (beta has one coordinate axis)")
        self.d = problem.get("d", gen["d"])
        return None

    @staticmethod
    def _save_at(save_at):
        if not isinstance(save_at, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                                    for t in save_at):
            raise InputError(f"`integrator.save_at` must be a list of times; got {save_at!r}")
        t = np.asarray(save_at, float)
        if not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(np.diff(t) <= 0):
            raise InputError(f"`integrator.save_at` must be finite times >= 0 in increasing order, each once; "
                             f"got {save_at!r}")
        return t

    def _value(self, keys, fixed, s, k):
        """Every value `s.k` takes: its axis or its single value."""
        for dim, sk in keys.items():
            if sk == (s, k):
                return self.axes[dim]
        return [fixed[s, k]] if (s, k) in fixed else []

    def _check_keys(self, fixed, keys):
        """Unknown keys, algorithms and integrator kinds, before any grid is formed."""
        given = set(fixed) | set(keys.values())
        for s, k in (("model", "param"), ("integrator", "kind")):
            if (s, k) in set(keys.values()):
                raise InputError(f"`{s}.{k}` must be a single value, not an axis")
        kind = fixed.get(("integrator", "kind"), "flow")
        if kind not in INTEGRATORS:
            raise InputError(f"`integrator.kind` must be one of {', '.join(map(repr, INTEGRATORS))}; got {kind!r}")
        self.kind, self.integrator = kind, INTEGRATORS[kind]
        param = fixed.get(("model", "param"), "squares")
        if param not in MODELS:
            raise InputError(f"`model.param` must be one of {', '.join(map(repr, MODELS))}; got {param!r}")
        names = self._value(keys, fixed, "algorithm", "name") or ["gd"]
        for name in names:
            if name not in _alg.ALGORITHMS:
                raise InputError(f"`algorithm.name` must be one of {', '.join(_alg.ALGORITHMS)}; got {name!r}")
        takes = {h.name for n in names for h in _alg.ALGORITHMS[n].hyper}
        allowed = {"model": {"param", "depth"}, "algorithm": {"name", "sample_seed"} | takes, "init": {"alpha"},
                   "integrator": {"kind"} | {h.name for h in self.integrator.hyper} | set(STOP)}
        for s, k in sorted(given):
            if s == "problem":
                continue
            if k not in allowed[s]:
                if s == "algorithm" and any(k in {h.name for h in c.hyper} for c in _alg.ALGORITHMS.values()):
                    raise InputError(f"spec: algorithm.{k} is not a hyperparameter of {' or '.join(names)} "
                                     f"(it takes {', '.join(sorted(takes)) or 'none'})")
                raise InputError(f"spec: unknown key {s}.{k}; allowed in [{s}]: {', '.join(sorted(allowed[s]))}")

    # -- the grid ------------------------------------------------------------------------------

    def _check_points(self):
        """The number of grid points, at most `MAX_POINTS`, before the grid is formed."""
        points = math.prod(len(v) for v in self.axes.values())
        if points > MAX_POINTS:
            sizes = " x ".join(f"`{dim}` {len(v)}" for dim, v in self.axes.items())
            raise InputError(f"spec: the grid must have at most {MAX_POINTS} points; got {sizes} = {points}: "
                             "shorten an axis")

    def _check_memory(self):
        """The labeled dataset of every grid point and the runs of every task's slots fit in memory
        (both are held at the end), before anything runs."""
        sizes = {"coord": self.d, "time": self.save_at.size}
        per_run = sum(math.prod(sizes[x] for x in dims) * (TEXT_BYTES if dt is str else np.dtype(dt).itemsize)
                      for dims, dt, _ in _layout(self).values())
        slots = len(self.tasks) * self.chunk
        fits_in_memory(per_run * (self.index.size + slots),
                       f"spec: the grid's {self.index.size} points and {len(self.tasks)} tasks of `chunk` = "
                       f"{self.chunk} runs (d = {self.d})")

    def _runs(self, fixed, keys):
        """Distinct runs, their groups and tasks, and the grid's slot index; every task's
        objects are built once here so that a bad value is refused before anything runs."""
        gen = _generated_keys()
        integ_per_run = {h.name for h in self.integrator.hyper if h.per_run}
        dims = list(self.axes)
        shape = tuple(len(v) for v in self.axes.values())
        runs, groups, run_of = {}, {}, np.empty(int(np.prod(shape)), np.int64)
        for flat, combo in enumerate(itertools.product(*self.axes.values())):
            cfg = dict(fixed)
            cfg.update((keys[dim], v) for dim, v in zip(dims, combo))
            name = cfg.get(("algorithm", "name"), "gd")
            cls = _alg.ALGORITHMS[name]
            hyper = {h.name: h for h in cls.hyper}
            group, per_run = {"algorithm": {"name": name}}, {}
            for (s, k), v in cfg.items():
                if s == "problem":
                    group.setdefault("problem", {})[k] = v
                elif s == "model":
                    group.setdefault("model", {})[k] = v
                elif s == "init" or (s, k) == ("algorithm", "sample_seed"):
                    per_run[k] = v
                elif s == "algorithm" and k in hyper:
                    (per_run if hyper[k].per_run else group["algorithm"]).__setitem__(k, v)
                elif s == "integrator" and k in integ_per_run:
                    per_run["integrator." + k] = v
                elif s == "integrator":
                    group.setdefault("integrator", {})[k] = v
            gkey = json.dumps(group, sort_keys=True)
            rkey = json.dumps(per_run, sort_keys=True)
            members = groups.setdefault(gkey, {})
            if rkey not in members:
                members[rkey] = per_run
            run_of[flat] = runs.setdefault((gkey, rkey), len(runs))
        self.tasks, slot = [], np.empty(len(runs), np.int64)
        for gkey, members in groups.items():
            group = json.loads(gkey)
            items = list(members.items())
            for start in range(0, len(items), self.chunk):
                part = items[start:start + self.chunk]
                task = self._task(group, [p for _, p in part], gen)
                for j, (rkey, _) in enumerate(part):
                    slot[runs[gkey, rkey]] = len(self.tasks) * self.chunk + j
                self.tasks.append(task)
        self.index = slot[run_of].reshape(shape)
        self.runs = len(runs)

    def _task(self, group, per_run, gen):
        """One task's arguments, checked by building its objects."""
        problem = {k: group.get("problem", {}).get(k, v) for k, v in gen.items()} if self.data is None else None
        integrator = {k: v for k, v in group.get("integrator", {}).items() if k not in STOP and k != "kind"}
        for k in per_run[0]:
            if k.startswith("integrator."):
                integrator[k[11:]] = [p[k] for p in per_run]
        algorithm = dict(group["algorithm"])
        hyper = {h.name: h for h in _alg.ALGORITHMS[algorithm["name"]].hyper}
        algorithm.update({k: [p[k] for p in per_run] for k in per_run[0] if k in hyper})
        stop = group.get("integrator", {})
        task = {"problem": problem, "model": group.get("model", {}), "algorithm": algorithm,
                "kind": self.kind, "integrator": integrator,
                "alpha": [p.get("alpha", ALPHA.default) for p in per_run],
                "sample_seed": [p.get("sample_seed", SAMPLE_SEED.default) for p in per_run],
                "stop": {k: stop.get(k, h.default) for k, h in STOP.items()}, "save_at": self.save_at.tolist()}
        self._check(task)
        return task

    def _check(self, task):
        """Build the task's objects (every value validated by its declaration) and make the checks
        `run` would make, so that a bad value is refused before anything runs."""
        try:
            objects = _objects(task)
            if task["problem"] is not None:
                p = task["problem"]
                _integer(SEED, p["seed"])
                shape = json.dumps({k: v for k, v in p.items() if k != "seed"}, sort_keys=True)
                if shape not in self._shapes:  # each distinct shape generated once, small
                    make_problem(**{**p, "seed": 0, "n_test": 0})
                    _integer(N_TEST, p["n_test"])
                    generated_fits(p["n"], p["d"], p["n_test"])  # (the test set is not drawn here)
                    self._shapes.add(shape)
        except InputError as e:
            raise InputError(f"spec: {e}") from None
        algorithm, integrator = objects["algorithm"], objects["integrator"]
        name = task["algorithm"]["name"]
        if isinstance(integrator, Flow) and not algorithm.flow:
            raise InputError(f"spec: algorithm {name} is defined for discrete steps only; use integrator.kind = "
                             "\"steps\" with eta")
        n = self.data.n if task["problem"] is None else task["problem"]["n"]
        for h in algorithm.hyper:
            if h.divides == "n" and np.any(n % np.asarray(getattr(algorithm, h.name)) != 0):
                raise InputError(f"spec: `algorithm.{h.name}` must divide n = {n}; got {getattr(algorithm, h.name)}")
        if task["stop"]["loss_tol"] == 0 and isinstance(integrator, Flow) and not np.isfinite(integrator.max_time):
            raise InputError("spec: `integrator.loss_tol` = 0 runs to the cap, so the flow needs a finite max_time")


def _integer(h, value):
    """`problem.seed` or `problem.n_test` checked by its declaration `h`, and an integer as `make_problem`
    takes it: a float such as 3.0 (the values of a linspace axis) is refused there, so here too."""
    if isinstance(value, (float, bool)):
        raise InputError(f"`problem.{h.name}` must be an integer ({h.range}), as make_problem takes it; got "
                         f"{value!r} (a linspace axis gives floats: list the integers)")
    h.check(value)


def _load(path):
    """The problem of the file `path` (`load_problem`), its errors naming `problem.data` and the file."""
    try:
        return load_problem(path)
    except InputError as e:
        msg = str(e).replace("`data`", "`problem.data`")
        raise InputError(msg if "`problem.data`" in msg else f"`problem.data` file {str(path)!r}: {msg}") from None


def _objects(task):
    """The algorithm, integrator, model and `run` keywords of a task (validated by their declarations)."""
    def arrays(d):
        return {k: np.asarray(v) if isinstance(v, list) else v for k, v in d.items()}
    algorithm = _alg.ALGORITHMS[task["algorithm"]["name"]](**arrays(
        {k: v for k, v in task["algorithm"].items() if k != "name"}))
    integrator = INTEGRATORS[task["kind"]](**arrays(task["integrator"]))
    model = MODELS[task["model"].get("param", "squares")](task["model"].get("depth", 3))
    return {"algorithm": algorithm, "integrator": integrator, "model": model,
            "alpha": ALPHA.check(task["alpha"]),
            "sample_seed": SAMPLE_SEED.check(np.asarray(task["sample_seed"])),
            **{k: STOP[k].check(v) for k, v in task["stop"].items() if v is not None}}


@lru_cache(maxsize=4)
def _generated(key):
    """The generated problem of a task (JSON of `make_problem`'s arguments), built once per worker."""
    return make_problem(**json.loads(key))


def _compute(task, data=None):
    """One task: one vectorized `dln.run` over its runs, which share one problem (`data`, or the
    generated one); returns `Result.to_xarray()`."""
    problem = data if task["problem"] is None else _generated(json.dumps(task["problem"], sort_keys=True))
    o = _objects(task)
    res = run(problem, o["algorithm"], o["integrator"], model=o["model"], alpha=o["alpha"],
              sample_seed=o["sample_seed"], save_at=task["save_at"], **{k: o[k] for k in STOP if k in o})
    return res.to_xarray()


# -- storage -------------------------------------------------------------------------------------

def _layout(plan):
    """Variable -> (trailing dimensions, dtype, fill) of a sweep."""
    out = {v: ((), float, np.nan) for v in SCALARS}
    out.update({v: (("coord",), float, np.nan) for v in COORDS})
    out.update({v: ((), np.int64, 0) for v in COUNTS})
    out.update({v: ((), str, "") for v in TEXT})
    if plan.save_at.size:
        out.update({v: (("time", "coord") if v in ("saved_beta", "saved_alpha_eff") else ("time",), float, np.nan)
                    for v in SAVED})
    return out


class _Store:
    """Task results: flat arrays of `tasks * chunk` slots (task `i` owns slots `i*chunk ...`) and a
    `done` flag per task set after its data, in memory (`group` None) or in a zarr group."""

    def __init__(self, plan, group=None):
        self.chunk, self.group = plan.chunk, group
        self.sizes = {"coord": plan.d, "time": plan.save_at.size}
        self.layout = _layout(plan)
        if group is None:
            N = len(plan.tasks) * plan.chunk
            self.arrays = {v: np.full((N,) + tuple(self.sizes[x] for x in dims), fill, object if dt is str else dt)
                           for v, (dims, dt, fill) in self.layout.items()}
            self.done = np.zeros(len(plan.tasks), bool)
        else:
            self.arrays = {v: group[v] for v in self.layout}
            self.done = group["done"]

    @staticmethod
    def create(plan, path, meta):
        """A new zarr store at `path` with every array and its metadata, moved into place at once."""
        import tempfile
        import zarr
        parent = Path(path).absolute().parent
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{Path(path).name}.")
        try:
            g = zarr.open_group(tmp, mode="w").create_group("tasks")
            N = len(plan.tasks) * plan.chunk
            sizes = {"coord": plan.d, "time": plan.save_at.size}
            for v, (dims, dt, fill) in _layout(plan).items():
                shape = tuple(sizes[x] for x in dims)
                g.create_array(v, shape=(N,) + shape, chunks=(plan.chunk,) + shape, dtype=dt, fill_value=fill)
            g.create_array("done", shape=(len(plan.tasks),), chunks=(1,), dtype=bool, fill_value=False)
            g.attrs.update(meta)
            os.chmod(tmp, 0o755)  # mkdtemp makes a directory only its owner can read
            os.replace(tmp, path)
        finally:
            if Path(tmp).exists():
                import shutil
                shutil.rmtree(tmp)

    def todo(self):
        """Indices of the tasks not done."""
        return np.flatnonzero(~np.asarray(self.done[:]))

    def write(self, i, ds):
        """Task `i`'s runs (`ds` from `_compute`), its whole chunk at once, then its `done` flag."""
        B = ds.sizes["run"]
        for v, (dims, dt, fill) in self.layout.items():
            block = np.full((self.chunk,) + tuple(self.sizes[x] for x in dims), fill, object if dt is str else dt)
            if v in ds:
                block[:B] = ds[v].values
            self.arrays[v][i * self.chunk:(i + 1) * self.chunk] = block
        self.done[i] = True

    def read(self):
        """Every variable over all slots, in memory."""
        return {v: np.asarray(a[:]) for v, a in self.arrays.items()}


def _canonical(spec):
    """The spec as canonical JSON text (sorted keys): what a store is checked against."""
    return json.dumps(spec, sort_keys=True)


def _difference(old, new, where=""):
    """The first entry (`section.key`) in which two specs differ, in words; None if equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            key = f"{where}.{k}" if where else k
            if k not in old:
                return f"`{key}` = {json.dumps(new[k])} is not in it"
            if k not in new:
                return f"`{key}` = {json.dumps(old[k])} there is missing here"
            diff = _difference(old[k], new[k], key)
            if diff:
                return diff
        return None
    if old != new or type(old) is not type(new):
        return f"`{where}` is {json.dumps(old)} there and {json.dumps(new)} here"
    return None


def _held(plan, out, chunk_given):
    """The attributes of the store at `out`, checked against `plan`; None when `out` is new, once its
    directory is checked to take it. Nothing is written."""
    path = Path(out)
    if not path.exists():
        writable_file(path, "out")
        return None
    held = dict(_tasks_group(path).attrs)
    diff = _difference(json.loads(held["spec"]), plan.spec)
    if diff:
        raise InputError(f"`out` {str(out)!r} holds a sweep of a different spec: {diff} (use another --out, or "
                         "delete it to start over)")
    if chunk_given is not None and chunk_given != held["chunk"]:
        raise InputError(f"`out` {str(out)!r} was cut into tasks of chunk = {held['chunk']} runs; got chunk = "
                         f"{chunk_given} (a run's last bits depend on its batch: resume with the same chunk)")
    return held


def _open(plan, out, held):
    """The store at `out` and its attributes: created for `plan` when new (`held` None)."""
    import zarr
    if held is None:
        held = {"spec": _canonical(plan.spec), "chunk": plan.chunk, "tasks": len(plan.tasks), "runs": plan.runs,
                "sizes": np.bincount(np.unique(plan.index) // plan.chunk, minlength=len(plan.tasks)).tolist(),
                "dln_version": _version(), "start_time": _now()}
        _Store.create(plan, out, held)
    return _Store(plan, zarr.open_group(out, mode="r+")["tasks"]), held


def _tasks_group(path):
    """The `tasks` group of a sweep store at `path` (read-only), or `InputError`."""
    import zarr
    try:
        group = zarr.open_group(path, mode="r")["tasks"]
        group.attrs["spec"]
    except Exception:  # noqa: BLE001 - any store that is not a sweep's
        raise InputError(f"`out` {str(path)!r} exists and is not a dln sweep store (no tasks group with its spec); "
                         "choose another path") from None
    return group


def _version():
    from importlib.metadata import version
    return version("dln")


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _workers(workers):
    """`workers` checked (`1 <= workers <= MAX_WORKERS`); None gives the cores this process may use."""
    if workers is None:
        return min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
        raise InputError(f"`workers` must be an integer with 1 <= workers <= {MAX_WORKERS} (local processes); "
                         f"got {workers!r}")
    return workers


@contextmanager
def _connected(scheduler, client):
    """The Dask client given, one connected to `scheduler` (refused when none answers), or None. A client
    made here is not the process's default: one that failed to connect was left as the default, its
    dask `scheduler` setting pointing at nothing (a later `xarray.open_zarr(...).load()` in the process
    raised "no Client active")."""
    if client is not None or scheduler is None:
        yield client
        return
    from distributed import Client
    from distributed.comm import get_address_host_port
    try:
        get_address_host_port(scheduler)  # a malformed address: a Client made for it lingers 20 s when dropped
        c = Client(scheduler, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise InputError(f"`scheduler` {scheduler!r}: no Dask scheduler answered ({e})") from None
    with c:
        yield c


@contextmanager
def _local(workers):
    """A Dask client of a local cluster of `workers` processes with one thread each (Dask's nanny sets
    one BLAS thread per worker), whose logs below CRITICAL are silenced: a task's error comes back
    through its future (an `InputError` as the sweep's one line), and Dask's own tracebacks are noise
    here (a task's "Compute Failed", or a worker's heartbeat that races the scheduler's close when
    the workers outnumber the cores). Like `_connected`'s, the client is not made the process's default
    dask client: the tasks go through it by name."""
    import logging

    import dask
    from distributed import Client, LocalCluster
    # one BLAS thread per worker, and no MALLOC_TRIM_THRESHOLD_ = 64 KiB (Dask's default for nanny
    # workers: every freed (B, n) or (B, d) temporary goes back to the OS and faults in again, measured
    # +40% CPU in system time on a flow sweep); no statistical profiler (a stack sample every 10 ms)
    quiet = {"distributed.nanny.pre-spawn-environ": {k: 1 for k in BLAS_THREADS},
             "distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.gil.enabled": False}
    # the scheduler's HTTP endpoints on a free local port (8787 may be taken)
    with dask.config.set(quiet), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                              host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                              silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


def _execute(plan, store, workers, client, progress):
    """Compute the tasks not yet done, writing each to `store` as it completes: through `client`, or
    without one on at most `workers` local processes, never more than there are tasks to do (one: in
    this process)."""
    from tqdm.auto import tqdm
    todo = store.todo()
    bar = tqdm(total=len(plan.tasks), initial=len(plan.tasks) - todo.size, unit="task", disable=not progress,
               file=sys.stderr, desc="sweep", dynamic_ncols=True, smoothing=0.1)
    try:
        if not todo.size:
            return
        if client is None and min(workers, todo.size) == 1:
            for i in todo:
                store.write(i, _compute(plan.tasks[i], plan.data))
                bar.update()
            return
        from distributed import as_completed
        with nullcontext(client) if client is not None else _local(min(workers, todo.size)) as c:
            data = None if plan.data is None else c.scatter(plan.data, broadcast=True)
            futures = {c.submit(_compute, plan.tasks[i], data, pure=False): int(i) for i in todo}
            for f in as_completed(futures, loop=c.loop):
                store.write(futures[f], f.result())
                f.release()
                bar.update()
    finally:
        bar.close()


def _dataset(plan, flat, attrs):
    """The labeled dataset: each grid point's run from its slot."""
    import xarray as xr
    dims = tuple(plan.axes)
    layout = _layout(plan)
    data = {}
    for v, a in flat.items():
        a = a[plan.index.ravel()].reshape(plan.index.shape + a.shape[1:])  # a 0-d index would give a scalar
        data[v] = (dims + layout[v][0], a.astype(object) if layout[v][1] is str else a)
    # strings as objects: zarr stores them as variable-length UTF-8
    coords = {dim: np.asarray(values, object if isinstance(values[0], str) else None)
              for dim, values in plan.axes.items()}
    coords["coord"] = np.arange(plan.d)
    if plan.save_at.size:
        coords["time"] = plan.save_at
    return xr.Dataset(data, coords=coords, attrs=attrs)


def sweep(spec, out=None, *, chunk=None, workers=None, scheduler=None, client=None, progress=True):
    """Run every point of a grid of runs and return them as a labeled dataset.

    Parameters
    ----------
    spec : str, Path or dict
        A TOML file, or its content as a dict (see the module doc): lists and
        `{logspace = [a, b, k]}` / `{linspace = [a, b, k]}` are axes.
    out : str or Path, optional
        A zarr store written task by task. Running again with the same spec continues where a
        killed run stopped; a store of another spec is refused. Without it, nothing is stored.
    chunk : int, optional
        Runs per task (one vectorized `dln.run` each); default 64, or the store's.
    workers : int, optional
        Local worker processes, one thread each, `1 <= workers <= MAX_WORKERS` (default: the cores
        this process may use); never more than there are tasks to do; 1 runs in this process.
    scheduler : str, optional
        Address of a running Dask scheduler (`tcp://host:8786`) to submit the tasks to.
    client : distributed.Client, optional
        A Dask client to submit the tasks through.
    progress : bool
        A progress bar over tasks, with an ETA.

    Returns
    -------
    xarray.Dataset
        Dimensions: one per axis (named as in the spec; `name` as `algorithm`), `coord` (d) and
        `time` (with `save_at`). Variables `beta`, `alpha_eff`, `train_loss`, `test_loss`,
        `grad_norm`, `t_final`, `steps`, `grad_evals`, `status`, `message` (and `saved_*` on
        `time`): every run, failed ones with their status. Attributes: `spec` (JSON),
        `dln_version`, `start_time`, `end_time`.
    """
    plan = Plan(spec, CHUNK if chunk is None else chunk)
    workers = _workers(workers)
    if out is not None:
        if chunk is None and Path(out).exists():
            plan = Plan(spec, _tasks_group(out).attrs["chunk"])
        held = _held(plan, out, chunk)
        if held is not None and held.get("complete"):
            return _read_dataset(out)
    with _connected(scheduler, client) as client:  # before the store is created
        if out is None:
            store, held = _Store(plan), {"start_time": _now()}
        else:
            store, held = _open(plan, out, held)
        _execute(plan, store, workers, client, progress)
    attrs = {"spec": _canonical(plan.spec), "dln_version": _version(), "start_time": held["start_time"],
             "end_time": _now(), "chunk": plan.chunk, "tasks": len(plan.tasks)}
    ds = _dataset(plan, store.read(), attrs)
    if out is not None:
        ds.to_zarr(out, mode="a", consolidated=False)
        store.group.attrs.update({"complete": True, "end_time": attrs["end_time"]})
    return ds


def _read_dataset(out):
    """The finished sweep at `out`, in memory, with strings as Python objects as `sweep` returns them."""
    import xarray as xr
    ds = xr.open_zarr(out, consolidated=False).load()
    strings = [k for k, v in ds.variables.items() if v.dtype.kind in "TUO"]
    return ds.assign({k: ds[k].astype(object) for k in strings if k in ds.data_vars}).assign_coords(
        {k: ds[k].astype(object) for k in strings if k in ds.coords})


def status(out):
    """How much of the sweep stored at `out` is done: a dict with `tasks`, `tasks_done`, `runs`,
    `runs_done` and `complete`."""
    if not Path(out).exists():
        raise InputError(f"`out` {str(out)!r} does not exist")
    group = _tasks_group(out)
    done = np.asarray(group["done"][:])
    sizes = np.asarray(group.attrs["sizes"])
    return {"tasks": int(done.size), "tasks_done": int(done.sum()), "runs": int(sizes.sum()),
            "runs_done": int(sizes[done].sum()), "complete": bool(group.attrs.get("complete", False)),
            "start_time": group.attrs["start_time"], "end_time": group.attrs.get("end_time")}
