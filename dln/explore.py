"""The interactive explorer, `dln explore`: pick a registered algorithm, flow or steps, and watch where training lands.

Four panels answer one question, "where does this algorithm take the network
from this initialization?":

- `beta(inf)` coordinate by coordinate (stems: the gradient-flow limit
  `argmin Q_alpha(beta)` s.t. `X beta = y`, from the dual), the algorithm's own
  simulated limit (crosses), the planted `beta_star`, and the minimum-l1
  (`alpha -> 0`) and minimum-l2 (`alpha -> inf`) interpolators;
- the test loss against `alpha`: the gradient-flow curve (one batched dual
  solve over a grid of `alpha`), the algorithm's curve (one batched run over a
  coarser grid), and markers at the current `alpha`;
- `alpha_eff(t) = sqrt(u v)` of the current run (geometric mean over the
  coordinates, with the smallest and largest coordinate): flat at `alpha`
  for gradient flow, `alpha exp(-integral c)` below it for the GR family;
- the training and test loss over time.

The controls follow from the library's declarations; this module keeps no
table of algorithms or ranges:

- the algorithm buttons list the registry `dln.algorithms.ALGORITHMS` (the GR
  family, SAM, USAM, flooding, SGD, label noise, ... whatever is registered);
- every hyperparameter gets a control generated from its `Hyper` declaration
  (`make_control`): a slider over the declared range with the declared example
  as its start (of `log10` of the value where the range spans decades; over the
  divisors of `n` for a size that must divide `n`; `slider_range` says how a
  range without two finite bounds is chosen, and a declaration's
  `explore_range` overrides it), or a check box for a True/False switch.
  Algorithms that share a declaration share its control (`gamma` of GR, F-GR
  and B-GR); the controls of the chosen algorithm are shown;
- the wrappers `dln.stochastic.WRAPPERS` (m-sharpness, mini-batches, momentum)
  are check boxes that apply around the chosen algorithm, innermost first, as
  `dln simulate` applies them, with their own generated controls. A
  combination the library refuses (m-sharpness of GD) is not run: the status
  line gives the library's reason;
- the integrator: the flow (`dln.Flow`) or discrete steps (`dln.Steps`, on
  the time axis `t = eta k`) with a `log10 eta` slider whose range comes from
  the `Steps` declaration and whose start is half the stable step size
  estimated where the run starts and where gradient flow ends (`stable_eta`).
  An algorithm without a flow (the `flow` capability is False: flooding's
  direction jumps, SGD, label noise and momentum are discrete) runs in steps
  whatever the integrator buttons say, and the title says so. A run that
  diverges says so in the status line, with the stable step size.

A nested algorithm (label noise's `base`) keeps its declared default; random
runs use sample seed 0.

The dual solve takes milliseconds, so the gradient-flow answer is drawn at
once. Simulations run in worker processes; a canvas timer polls for them and
draws each result when it is ready, and a result that belongs to an older
setting is kept in a cache but not drawn.
"""
import concurrent.futures as cf
import inspect
import math
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._checks import InputError, finite_array
from ._hyper import Declared
from ._io import atomic_path, writable_file
from .algorithms import ALGORITHMS
from .bias import min_l1, min_l2, solve_dual
from .flow import Flow
from .integrate import STATUSES, Steps, _stable_eta, run
from .models import Squares
from .objective import Objective
from .problem import load_problem, make_problem
from .stochastic import WRAPPERS

LOG10_ALPHA_RANGE = (-8.0, 3.0)
SEED_RANGE = (0, 20)
#: the gradient-flow test-loss curve (dual solves: cheap)
GF_ALPHAS = np.logspace(*LOG10_ALPHA_RANGE, 45)
#: the algorithm's test-loss curve (one batched simulation)
SIM_ALPHAS = np.logspace(*LOG10_ALPHA_RANGE, 12)
#: save times of the current run (a log grid: the flow spans 1e-7 (alpha = 1e3) to 1e5 (alpha = 1e-8))
SAVE_AT = np.logspace(-9, 6, 91)
#: a run has reached its limit once its loss is below this fraction of the initial loss
LOSS_TOL = 1e-8
#: work caps (accepted flow steps per run) of the current run and of the curve's runs. With the stiff flow
#: solver every run of the GR family on the default problem converges within them, down to alpha = 1e-8
#: (about 1500-2500 steps there, a few seconds); a run stopped by a cap says so in the status line and is
#: drawn hollow on the curve
MAX_STEPS = 3000
CURVE_MAX_STEPS = 3000
#: work cap of a discrete run, in steps (one update each: 30,000 GD steps at d = 200 cost about what the
#: flow's cap does, 1-2 s)
MAX_DISCRETE_STEPS = 30_000
#: the most alphas `dln explore --curve-points` takes
MAX_CURVE_POINTS = 200
#: decades a derived log slider spans on each side of the declared example (`slider_range`)
DECADES = 2
#: the step size of `Steps`, declared there: the range of the `eta` slider and the check of `eta`
ETA = next(h for h in Steps.hyper if h.name == "eta")
#: the integrator buttons
INTEGRATORS = ("flow", "steps")
#: how often the window polls the worker, in milliseconds
POLL_MS = 60


def explorer_flow(max_steps):
    """The explorer's flow: loose tolerances (a picture, not a benchmark) and a work cap."""
    return Flow(rtol=1e-6, atol=1e-12, max_time=1e6, max_steps=max_steps)


def explorer_steps(eta, max_steps):
    """The explorer's discrete steps `theta <- theta - eta D(theta)`, with a work cap."""
    return Steps(eta, max_steps=max_steps)


# -- controls, generated from the declarations ---------------------------------------------------------
def offered():
    """`(owner, class)` of everything the explorer has controls for: the registered algorithms (the
    algorithm buttons, by registry name), then the wrappers (check boxes, by class name)."""
    return [*ALGORITHMS.items(), *((w.__name__, w) for w in WRAPPERS)]


def hypers(cls):
    """The declarations of `cls` that get a control: all but nested algorithms."""
    return [h for h in cls.hyper if h.kind != "algorithm"]


def keyword(h):
    """The keyword of `explore(...)` that starts the controls of declaration `h`: its CLI flag without
    the dashes (`gamma`, `batch_size`; IGR's step size is `igr_eta`, `--igr-eta`, since `eta` is the
    integrator's)."""
    return h.cli[2:].replace("-", "_")


def slider_range(h):
    """`(lo, hi, log)`: the slider of a numeric declaration `h`, in values of the hyperparameter.

    From the declaration, in this order: its `explore_range`; both bounds (an open end moved in by
    1% of the range); a closed lower bound only (`gamma >= 0`, where the bound switches the term off):
    linear from it to 10 times the example; an open lower bound only (`rho > 0`, a scale): `DECADES`
    decades either side of the example; an upper bound only: linear, 10 times the example's distance
    below it; no bound (`eps != 0`): linear from -10 to 10 times the example. Integers are rounded
    inwards. `log` (the slider moves `log10` of the value) where `0 < lo` and `hi >= 100 lo`.
    """
    ex = h.example if isinstance(h.example, (int, float, np.integer, np.floating)) else None
    x = abs(float(ex)) if ex else 1.0
    if h.explore_range is not None:
        lo, hi = h.explore_range
    elif h.lo is not None and h.hi is not None:
        lo, hi = float(h.lo), float(h.hi)
        pad = 0.01 * (hi - lo)
        lo, hi = lo + pad * h.lo_open, hi - pad * h.hi_open
    elif h.lo is not None:
        lo = float(h.lo)
        above = float(ex) - lo if ex is not None and ex > lo else x
        if h.lo_open:
            lo, hi = lo + above / 10 ** DECADES, lo + above * 10 ** DECADES
        else:
            hi = lo + 10 * above
    elif h.hi is not None:
        hi = float(h.hi)
        below = hi - float(ex) if ex is not None and ex < hi else x
        lo, hi = hi - 10 * below, hi - 0.01 * below * h.hi_open
    else:
        lo, hi = -10 * x, 10 * x
    if h.kind == "int":
        lo, hi = math.ceil(lo), math.floor(hi)
        hi = max(hi, lo + 1)
    return lo, hi, h.kind != "int" and lo > 0 and hi >= 100 * lo


@dataclass(frozen=True)
class Control:
    """The control generated from one declaration.

    hyper : Hyper
    owners : tuple of str
        Registry names and wrapper class names of the classes that declare it.
    lo, hi : float or None
        Ends of the slider, in values of the hyperparameter (None for a check box).
    log : bool
        Whether the slider moves `log10` of the value.
    values : tuple of int, or None
        The only values allowed (the divisors of `n` for a size that must divide `n`).
    init
        Where the control starts.
    """

    hyper: object
    owners: tuple
    lo: float | None
    hi: float | None
    log: bool
    values: tuple | None
    init: object

    @property
    def label(self):
        return f"log10 {self.hyper.name}" if self.log else self.hyper.name

    def position(self, value):
        """The slider position of `value`."""
        return math.log10(value) if self.log else value

    def value(self, position):
        """The hyperparameter's value at slider `position` (a log slider's to 12 significant digits, so
        that a value set through `position` comes back unchanged)."""
        if self.values is not None:
            return int(self.values[int(np.argmin(np.abs(np.asarray(self.values) - position)))])
        if self.hyper.kind == "int":
            return int(round(position))
        return float(f"{10.0 ** position:.12g}") if self.log else float(position)


def make_control(h, owners=(), sizes=None, value=None):
    """The `Control` of declaration `h`, starting at `value` (default: the declared example).

    `sizes` (`{"n": 40}`) are the problem sizes a value may have to divide. A `value` outside the
    slider's range widens it.
    """
    if h.kind == "bool":
        start = h.example if value is None else value
        return Control(h, tuple(owners), None, None, False, None, bool(start))
    start = h.example if value is None else value
    if h.divides:
        size = int(sizes[h.divides])
        values = tuple(k for k in range(1, size + 1) if size % k == 0 and h.accepts(k))
        if start not in values:
            start = values[0] if start is None else min(values, key=lambda v: abs(v - start))
        return Control(h, tuple(owners), values[0], values[-1], False, values, int(start))
    lo, hi, log = slider_range(h)
    if start is None:
        start = math.sqrt(lo * hi) if log else (lo + hi) / 2
    start = int(round(start)) if h.kind == "int" else float(start)
    return Control(h, tuple(owners), min(lo, start), max(hi, start), log, None, start)


def controls(sizes, given=None):
    """One `Control` per distinct declaration of `offered()`, in order: `Hyper -> Control`. `given`
    (`Hyper -> value`) overrides where a control starts."""
    owners = {}
    for owner, cls in offered():
        for h in hypers(cls):
            owners.setdefault(h, []).append(owner)
    given = given or {}
    return {h: make_control(h, o, sizes, given.get(h)) for h, o in owners.items()}


def starting_values(hyper, sizes):
    """`Hyper -> value` for the keywords `hyper` of `explore(...)`: a value starts every control with
    that keyword (`keyword`) whose declaration accepts it; `InputError` names a keyword that no control
    has or whose value no declaration of that keyword accepts."""
    by_keyword = {}
    for owner, cls in offered():
        for h in hypers(cls):
            by_keyword.setdefault(keyword(h), {}).setdefault(h, []).append(owner)
    out = {}
    for kw, v in hyper.items():
        if kw not in by_keyword:
            raise InputError(f"`{kw}` is not a hyperparameter of any algorithm the explorer offers; they are "
                             + ", ".join(f"`{k}`" for k in by_keyword))
        if np.ndim(v) != 0:
            raise InputError(f"`{kw}` must be a single value (where its control starts); got shape {np.shape(v)}")
        fits = {h: h.check(v) for h in by_keyword[kw] if h.accepts(v)}
        fits = {h: x for h, x in fits.items() if not h.divides or sizes[h.divides] % x == 0}
        if not fits:
            ranges = "; ".join(f"{'/'.join(o)}: {h.range}" + (f" ({h.divides} = {sizes[h.divides]})" if h.divides
                                                              else "") for h, o in by_keyword[kw].items())
            raise InputError(f"`{kw}` must satisfy {ranges}; got {v!r}")
        out.update(fits)
    return out


def build_algorithm(name, values, wrappers=()):
    """The algorithm the controls describe: registry entry `name` with its hyperparameters from `values`
    (`Hyper -> value`), inside each wrapper class of `wrappers` (innermost first). `InputError` where the
    library refuses the combination (its message says why)."""
    cls = ALGORITHMS[name]
    algorithm = cls(**{h.name: values[h] for h in hypers(cls)})
    for wrapper in wrappers:
        base = next(h.name for h in wrapper.hyper if h.kind == "algorithm")
        algorithm = wrapper(**{base: algorithm}, **{h.name: values[h] for h in hypers(wrapper)})
    return algorithm


def describe(obj):
    """`repr` of a declared object, numbers to 3 significant digits, leaving out switches and nested
    algorithms at their declared defaults: `Momentum(base=SGD(batch_size=4), momentum=0.9)`."""
    def show(v):
        if isinstance(v, Declared):
            return describe(v)
        if isinstance(v, (float, np.floating)):
            return f"{v:.3g}"
        return repr(v)
    values = obj.values()
    shown = [h for h in obj.hyper if not (h.kind in ("bool", "algorithm") and values[h.name] is h.default
                                          or h.kind == "bool" and values[h.name] == h.default)]
    return f"{type(obj).__name__}({', '.join(f'{h.name}={show(values[h.name])}' for h in shown)})"


def stable_eta(problem, algorithm, alpha):
    """An estimate of the largest stable step size of `Steps` for `algorithm` from `u = v = alpha`.

    `2 / lambda_max` of the update's Jacobian (what a diverged run's message suggests), the smaller of
    its values at the start and at the gradient-flow limit (`u^2 - v^2 = beta`, `u v = alpha^2`), where
    the curvature has grown with `|beta|`. NaN where neither gives an estimate.
    """
    model = Squares()
    objective = Objective(problem, model)
    points = [model.init(np.array([alpha], float), problem.d)]
    sol = solve_dual(problem, alpha)
    if sol.converged[0]:
        b, a4 = sol.beta[0], alpha ** 4
        r = np.sqrt(b * b + 4 * a4)
        # u^2 = (r + b) / 2, v^2 = (r - b) / 2, each formed without cancellation
        u2 = np.where(b >= 0, (r + b) / 2, 2 * a4 / (r - b))
        v2 = np.where(b >= 0, 2 * a4 / (r + b), (r - b) / 2)
        points.append(np.sqrt(np.stack([u2, v2]))[None])
    with np.errstate(all="ignore"):
        lims = [float(_stable_eta(objective, algorithm, theta)[0]) for theta in points]
    lims = [x for x in lims if np.isfinite(x) and x > 0]
    return min(lims) if lims else np.nan


def default_eta(problem, algorithm, alpha):
    """Where the `eta` slider starts: half of `stable_eta`, rounded down to one significant digit, within
    the slider's range (the declared default where there is no estimate)."""
    lo, hi, _ = slider_range(ETA)
    x = stable_eta(problem, algorithm, alpha) / 2
    if not np.isfinite(x):
        return float(ETA.default)
    unit = 10.0 ** math.floor(math.log10(x))
    return float(min(max(float(f"{math.floor(x / unit) * unit:.1g}"), lo), hi))


def test_error(problem, beta):
    """The error the middle panel plots, shape (B,), and its name.

    The test loss `||X_test beta - y_test||^2 / (2m)` when the problem has a test
    set, else `||beta - beta_star||^2` when `beta_star` is known, else None.
    """
    beta = np.atleast_2d(beta)
    if problem.X_test is not None:
        return problem.loss(beta, test=True), "test loss"
    if problem.beta_star is not None:
        return np.sum((beta - problem.beta_star[0]) ** 2, axis=-1), "||beta - beta*||^2"
    return None, "no test set"


@dataclass(frozen=True, eq=False)
class Reference:
    """What depends on the problem only: interpolators and the gradient-flow test-loss curve.

    l1, l2 : ndarray, shape (d,)
        Minimum-l1 and minimum-l2 interpolators.
    alphas, error : ndarray, shape (A,)
        The test error of `argmin Q_alpha` over the grid `alphas` (NaN where the dual did not converge).
    """

    l1: np.ndarray
    l2: np.ndarray
    alphas: np.ndarray
    error: np.ndarray | None
    error_name: str


def reference(problem, alphas=GF_ALPHAS):
    """The `Reference` of a single problem: one batched dual solve over `alphas`."""
    sol = solve_dual(problem, alphas)
    err, name = test_error(problem, sol.beta)
    if err is not None:
        err = np.where(sol.converged, err, np.nan)
    return Reference(min_l1(problem)[0], min_l2(problem)[0], np.asarray(alphas, float), err, name)


def gf_limit(problem, alpha):
    """The gradient-flow limit `argmin Q_alpha(beta)` s.t. `X beta = y`, shape (d,), and its test error."""
    sol = solve_dual(problem, alpha)
    beta = np.where(sol.converged[:, None], sol.beta, np.nan)[0]
    err, _ = test_error(problem, beta)
    return beta, (np.nan if err is None else float(err[0]))


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One simulated run, reduced to what the panels draw.

    t : ndarray, shape (S,)
        Save times up to the end of the run, then `t_final`.
    train_loss, test_loss : ndarray, shape (S,)
    alpha_eff_mean, alpha_eff_min, alpha_eff_max : ndarray, shape (S,)
        `exp(mean_i log alpha_eff_i)` and the extreme coordinates.
    beta, alpha_eff : ndarray, shape (d,)
        The final state.
    beta_theory : ndarray, shape (d,)
        `argmin Q_{alpha_eff(inf)}` among interpolators: where the mirror theory says the run ends.
    error : float
    status, message : str
    """

    t: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    alpha_eff_mean: np.ndarray
    alpha_eff_min: np.ndarray
    alpha_eff_max: np.ndarray
    beta: np.ndarray
    alpha_eff: np.ndarray
    beta_theory: np.ndarray
    error: float
    status: str
    message: str


def _geo(a, axis=-1):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.mean(np.log(a), axis=axis))


def _save_times(integrator, save_at):
    """`save_at` as the run records it: for steps, each step `k >= 1` nearest a requested time, once."""
    if not isinstance(integrator, Steps):
        return save_at
    k = np.unique(np.rint(save_at / integrator.eta))
    return k[k >= 1] * integrator.eta


def simulate(problem, algorithm, alpha, *, integrator=None, save_at=SAVE_AT, loss_tol=LOSS_TOL):
    """Run `algorithm` from `u = v = alpha` with `integrator` (default the explorer's flow) and reduce the
    run to a `Trajectory`."""
    integrator = explorer_flow(MAX_STEPS) if integrator is None else integrator
    res = run(problem, algorithm, integrator, alpha=alpha, save_at=_save_times(integrator, np.asarray(save_at, float)),
              loss_tol=loss_tol)
    keep = res.t[0] < res.t_final[0]
    saved, final = res.saved, res.final

    def series(s, f):
        return np.append(s[0][keep], f[0])

    nan = np.full(int(keep.sum()) + 1, np.nan)
    test = nan if saved.test_loss is None else series(saved.test_loss, final.test_loss)
    aeff_s, aeff_f = saved.alpha_eff[0][keep], final.alpha_eff[0]
    aeff = np.vstack([aeff_s, aeff_f[None]])
    beta = final.beta[0]
    err, _ = test_error(problem, beta)
    beta_theory = np.full_like(beta, np.nan)
    if res.ok[0] and np.all(np.isfinite(aeff_f)) and np.all(aeff_f > 0):
        try:
            th = solve_dual(problem, aeff_f[None])
        except InputError:  # an alpha_eff the dual cannot take (a discrete run that blew u, v up): no theory
            th = None
        if th is not None and th.converged[0]:
            beta_theory = th.beta[0]
    return Trajectory(series(res.t, res.t_final[:, None]), series(saved.train_loss, final.train_loss), test,
                      _geo(aeff), aeff.min(axis=1), aeff.max(axis=1), beta, aeff_f, beta_theory,
                      np.nan if err is None else float(err[0]), str(res.status[0]), str(res.message[0]))


@dataclass(frozen=True, eq=False)
class Curve:
    """The algorithm's test error over a grid of `alpha`: one batched run.

    alphas, error : ndarray, shape (A,)
    converged : ndarray of bool, shape (A,)
    """

    alphas: np.ndarray
    error: np.ndarray
    converged: np.ndarray


def simulate_curve(problem, algorithm, alphas=SIM_ALPHAS, *, integrator=None, loss_tol=LOSS_TOL):
    """The algorithm's limit over `alphas`, all runs in one batch, reduced to a `Curve`."""
    integrator = explorer_flow(CURVE_MAX_STEPS) if integrator is None else integrator
    res = run(problem, algorithm, integrator, alpha=np.asarray(alphas, float), loss_tol=loss_tol)
    err, _ = test_error(problem, res.final.beta)
    err = np.full(len(res), np.nan) if err is None else np.where(res.ok, err, np.nan)
    return Curve(np.asarray(alphas, float), err, res.status == "converged")


def _ready():
    """A no-op job: starts a worker process (which imports `dln`) before the first real request."""


def _worker_init():
    """Workers ignore Ctrl-C: the terminal sends it to the whole process group, and the window's process
    answers it (one line, exit 130) and shuts them down; a worker would print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _executor(background):
    """`(executor or None, owned)` for the `background` argument of `explore`."""
    if background is False:
        return None, False
    if isinstance(background, cf.Executor):
        return background, False
    if background in (True, "process") and sys.platform.startswith("linux") and threading.active_count() == 1:
        # fork (before the window exists, and with no other thread to copy mid-lock); spawn would re-run an
        # unguarded script's top level in each worker
        return cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("fork"), initializer=_worker_init), True
    if background in (True, "process", "thread"):
        return cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="dln-explore"), True
    raise InputError("`background` must be True (or 'process'), 'thread', False or a concurrent.futures.Executor; "
                     f"got {background!r}")


@contextmanager
def _held(canvas):
    """Hold back `canvas.draw_idle()` (which Agg carries out at once) inside the block."""
    canvas.draw_idle = lambda *args, **kwargs: None
    try:
        yield
    finally:
        del canvas.draw_idle


def panels(fig):
    """The four panels of the window, `beta`, `err`, `aeff`, `loss`, as a dict of axes; the widgets use
    the bottom 28% of the figure."""
    return fig.subplot_mosaic([["beta"] * 3, ["err", "aeff", "loss"]],
                              gridspec_kw=dict(left=0.06, right=0.985, top=0.885, bottom=0.30,
                                               hspace=0.42, wspace=0.28))


class Setting(NamedTuple):
    """What the widgets say.

    seed : int
        Problem seed.
    name : str
        Registry name of the chosen algorithm.
    algorithm : Algorithm or None
        The algorithm, wrappers included; None where the library refuses the combination.
    integrator : Flow or Steps
        What runs: steps whenever the algorithm has no flow.
    alpha : float
    error : str or None
        Why there is no algorithm.
    """

    seed: int
    name: str
    algorithm: object
    integrator: object
    alpha: float
    error: str | None = None


#: widget geometry (figure fractions): rows of sliders in two columns, then the buttons' boxes
ROW_TOP, ROW_STEP, ROW_HEIGHT = 0.2, 0.03, 0.02
PROBLEM_COLUMN = (0.12, 0.2)     # alpha, seed, eta: (left, width)
CONTROL_COLUMN = (0.46, 0.19)    # the chosen algorithm's and wrappers' controls
ALGORITHM_BOX = [0.74, 0.01, 0.11, 0.215]
INTEGRATOR_BOX = [0.87, 0.165, 0.11, 0.06]
WRAPPER_BOX = [0.87, 0.075, 0.11, 0.065]
RESET_BOX = [0.87, 0.015, 0.11, 0.04]


def _row(column, i):
    left, width = column
    return [left, ROW_TOP - ROW_STEP * i, width, ROW_HEIGHT]


class Explorer:
    """The explorer's state: its figure, widgets, artists, caches and worker.

    Build it with `explore(...)`. `update()` reads the widgets, draws every
    answer it already has and asks the worker for the others; `poll()` draws
    the worker's answers for the current setting; `wait()` blocks until the
    worker is idle and then polls (for scripts and tests without an event loop).

    `controls` (`Hyper -> Control`) are the generated controls; `control_widgets`
    maps each declaration to its widget.
    """

    def __init__(self, problem_for, seeded, controls, eta, *, first_problem, alpha, algorithm, seed, steps, wrappers,
                 background, sim_alphas, save_at, max_steps, max_discrete_steps, figsize):
        import matplotlib.pyplot as plt
        from matplotlib import widgets as mw

        self.problem_for = problem_for
        self.controls = controls
        self.eta = eta
        self.sim_alphas = np.asarray(sim_alphas, float)
        self.save_at = np.asarray(save_at, float)
        self.max_steps = max_steps
        self.max_discrete_steps = max_discrete_steps
        self.background = background
        self._problems = OrderedDict({seed: first_problem})
        self._refs = OrderedDict()
        self._sims = OrderedDict()
        self._curves = OrderedDict()
        self._futures = {}  # key -> Future
        self._pool, self._own_pool = _executor(background)
        if isinstance(self._pool, cf.ProcessPoolExecutor):
            for _ in range(2):  # start the worker processes now, while the first prediction is drawn
                self._pool.submit(_ready)
        self._muted = False
        self._want = None
        self._initial = dict(algorithm=list(ALGORITHMS).index(algorithm), integrator=int(steps),
                             wrappers=tuple(wrappers))

        fig = plt.figure(figsize=figsize)
        self.fig = fig
        with _held(fig.canvas):  # widgets ask for draws as they are built; showing the figure draws it
            self._build(fig, alpha, algorithm, seed, steps, wrappers, seeded, mw)
            self.update()

    def _build(self, fig, alpha, algorithm, seed, steps, wrappers, seeded, mw):
        self.ax = ax = panels(fig)
        self.title = fig.text(0.5, 0.985, "", ha="center", va="top", fontsize=11)
        self.status = fig.text(0.5, 0.958, "", ha="center", va="top", fontsize=9, color="0.3")
        self.artists = self._make_artists(ax)

        def boxed(rect, title):
            a = fig.add_axes(rect)
            a.set_title(title, fontsize=8, loc="left", pad=2)
            return a

        def small(buttons):
            for t in buttons.labels:
                t.set_fontsize(8)
            return buttons

        # the problem and the step size on the left; the chosen algorithm's controls beside them
        e = self.eta
        w = {
            "alpha": mw.Slider(fig.add_axes(_row(PROBLEM_COLUMN, 0)), "log10 alpha", *LOG10_ALPHA_RANGE,
                               valinit=np.log10(alpha), valfmt="%.2f"),
            "seed": mw.Slider(fig.add_axes(_row(PROBLEM_COLUMN, 1)), "problem seed", *SEED_RANGE, valinit=seed,
                              valstep=1, valfmt="%d"),
            "eta": mw.Slider(fig.add_axes(_row(PROBLEM_COLUMN, 2)), f"{e.label} (steps)", e.position(e.lo),
                             e.position(e.hi), valinit=e.position(e.init), valfmt="%.2f"),
            "algorithm": small(mw.RadioButtons(boxed(ALGORITHM_BOX, "algorithm"), list(ALGORITHMS),
                                               active=list(ALGORITHMS).index(algorithm))),
            "integrator": small(mw.RadioButtons(boxed(INTEGRATOR_BOX, "integrator"), INTEGRATORS,
                                                active=int(steps))),
            "wrappers": small(mw.CheckButtons(boxed(WRAPPER_BOX, "wrappers"), [c.__name__ for c in WRAPPERS],
                                              list(wrappers))),
            "reset": mw.Button(fig.add_axes(RESET_BOX), "reset"),
        }
        if not seeded:
            w["seed"].label.set_text("seed (data file)")
            w["seed"].set_active(False)
        # one widget per declaration, hidden until its algorithm or wrapper is chosen (`_layout`)
        self.control_widgets = {}
        for h, c in self.controls.items():
            a = fig.add_axes(_row(CONTROL_COLUMN, 0))
            a.set_visible(False)
            if h.kind == "bool":
                a.set_frame_on(False)
                widget = small(mw.CheckButtons(a, [c.label], [c.init]))
            else:
                step = np.asarray(c.values) if c.values is not None else 1 if h.kind == "int" else None
                lo, hi = c.position(c.lo), c.position(c.hi)
                widget = mw.Slider(a, c.label, lo, hi if hi > lo else lo + 1, valinit=c.position(c.init),
                                   valstep=step, valfmt="%.2f" if c.log else "%d" if h.kind == "int" else "%.3g")
            self.control_widgets[h] = widget
        for owner, cls in offered():
            if owner in w:
                raise RuntimeError(f"the explorer's widget name {owner!r} is also an algorithm's name")
            w[owner] = {h.name: self.control_widgets[h] for h in hypers(cls)}
        self.widgets = w
        for widget in (w["alpha"], w["seed"], w["eta"], *self.control_widgets.values()):
            (widget.on_changed if hasattr(widget, "on_changed") else widget.on_clicked)(self._changed)
        for k in ("algorithm", "integrator", "wrappers"):
            w[k].on_clicked(self._changed)
        w["reset"].on_clicked(lambda _event: self.reset())
        self._timer = fig.canvas.new_timer(interval=POLL_MS)
        self._timer.add_callback(self.poll)
        self._timer_on = False
        fig.canvas.mpl_connect("close_event", lambda _event: self.close())

    def _layout(self, s):
        """Show the controls of the chosen algorithm and of the checked wrappers, one row each, and the
        `eta` slider when the run is in steps."""
        shown = [*hypers(ALGORITHMS[s.name])]
        for wrapper, on in zip(WRAPPERS, self.widgets["wrappers"].get_status()):
            shown += [h for h in hypers(wrapper) if on and h not in shown]
        for h, widget in self.control_widgets.items():
            on = h in shown
            widget.ax.set_visible(on)
            if on:
                rect = _row(CONTROL_COLUMN, shown.index(h))
                if h.kind == "bool":  # a check box sits where a slider's label does
                    rect = [rect[0] - 0.085, rect[1] - 0.004, 0.16, rect[3] + 0.008]
                widget.ax.set_position(rect)
        self.widgets["eta"].ax.set_visible(isinstance(s.integrator, Steps))

    # -- artists, created once --------------------------------------------------------------------------
    def _make_artists(self, ax):
        a = {}
        b = ax["beta"]
        b.axhline(0, color="0.6", lw=0.6)
        a["l2"], = b.plot([], [], "-", color="0.65", lw=0.9, label="min-l2 interpolator")
        a["l1"], = b.plot([], [], "s", color="tab:green", ms=6, mfc="none", mew=1.0,
                          label="min-l1 interpolator (support)")
        a["beta_star"], = b.plot([], [], "*", color="tab:red", ms=9, label="beta* (support)")
        stem = b.stem([0.0], [0.0], linefmt="C0-", markerfmt="C0o", basefmt=" ", label="GF limit argmin Q_alpha")
        stem.markerline.set_markersize(3.5)
        stem.stemlines.set_linewidth(1.1)
        a["stems"] = stem
        a["sim_beta"], = b.plot([], [], "x", color="tab:orange", ms=6, mew=1.5, label="algorithm's limit (simulated)")
        b.set_xlabel("coordinate i")
        b.set_ylabel("beta_i(inf)")
        b.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8, ncol=5, frameon=False)

        e = ax["err"]
        a["gf_curve"], = e.plot([], [], "-", color="C0", lw=1.5, label="GF: argmin Q_alpha")
        a["sim_curve"], = e.plot([], [], "o-", color="tab:orange", ms=4, lw=1, label="algorithm (simulated)")
        a["sim_curve_capped"], = e.plot([], [], "o", color="tab:orange", mfc="white", ms=6,
                                        label="not converged (work cap)")
        a["gf_marker"], = e.plot([], [], "o", color="C0", ms=9, mfc="none", mew=2)
        a["sim_marker"], = e.plot([], [], "D", color="tab:orange", ms=7)
        a["alpha_line"] = e.axvline(1.0, color="0.5", lw=0.8, ls=":")
        e.set_xscale("log")
        e.set_yscale("log")
        e.set(xlim=(10.0 ** LOG10_ALPHA_RANGE[0] / 2, 10.0 ** LOG10_ALPHA_RANGE[1] * 2), ylim=(1e-3, 1.0))
        e.set_xlabel("alpha")
        e.set_title("where training lands, against alpha", fontsize=10)
        e.legend(fontsize=7, loc="upper left")

        f = ax["aeff"]
        a["aeff_mean"], = f.plot([], [], "-", color="tab:purple", lw=2, label="geometric mean over i")
        a["aeff_min"], = f.plot([], [], "--", color="tab:purple", lw=0.8, label="min / max over i")
        a["aeff_max"], = f.plot([], [], "--", color="tab:purple", lw=0.8)
        a["aeff_alpha"] = f.axhline(1.0, color="0.5", lw=0.8, ls=":", label="alpha")
        f.set_xscale("log")
        f.set_yscale("log")
        f.set(xlim=(1e-9, 1e6), ylim=(1e-2, 1.0))  # log axes need positive limits before the first draw
        f.set_autoscale_on(True)
        f.set_xlabel("t")
        f.set_title("alpha_eff(t) = sqrt(u v)", fontsize=10)
        f.legend(fontsize=7, loc="lower left")

        g = ax["loss"]
        a["train"], = g.plot([], [], "-", color="k", lw=1.5, label="train loss")
        a["test"], = g.plot([], [], "-", color="tab:red", lw=1.2, label="test loss")
        g.set_xscale("log")
        g.set_yscale("log")
        g.set(xlim=(1e-9, 1e6), ylim=(1e-9, 1.0))
        g.set_autoscale_on(True)
        g.set_xlabel("t")
        g.set_title("loss of the current run", fontsize=10)
        g.legend(fontsize=7, loc="lower left")
        return a

    # -- the setting and its caches --------------------------------------------------------------------
    def value(self, h):
        """The value the control of declaration `h` is set to."""
        widget = self.control_widgets[h]
        if hasattr(widget, "get_status"):
            return bool(widget.get_status()[0])
        return self.controls[h].value(widget.val)

    def setting(self):
        """The current widget values as a `Setting`."""
        w = self.widgets
        name = w["algorithm"].value_selected
        wrappers = [c for c, on in zip(WRAPPERS, w["wrappers"].get_status()) if on]
        algorithm, error = None, None
        try:
            algorithm = build_algorithm(name, {h: self.value(h) for h in self.controls}, wrappers)
        except InputError as e:
            error = str(e)
        if w["integrator"].value_selected == "steps" or (algorithm is not None and not algorithm.flow):
            integrator = explorer_steps(self.eta.value(w["eta"].val), self.max_discrete_steps)
        else:
            integrator = explorer_flow(self.max_steps)
        return Setting(int(round(w["seed"].val)), name, algorithm, integrator, float(10.0 ** w["alpha"].val), error)

    @staticmethod
    def _remember(cache, key, value, size=64):
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)

    def problem(self, seed):
        if seed not in self._problems:
            self._remember(self._problems, seed, self.problem_for(seed), size=8)
        return self._problems[seed]

    def ref(self, seed):
        if seed not in self._refs:
            self._remember(self._refs, seed, reference(self.problem(seed)), size=8)
        return self._refs[seed]

    def _jobs(self, s):
        """The simulations setting `s` needs: `(cache, key, function, args, kwargs)` (picklable, for a
        process pool): the current run, and the algorithm's curve unless `sim_alphas` is empty; none where
        the library refuses the algorithm."""
        if s.algorithm is None:
            return []
        problem = self.problem(s.seed)
        what = (s.seed, repr(s.algorithm), repr(s.integrator))
        jobs = [(self._sims, ("sim", *what, s.alpha), simulate, (problem, s.algorithm, s.alpha),
                 dict(integrator=s.integrator, save_at=self.save_at))]
        if self.sim_alphas.size:
            curve = s.integrator if isinstance(s.integrator, Steps) else explorer_flow(min(self.max_steps,
                                                                                           CURVE_MAX_STEPS))
            jobs.append((self._curves, ("curve", *what), simulate_curve, (problem, s.algorithm, self.sim_alphas),
                         dict(integrator=curve)))
        return jobs

    # -- callbacks --------------------------------------------------------------------------------------
    def _changed(self, _value):
        if not self._muted:
            self.update()

    def update(self):
        """Read the widgets, draw what is known, and compute (or ask the worker for) the rest."""
        s = self.setting()
        jobs = self._jobs(s)
        self._want = {job[1] for job in jobs}
        for key in list(self._futures):  # stale requests that have not started are dropped
            if key not in self._want and self._futures[key].cancel():
                del self._futures[key]
        for cache, key, fn, args, kwargs in jobs:
            if key in cache or key in self._futures:
                continue
            if self._pool is None:
                try:
                    value = fn(*args, **kwargs)
                except InputError as e:  # shown in the status line, as a worker's error is
                    value = e
                self._remember(cache, key, value)
            else:
                self._futures[key] = self._pool.submit(fn, *args, **kwargs)
        if self._futures and not self._timer_on:
            self._timer.start()
            self._timer_on = True
        self._layout(s)
        self.draw()

    def poll(self):
        """Move finished simulations into the caches; redraw if one belongs to the current setting."""
        fresh = False
        for key, fut in list(self._futures.items()):
            if not fut.done():
                continue
            del self._futures[key]
            if fut.cancelled():
                continue
            try:
                value = fut.result()
            except Exception as e:  # noqa: BLE001 - shown in the window, not raised in a timer
                value = e
            self._remember(self._sims if key[0] == "sim" else self._curves, key, value)
            fresh |= key in self._want
        if not self._futures and self._timer_on:
            self._timer.stop()
            self._timer_on = False
        if fresh:
            self.draw()
        # returns None: a timer callback that returns 0 (or False) is removed by matplotlib

    def wait(self, timeout=None):
        """Block until every requested simulation has finished, then draw them (no event loop needed)."""
        cf.wait(list(self._futures.values()), timeout=timeout)
        self.poll()

    def reset(self):
        """Put every widget back to its initial value, then update once."""
        w = self.widgets
        self._muted = True
        try:
            with _held(self.fig.canvas):
                for widget in (w["alpha"], w["seed"], w["eta"], *self.control_widgets.values()):
                    if hasattr(widget, "reset"):
                        widget.reset()
                for h, widget in self.control_widgets.items():
                    if hasattr(widget, "get_status") and widget.get_status()[0] != self.controls[h].init:
                        widget.set_active(0)
                w["algorithm"].set_active(self._initial["algorithm"])
                w["integrator"].set_active(self._initial["integrator"])
                for i, (on, want) in enumerate(zip(w["wrappers"].get_status(), self._initial["wrappers"])):
                    if on != want:
                        w["wrappers"].set_active(i)
        finally:
            self._muted = False
        self.update()

    def close(self):
        """Stop polling and drop pending simulations (a running one finishes in the background)."""
        if self._timer_on:
            self._timer.stop()
            self._timer_on = False
        if self._own_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the one drawing function ----------------------------------------------------------------------
    def current(self):
        """What is known for the current setting, as a dict: `setting` (`Setting`), `problem`,
        `reference` (`Reference`), `beta` and `error` (the gradient-flow limit and its test error), `sim`
        (`Trajectory`, an exception, or None while pending or where nothing runs), `curve` (`Curve` or
        None) and `pending`."""
        s = self.setting()
        problem = self.problem(s.seed)
        beta, err = gf_limit(problem, s.alpha)
        keys = {job[1][0]: job[1] for job in self._jobs(s)}
        return dict(setting=s, problem=problem, reference=self.ref(s.seed), beta=beta, error=err,
                    sim=self._sims.get(keys.get("sim")), curve=self._curves.get(keys.get("curve")),
                    pending=keys.get("sim") in self._futures)

    def draw(self):
        """Set every artist's data from the caches for the current setting; ends in `draw_idle()`."""
        now = self.current()
        s = self.setting()
        alpha = s.alpha
        problem, ref, beta, err, sim, curve = (now[k] for k in ("problem", "reference", "beta", "error", "sim",
                                                                  "curve"))
        a, ax = self.artists, self.ax
        d = problem.d
        i = np.arange(d)

        # beta(inf): stems = gradient-flow prediction, crosses = the algorithm's simulated limit
        st = a["stems"]
        st.markerline.set_data(i, beta)
        st.stemlines.set_segments(np.stack([np.stack([i, np.zeros(d)], 1), np.stack([i, beta], 1)], 1))
        a["l1"].set_data(i, np.where(np.abs(ref.l1) > 1e-9, ref.l1, np.nan))  # its support only
        a["l2"].set_data(i, ref.l2)
        bs = problem.beta_star
        a["beta_star"].set_data(*((i, np.where(bs[0] != 0, bs[0], np.nan)) if bs is not None else ([], [])))
        ok_sim = isinstance(sim, Trajectory)
        a["sim_beta"].set_data(i, sim.beta if ok_sim else np.full(d, np.nan))

        # test error against alpha
        if ref.error is not None:
            a["gf_curve"].set_data(ref.alphas, ref.error)
            a["gf_marker"].set_data([alpha], [err])
        if isinstance(curve, Curve):
            a["sim_curve"].set_data(curve.alphas, curve.error)
            capped = np.where(curve.converged, np.nan, curve.error)
            a["sim_curve_capped"].set_data(curve.alphas, capped)
        else:
            a["sim_curve"].set_data([], [])
            a["sim_curve_capped"].set_data([], [])
        a["sim_marker"].set_data([alpha], [sim.error if ok_sim else np.nan])
        a["alpha_line"].set_xdata([alpha, alpha])
        ax["err"].set_ylabel(ref.error_name)

        # alpha_eff(t) and the losses of the current run
        a["aeff_alpha"].set_ydata([alpha, alpha])
        nan = ([], [])
        a["aeff_mean"].set_data(*((sim.t, sim.alpha_eff_mean) if ok_sim else nan))
        a["aeff_min"].set_data(*((sim.t, sim.alpha_eff_min) if ok_sim else nan))
        a["aeff_max"].set_data(*((sim.t, sim.alpha_eff_max) if ok_sim else nan))
        a["train"].set_data(*((sim.t, sim.train_loss) if ok_sim else nan))
        a["test"].set_data(*((sim.t, sim.test_loss) if ok_sim else nan))
        for k in ("beta", "aeff", "loss"):
            ax[k].relim()
            ax[k].autoscale_view(scaley=k != "aeff")
        ae = np.concatenate([[alpha], sim.alpha_eff_min, sim.alpha_eff_max] if ok_sim else [[alpha]])
        ae = ae[np.isfinite(ae) & (ae > 0)]
        ax["aeff"].set_ylim(ae.min() / 1.25, ae.max() * 1.25)  # alpha always in view; flat GD is a line
        ys = [ref.error, [err], curve.error if isinstance(curve, Curve) else [], [sim.error] if ok_sim else []]
        ys = np.concatenate([np.asarray(y, float) for y in ys if y is not None])
        ys = ys[np.isfinite(ys) & (ys > 0)]
        if ys.size:  # exact recovery drives the error to round-off at small alpha: show 8 decades below the top
            top = ys.max()
            ax["err"].set_ylim(max(ys.min(), top * 1e-8) / 2, top * 2)

        if s.algorithm is None:
            what = f"{ALGORITHMS[s.name].__name__} (not run)"
        elif isinstance(s.integrator, Steps):
            forced = self.widgets["integrator"].value_selected != "steps"
            what = (f"{describe(s.algorithm)}, steps eta = {s.integrator.eta:.3g}"
                    + (" (it has no flow)" if forced else ""))
        else:
            what = f"{describe(s.algorithm)}, flow"
        title = (f"{what}   |   alpha = {alpha:.3g}   |   problem n = {problem.n}, d = {d}"
                 + (f", seed {s.seed}" if self.widgets["seed"].get_active() else ""))
        self.title.set_text(title)
        self.title.set_fontsize(min(11.0, 11.0 * 130 / len(title)))  # a long algorithm still fits the window
        line, bad = self._status_line(sim, now["pending"], err, ref.error_name, s.error)
        self.status.set_text(line)
        self.status.set_color("tab:red" if bad else "0.3")
        self.fig.canvas.draw_idle()

    @staticmethod
    def _status_line(sim, pending, err, err_name, refused=None):
        """The status line, and whether it reports a failure (drawn in red)."""
        gf = f"GF prediction: {err_name} {err:.3g}"
        if refused is not None:
            return gf + f"   |   not run: {refused}", True
        if pending:
            return gf + "   |   simulating the algorithm ...", False
        if isinstance(sim, Exception):
            return gf + f"   |   simulation failed: {sim}", True
        if sim is None:
            return gf, False
        line = f"{gf}   |   simulation: {sim.status} at t = {sim.t[-1]:.3g}, {err_name} {sim.error:.3g}"
        if sim.status == "converged" and np.all(np.isfinite(sim.beta_theory)):
            gap = np.max(np.abs(sim.beta - sim.beta_theory))
            line += f", max|beta - argmin Q_alpha_eff(inf)| = {gap:.1e}"
        elif sim.status != "converged":
            line += f" ({sim.message})"
        return line, sim.status not in STATUSES[:5]


def explore(problem=None, *, alpha=1e-1, algorithm="gr", seed=0, steps=False, eta=None, n=40, d=200, s=5,
            noise=0.0, background=True, sim_alphas=None, save_at=None, max_steps=MAX_STEPS,
            max_discrete_steps=MAX_DISCRETE_STEPS, figsize=(13, 8.5), **hyper):
    """Open the explorer on a problem; returns `(fig, widgets)` without blocking.

    Parameters
    ----------
    problem : Problem, optional
        A single problem (e.g. `dln.load_problem(path)`); the seed slider is then
        inactive. Default: `make_problem(n, d, s, noise, seed)`, re-drawn when the
        seed slider moves.
    alpha : float
        Initial `alpha`, `1e-8 <= alpha <= 1e3` (the slider is `log10 alpha`).
    algorithm : str
        Initial algorithm, a name of the registry `dln.ALGORITHMS`.
    seed : int
        Problem seed, `0 <= seed <= 20`.
    steps : bool
        Start in discrete steps (`dln.Steps`) rather than the flow (algorithms
        without a flow run in steps either way).
    eta : float, optional
        Initial step size, `eta > 0`. Default: half the stable step size of the
        initial algorithm, estimated at `alpha` (`default_eta`).
    **hyper
        Where the hyperparameter controls start, by keyword (the `dln explore`
        flag without dashes: `gamma=0.1`, `eps=0.1`, `rho=0.05`,
        `batch_size=4`, `momentum=0.9`, `igr_eta=0.01`, ...); a value starts every
        control of that keyword whose declaration accepts it. A wrapper's keyword
        that the initial algorithm does not take (`momentum`, `m`) also checks
        the wrapper, as `dln simulate` applies it. Default: each declaration's
        example.
    n, d, s, noise : problem options of `make_problem`.
    background : bool, {'process', 'thread'} or concurrent.futures.Executor
        Where simulations run while the window stays responsive; each is drawn
        when ready. `True` (= 'process'): two worker processes, forked before the
        window opens, on Linux when no other thread runs (else as 'thread').
        'thread': two threads (they share the interpreter with the window, which
        then redraws more slowly while they run; e.g. Jupyter, macOS). `False`:
        everything inside each callback, deterministic (tests, `dln explore --save`).
    sim_alphas : array_like, shape (A,), optional
        The grid of `alpha` of the algorithm's simulated test-loss curve (one
        batched run); empty for no simulated curve. Default `SIM_ALPHAS`: 12
        values from 1e-8 to 1e3, evenly spaced in `log10 alpha`.
    save_at : array_like, shape (S,), optional
        Save times of the current run. Default `SAVE_AT`: 91 times from 1e-9 to
        1e6, evenly spaced in `log10 t` (in steps: the step nearest each).
    max_steps : int
        Work cap of a flow: accepted steps of the current run (the curve's runs
        take at most `CURVE_MAX_STEPS`). A capped run says so in the status line.
    max_discrete_steps : int
        Work cap of a run in steps, its curve's runs included.
    figsize : (float, float)
        The window's (width, height) in inches, both > 0.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Its `explorer` attribute is the `Explorer` (artists, `setting()`,
        `current()`, `wait()`, `poll()`).
    widgets : dict
        `alpha` (the `log10 alpha` slider), `seed` and `eta` (sliders;
        `eta` moves `log10 eta`), `algorithm` and `integrator` (radio buttons),
        `wrappers` (check boxes), `reset` (button), and per registry name and
        wrapper class name a dict of its controls by hyperparameter name
        (`widgets["fgr"]["eps"]`, `widgets["Momentum"]["momentum"]`; a slider
        labelled `log10` moves `log10` of the value). Call
        `widgets["alpha"].set_val(-2)` to move a slider.
    """
    args, kw = _settings(problem, alpha=alpha, algorithm=algorithm, seed=seed, steps=steps, eta=eta, n=n, d=d, s=s,
                         noise=noise, background=background, sim_alphas=sim_alphas, save_at=save_at,
                         max_steps=max_steps, max_discrete_steps=max_discrete_steps, figsize=figsize, hyper=hyper)
    ex = Explorer(*args, **kw)
    ex.fig.explorer = ex
    return ex.fig, ex.widgets


def _settings(problem, *, alpha, algorithm, seed, steps, eta, n, d, s, noise, background, sim_alphas, save_at,
              max_steps, max_discrete_steps, figsize, hyper):
    """`explore`'s arguments checked (each bad one an `InputError` naming it), as the positional and keyword
    arguments of its `Explorer`; no figure is made (`dln explore` without a display checks its flags so)."""
    lo, hi = LOG10_ALPHA_RANGE
    a = finite_array(alpha, "alpha")
    if a.ndim or not 10.0 ** lo <= a <= 10.0 ** hi:
        raise InputError(f"`alpha` must be a number with 1e-8 <= alpha <= 1e3; got {alpha!r}")
    if algorithm not in ALGORITHMS:
        raise InputError(f"`algorithm` must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    if not isinstance(seed, (int, np.integer)) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise InputError(f"`seed` must be an integer with {SEED_RANGE[0]} <= seed <= {SEED_RANGE[1]}; got {seed!r}")
    if not isinstance(steps, (bool, np.bool_)):
        raise InputError(f"`steps` must be True or False; got {steps!r}")
    if eta is not None and (np.ndim(eta) != 0 or not ETA.accepts(eta)):
        raise InputError(f"`eta` must be a number with {ETA.range}; got {eta!r}")
    if not (background in (True, False, "process", "thread") or isinstance(background, cf.Executor)):
        _executor(background)  # raises the InputError
    for name, cap in (("max_steps", max_steps), ("max_discrete_steps", max_discrete_steps)):
        if not isinstance(cap, (int, np.integer)) or cap < 1:
            raise InputError(f"`{name}` must be an integer >= 1; got {cap!r}")
    sim_alphas = finite_array(SIM_ALPHAS if sim_alphas is None else sim_alphas, "sim_alphas", ndim=1)
    if np.any(sim_alphas <= 0):
        raise InputError("`sim_alphas` must hold values alpha > 0")
    save_at = finite_array(SAVE_AT if save_at is None else save_at, "save_at", ndim=1)
    if np.any(save_at < 0) or np.any(np.diff(save_at) <= 0):
        raise InputError("`save_at` must be non-negative times in increasing order")
    if problem is None:
        make_problem(n=n, d=d, s=s, noise=noise, seed=seed, n_test=0)  # validates the options early

        def problem_for(sd):
            return make_problem(n=n, d=d, s=s, noise=noise, seed=sd)
    else:
        if problem.P != 1:
            raise InputError(f"`problem` must be a single problem (P = 1); got P = {problem.P}: pass problem[i]")

        def problem_for(_sd):
            return problem
    first = problem_for(int(seed))
    sizes = {"n": first.n}
    ctrls = controls(sizes, starting_values(hyper, sizes))
    own = {keyword(h) for h in hypers(ALGORITHMS[algorithm])}
    wrappers = tuple(any(keyword(h) in hyper and keyword(h) not in own for h in hypers(c)) for c in WRAPPERS)
    checked = [c for c, on in zip(WRAPPERS, wrappers) if on]
    try:
        first_algorithm = build_algorithm(algorithm, {h: c.init for h, c in ctrls.items()}, checked)
    except InputError as e:
        inside = f" inside {', '.join(c.__name__ for c in checked)}" if checked else ""
        raise InputError(f"{e} (`algorithm` {algorithm!r}{inside})") from None
    if eta is None:
        eta = default_eta(first, first_algorithm, float(a))
    eta_control = make_control(ETA, ("steps",), sizes, float(eta))
    size = finite_array(figsize, "figsize", ndim=1)
    if size.shape != (2,) or np.any(size <= 0):
        raise InputError(f"`figsize` must be (width, height) in inches, both > 0; got {figsize!r}")
    return ((problem_for, problem is None, ctrls, eta_control),
            dict(first_problem=first, alpha=float(a), algorithm=algorithm, seed=int(seed), steps=bool(steps),
                 wrappers=wrappers, background=background, sim_alphas=sim_alphas, save_at=save_at,
                 max_steps=max_steps, max_discrete_steps=max_discrete_steps, figsize=tuple(size)))


def add_arguments(parser, cmd="explore"):
    """Options of `dln explore`; the hyperparameter flags are those of `dln simulate`, generated from the
    declarations."""
    from .cli_simulate import _declared, _number

    src = parser.add_argument_group("problem (either a data file or the default problem's options)")
    src.add_argument("--data", metavar="FILE.npz", help="load X, y (and X_test, y_test, beta_star) from an .npz file")
    src.add_argument("--n", type=int, default=None, help="samples (default 40)")
    src.add_argument("--d", type=int, default=None, help="dimension (default 200)")
    src.add_argument("--s", type=int, default=None, help="sparsity of beta* (default 5)")
    src.add_argument("--noise", type=float, default=None, help="label noise std (default 0)")
    src.add_argument("--seed", type=int, default=None, help="initial problem seed, 0..20 (default 0)")
    ini = parser.add_argument_group(
        "initial widget values (a hyperparameter flag starts every control of that name; a wrapper's flag that "
        "the algorithm does not take also checks the wrapper; default: each declaration's example)")
    ini.add_argument("--alpha", type=float, default=1e-1, help="initialization scale, 1e-8..1e3 (default 0.1)")
    ini.add_argument("--algorithm", default="gr", help=f"one of {', '.join(ALGORITHMS)} (default gr)")
    for name, decl in _declared().items():
        h = decl[0][1]
        where = "; ".join(f"{alg}: {g.range}" for alg, g in decl)
        ini.add_argument(h.cli, dest=keyword(h), metavar=name.upper(), help=f"{h.help} ({where})",
                         type=_number(int if h.kind == "int" else float, note=f" ({where})"))
    for name, decl in _declared(bools=True).items():
        h = decl[0][1]
        ini.add_argument(h.cli, dest=keyword(h), action="store_const", const=True,
                         help=f"{h.help} ({', '.join(alg for alg, _ in decl)})")
    mode = ini.add_mutually_exclusive_group()
    mode.add_argument("--flow", dest="steps", action="store_false", help="start with the flow (default)")
    mode.add_argument("--steps", dest="steps", action="store_true",
                      help="start with discrete steps theta -= eta D(theta) (algorithms without a flow always step)")
    parser.set_defaults(steps=False)
    ini.add_argument("--eta", type=_number(float, 0, lo_open=True),
                     help="initial step size > 0 (default: half the stable step size estimated at --alpha)")
    work = parser.add_argument_group("simulation work")
    work.add_argument("--curve-points", type=int, default=SIM_ALPHAS.size,
                      help="alphas on the algorithm's simulated test-loss curve, 1e-8..1e3 "
                           f"(default {SIM_ALPHAS.size}; 0 for none)")
    work.add_argument("--max-steps", type=int, default=MAX_STEPS,
                      help=f"work cap of a flow in accepted steps (default {MAX_STEPS})")
    work.add_argument("--max-discrete-steps", type=int, default=MAX_DISCRETE_STEPS,
                      help=f"work cap of a run in discrete steps (default {MAX_DISCRETE_STEPS})")
    parser.add_argument("--save", metavar="FILE.png",
                        help="compute everything, save the window as an image and exit (no display needed)")


def _hyper_flags():
    """`keyword -> flag` of the hyperparameters `dln explore` takes (from the declarations)."""
    return {keyword(h): h.cli for _, cls in offered() for h in hypers(cls)}


def main(args, cmd="explore"):
    """`dln explore`: open the window (blocks until it is closed), or `--save` an image of it; errors name
    the flags (`--alpha`, `--igr-eta`), not the function's arguments (`alpha`, `igr_eta`)."""
    try:
        return _main(args)
    except InputError as e:
        flags = {k: "--" + k.replace("_", "-") for k in vars(args)}
        named = re.sub(r"`([a-z_]+)`", lambda m: f"`{flags.get(m.group(1), m.group(1))}`", str(e))
        raise InputError(named) from None


def _main(args):
    opts = {k: getattr(args, k) for k in ("n", "d", "s", "noise")}
    problem = None
    if args.data is not None:
        given = [f"--{k}" for k, v in {**opts, "seed": args.seed}.items() if v is not None]
        if given:
            raise InputError(f"`--data` and the problem options {', '.join(given)} exclude each other: give one")
        problem = load_problem(args.data)
    if not 0 <= args.curve_points <= MAX_CURVE_POINTS:
        raise InputError(f"`--curve-points` must be an integer with 0 <= curve-points <= {MAX_CURVE_POINTS} (each "
                         f"point is one more simulated run per slider move); got {args.curve_points}")
    if args.save:  # before any work
        if not os.path.splitext(args.save)[1]:
            raise InputError(f"`--save` needs a file extension such as .png; got {args.save!r}")
        writable_file(args.save, "--save")
    hyper = {k: getattr(args, k) for k in _hyper_flags() if getattr(args, k, None) is not None}
    kw = dict(alpha=args.alpha, algorithm=args.algorithm, seed=0 if args.seed is None else args.seed,
              steps=args.steps, eta=args.eta, max_steps=args.max_steps, max_discrete_steps=args.max_discrete_steps,
              sim_alphas=np.logspace(*LOG10_ALPHA_RANGE, args.curve_points),
              **{k: v for k, v in opts.items() if v is not None}, **hyper)
    import matplotlib
    if args.save:
        matplotlib.use("Agg")
        fig, _ = explore(problem, background=False, **kw)
        _save(fig, args.save)
        print(f"wrote {args.save}")
        return 0
    import matplotlib.pyplot as plt
    backend = matplotlib.get_backend().lower()
    if backend in ("agg", "pdf", "ps", "svg", "cairo", "template", "pgf"):
        # the flags are checked first, as with --save: `explore`'s checks, with its defaults, and no figure
        bound = inspect.signature(explore).bind(problem, background=False, **kw)
        bound.apply_defaults()
        _settings(**bound.arguments)
        raise InputError(f"no display for an interactive window (matplotlib backend {backend!r}): "
                         "set DISPLAY (or MPLBACKEND=TkAgg), or use `--save FILE.png`")
    explore(problem, background=True, **kw)
    plt.show()
    return 0


def _save(fig, path):
    """Save `fig` atomically: a temporary file in the same directory, then `os.replace`."""
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    if not ext:
        raise InputError(f"`--save` needs a file extension such as .png; got {path!r}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=fig.dpi)
