"""The interactive explorer, `dln explore`: move `alpha`, `gamma`, `eps` and watch where training lands.

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

The dual solve takes milliseconds, so the gradient-flow answer is drawn at
once. Simulations run in worker processes; a canvas timer polls for them and
draws each result when it is ready, and a result that belongs to an older
slider position is kept in a cache but not drawn.
"""
import concurrent.futures as cf
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ._checks import InputError, finite_array
from ._io import atomic_path, writable_file
from .algorithms import BGR, FGR, GD, GR, SAM, USAM
from .bias import min_l1, min_l2, solve_dual
from .flow import Flow
from .integrate import run
from .problem import load_problem, make_problem

#: radio label -> factory `(gamma, eps) -> algorithm`; SAM and USAM use `rho = gamma` (and are GD at 0)
ALGORITHMS = {
    "gd": lambda gamma, eps: GD(),
    "gr": lambda gamma, eps: GR(gamma),
    "fgr": lambda gamma, eps: FGR(gamma, eps),
    "bgr": lambda gamma, eps: BGR(gamma, eps),
    "sam": lambda gamma, eps: SAM(gamma) if gamma > 0 else GD(),
    "usam": lambda gamma, eps: USAM(gamma) if gamma > 0 else GD(),
}
#: what each radio label means, for the title
FORMULAS = {
    "gd": "GD (gradient flow)", "gr": "GR(gamma={g:.3g})", "fgr": "F-GR(gamma={g:.3g}, eps={e:.3g})",
    "bgr": "B-GR(gamma={g:.3g}, eps={e:.3g})", "sam": "SAM(rho=gamma={g:.3g})", "usam": "USAM(rho=gamma={g:.3g})",
}

LOG10_ALPHA_RANGE = (-8.0, 3.0)
GAMMA_RANGE = (0.0, 0.5)
EPS_RANGE = (0.01, 0.5)
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
#: the most alphas `dln explore --curve-points` takes
MAX_CURVE_POINTS = 200


def explorer_flow(max_steps):
    """The explorer's flow: loose tolerances (a picture, not a benchmark) and a work cap."""
    return Flow(rtol=1e-6, atol=1e-12, max_time=1e6, max_steps=max_steps)
#: how often the window polls the worker, in milliseconds
POLL_MS = 60


def make_algorithm(name, gamma, eps):
    """The algorithm object behind a radio label (see `ALGORITHMS`)."""
    if name not in ALGORITHMS:
        raise InputError(f"`algorithm` must be one of {sorted(ALGORITHMS)}; got {name!r}")
    return ALGORITHMS[name](float(gamma), float(eps))


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


def simulate(problem, algorithm, alpha, *, max_steps=MAX_STEPS, save_at=SAVE_AT, loss_tol=LOSS_TOL):
    """Run `algorithm` from `u = v = alpha` and reduce the run to a `Trajectory`."""
    res = run(problem, algorithm, explorer_flow(max_steps), alpha=alpha, save_at=save_at, loss_tol=loss_tol)
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
    if res.ok[0] and np.all(np.isfinite(aeff_f)) and np.all(aeff_f > 0):
        th = solve_dual(problem, aeff_f[None])
        beta_theory = th.beta[0] if th.converged[0] else np.full_like(beta, np.nan)
    else:
        beta_theory = np.full_like(beta, np.nan)
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


def simulate_curve(problem, algorithm, alphas=SIM_ALPHAS, *, max_steps=CURVE_MAX_STEPS, loss_tol=LOSS_TOL):
    """The algorithm's limit over `alphas`, all runs in one batch, reduced to a `Curve`."""
    res = run(problem, algorithm, explorer_flow(max_steps), alpha=np.asarray(alphas, float), loss_tol=loss_tol)
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


class Explorer:
    """The explorer's state: its figure, widgets, artists, caches and worker.

    Build it with `explore(...)`. `update()` reads the widgets, draws every
    answer it already has and asks the worker for the others; `poll()` draws
    the worker's answers for the current setting; `wait()` blocks until the
    worker is idle and then polls (for scripts and tests without an event loop).
    """

    def __init__(self, problem_for, seeded, *, alpha, algorithm, gamma, eps, seed, background,
                 sim_alphas, save_at, max_steps, figsize):
        import matplotlib.pyplot as plt
        from matplotlib.widgets import Button, RadioButtons, Slider

        self.problem_for = problem_for
        self.sim_alphas = np.asarray(sim_alphas, float)
        self.save_at = np.asarray(save_at, float)
        self.max_steps = max_steps
        self.background = background
        self._problems = OrderedDict()
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
        self._initial_algorithm = list(ALGORITHMS).index(algorithm)

        fig = plt.figure(figsize=figsize)
        self.fig = fig
        with _held(fig.canvas):  # widgets ask for draws as they are built; showing the figure draws it
            self._build(fig, alpha, algorithm, gamma, eps, seed, seeded, Button, RadioButtons, Slider)
            self.update()

    def _build(self, fig, alpha, algorithm, gamma, eps, seed, seeded, Button, RadioButtons, Slider):
        self.ax = ax = panels(fig)
        self.title = fig.text(0.5, 0.985, "", ha="center", va="top", fontsize=11)
        self.status = fig.text(0.5, 0.958, "", ha="center", va="top", fontsize=9, color="0.3")
        self.artists = self._make_artists(ax)

        # widgets: four sliders on the left, the algorithm on the right
        def slider(row, label, lo, hi, val, **kw):
            a = fig.add_axes([0.12, 0.19 - 0.045 * row, 0.46, 0.028])
            return Slider(a, label, lo, hi, valinit=val, **kw)

        w = {
            "alpha": slider(0, "log10 alpha", *LOG10_ALPHA_RANGE, np.log10(alpha), valfmt="%.2f"),
            "gamma": slider(1, "gamma (rho)", *GAMMA_RANGE, gamma, valfmt="%.3f"),
            "eps": slider(2, "eps", *EPS_RANGE, eps, valfmt="%.3f"),
            "seed": slider(3, "problem seed", *SEED_RANGE, seed, valstep=1, valfmt="%d"),
        }
        names = list(ALGORITHMS)
        w["algorithm"] = RadioButtons(fig.add_axes([0.66, 0.025, 0.12, 0.20]), names,
                                      active=names.index(algorithm))
        w["reset"] = Button(fig.add_axes([0.84, 0.06, 0.11, 0.06]), "reset")
        fig.text(0.84, 0.19, "gamma: GR strength\n(rho for SAM, USAM)\neps: ascent step\n(F-GR, B-GR)",
                 fontsize=8, va="top", color="0.3")
        if not seeded:
            w["seed"].label.set_text("seed (data file)")
            w["seed"].set_active(False)
        self.widgets = w
        for k in ("alpha", "gamma", "eps", "seed"):
            w[k].on_changed(self._changed)
        w["algorithm"].on_clicked(self._changed)
        w["reset"].on_clicked(lambda _event: self.reset())
        self._timer = fig.canvas.new_timer(interval=POLL_MS)
        self._timer.add_callback(self.poll)
        self._timer_on = False
        fig.canvas.mpl_connect("close_event", lambda _event: self.close())

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
    def setting(self):
        """The current widget values: `(seed, algorithm, gamma, eps, alpha)`."""
        w = self.widgets
        return (int(round(w["seed"].val)), w["algorithm"].value_selected, float(w["gamma"].val),
                float(w["eps"].val), float(10.0 ** w["alpha"].val))

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

    def _jobs(self, seed, name, gamma, eps, alpha):
        """The simulations a setting needs: `(cache, key, function, args, kwargs)` (picklable, for a
        process pool): the current run, and the algorithm's curve unless `sim_alphas` is empty."""
        problem = self.problem(seed)
        algorithm = make_algorithm(name, gamma, eps)
        jobs = [(self._sims, ("sim", seed, name, gamma, eps, alpha), simulate, (problem, algorithm, alpha),
                 dict(save_at=self.save_at, max_steps=self.max_steps))]
        if self.sim_alphas.size:
            jobs.append((self._curves, ("curve", seed, name, gamma, eps), simulate_curve,
                         (problem, algorithm, self.sim_alphas), dict(max_steps=min(self.max_steps, CURVE_MAX_STEPS))))
        return jobs

    # -- callbacks --------------------------------------------------------------------------------------
    def _changed(self, _value):
        if not self._muted:
            self.update()

    def update(self):
        """Read the widgets, draw what is known, and compute (or ask the worker for) the rest."""
        seed, name, gamma, eps, alpha = s = self.setting()
        jobs = self._jobs(*s)
        self._want = {job[1] for job in jobs}
        for key in list(self._futures):  # stale requests that have not started are dropped
            if key not in self._want and self._futures[key].cancel():
                del self._futures[key]
        for cache, key, fn, args, kwargs in jobs:
            if key in cache or key in self._futures:
                continue
            if self._pool is None:
                self._remember(cache, key, fn(*args, **kwargs))
            else:
                self._futures[key] = self._pool.submit(fn, *args, **kwargs)
        if self._futures and not self._timer_on:
            self._timer.start()
            self._timer_on = True
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
        self._muted = True
        try:
            with _held(self.fig.canvas):
                for k in ("alpha", "gamma", "eps", "seed"):
                    self.widgets[k].reset()
                self.widgets["algorithm"].set_active(self._initial_algorithm)
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
        """What is known for the current setting, as a dict: `problem`, `reference` (`Reference`),
        `beta` and `error` (the gradient-flow limit and its test error), `sim` (`Trajectory`, an
        exception, or None while pending) and `curve` (`Curve` or None)."""
        s = self.setting()
        problem = self.problem(s[0])
        beta, err = gf_limit(problem, s[4])
        keys = {job[1][0]: job[1] for job in self._jobs(*s)}
        return dict(problem=problem, reference=self.ref(s[0]), beta=beta, error=err,
                    sim=self._sims.get(keys["sim"]), curve=self._curves.get(keys.get("curve")),
                    pending=keys["sim"] in self._futures)

    def draw(self):
        """Set every artist's data from the caches for the current setting; ends in `draw_idle()`."""
        seed, name, gamma, eps, alpha = self.setting()
        now = self.current()
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

        algo = FORMULAS[name].format(g=gamma, e=eps)
        self.title.set_text(f"{algo}   |   alpha = {alpha:.3g}   |   problem n = {problem.n}, d = {d}"
                            + (f", seed {seed}" if self.widgets["seed"].get_active() else ""))
        self.status.set_text(self._status_line(sim, now["pending"], err, ref.error_name))
        self.fig.canvas.draw_idle()

    @staticmethod
    def _status_line(sim, pending, err, err_name):
        gf = f"GF prediction: {err_name} {err:.3g}"
        if pending:
            return gf + "   |   simulating the algorithm ..."
        if isinstance(sim, Exception):
            return gf + f"   |   simulation failed: {sim}"
        if sim is None:
            return gf
        line = f"{gf}   |   simulation: {sim.status} at t = {sim.t[-1]:.3g}, {err_name} {sim.error:.3g}"
        if sim.status == "converged" and np.all(np.isfinite(sim.beta_theory)):
            gap = np.max(np.abs(sim.beta - sim.beta_theory))
            line += f", max|beta - argmin Q_alpha_eff(inf)| = {gap:.1e}"
        elif sim.status != "converged":
            line += f" ({sim.message})"
        return line


def explore(problem=None, *, alpha=1e-1, algorithm="gr", gamma=0.05, eps=0.1, seed=0, n=40, d=200, s=5,
            noise=0.0, background=True, sim_alphas=None, save_at=None, max_steps=MAX_STEPS,
            figsize=(13, 8.5)):
    """Open the explorer on a problem; returns `(fig, widgets)` without blocking.

    Parameters
    ----------
    problem : Problem, optional
        A single problem (e.g. `dln.load_problem(path)`); the seed slider is then
        inactive. Default: `make_problem(n, d, s, noise, seed)`, re-drawn when the
        seed slider moves.
    alpha : float
        Initial `alpha`, `1e-8 <= alpha <= 1e3` (the slider is `log10 alpha`).
    algorithm : {'gd', 'gr', 'fgr', 'bgr', 'sam', 'usam'}
        Initial radio button; SAM and USAM take `rho = gamma`.
    gamma : float
        GR strength, `0 <= gamma <= 0.5`.
    eps : float
        Finite-difference ascent step, `0.01 <= eps <= 0.5`.
    seed : int
        Problem seed, `0 <= seed <= 20`.
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
        1e6, evenly spaced in `log10 t`.
    max_steps : int
        Work cap: accepted flow steps of the current run (the curve's runs take
        at most `CURVE_MAX_STEPS`). A capped run says so in the status line.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Its `explorer` attribute is the `Explorer` (artists, `wait()`, `poll()`).
    widgets : dict
        `alpha` (the `log10 alpha` slider), `gamma`, `eps`, `seed` (sliders),
        `algorithm` (radio buttons) and `reset` (button): call
        `widgets['alpha'].set_val(-2)` to move a slider.
    """
    lo, hi = LOG10_ALPHA_RANGE
    a = finite_array(alpha, "alpha")
    if a.ndim or not 10.0 ** lo <= a <= 10.0 ** hi:
        raise InputError(f"`alpha` must be a number with 1e-8 <= alpha <= 1e3; got {alpha!r}")
    for nm, v, (vlo, vhi) in (("gamma", gamma, GAMMA_RANGE), ("eps", eps, EPS_RANGE)):
        x = finite_array(v, nm)
        if x.ndim or not vlo <= x <= vhi:
            raise InputError(f"`{nm}` must be a number with {vlo} <= {nm} <= {vhi}; got {v!r}")
    if not isinstance(seed, (int, np.integer)) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise InputError(f"`seed` must be an integer with {SEED_RANGE[0]} <= seed <= {SEED_RANGE[1]}; got {seed!r}")
    make_algorithm(algorithm, gamma, eps)
    if not (background in (True, False, "process", "thread") or isinstance(background, cf.Executor)):
        _executor(background)  # raises the InputError
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise InputError(f"`max_steps` must be an integer >= 1; got {max_steps!r}")
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
    ex = Explorer(problem_for, problem is None, alpha=float(a), algorithm=algorithm, gamma=float(gamma),
                  eps=float(eps), seed=int(seed), background=background, sim_alphas=sim_alphas, save_at=save_at,
                  max_steps=max_steps, figsize=figsize)
    ex.fig.explorer = ex
    return ex.fig, ex.widgets


def add_arguments(parser, cmd="explore"):
    """Options of `dln explore`."""
    src = parser.add_argument_group("problem (either a data file or the default problem's options)")
    src.add_argument("--data", metavar="FILE.npz", help="load X, y (and X_test, y_test, beta_star) from an .npz file")
    src.add_argument("--n", type=int, default=None, help="samples (default 40)")
    src.add_argument("--d", type=int, default=None, help="dimension (default 200)")
    src.add_argument("--s", type=int, default=None, help="sparsity of beta* (default 5)")
    src.add_argument("--noise", type=float, default=None, help="label noise std (default 0)")
    src.add_argument("--seed", type=int, default=None, help="initial problem seed, 0..20 (default 0)")
    ini = parser.add_argument_group("initial widget values")
    ini.add_argument("--alpha", type=float, default=1e-1, help="initialization scale, 1e-8..1e3 (default 0.1)")
    ini.add_argument("--algorithm", default="gr", help=f"one of {', '.join(ALGORITHMS)} (default gr)")
    ini.add_argument("--gamma", type=float, default=0.05, help="GR strength, rho for sam/usam, 0..0.5 (default 0.05)")
    ini.add_argument("--eps", type=float, default=0.1, help="ascent step of fgr/bgr, 0.01..0.5 (default 0.1)")
    work = parser.add_argument_group("simulation work")
    work.add_argument("--curve-points", type=int, default=SIM_ALPHAS.size,
                      help="alphas on the algorithm's simulated test-loss curve, 1e-8..1e3 "
                           f"(default {SIM_ALPHAS.size}; 0 for none)")
    work.add_argument("--max-steps", type=int, default=MAX_STEPS,
                      help=f"work cap of the current run in accepted flow steps (default {MAX_STEPS})")
    parser.add_argument("--save", metavar="FILE.png",
                        help="compute everything, save the window as an image and exit (no display needed)")


def main(args, cmd="explore"):
    """`dln explore`: open the window (blocks until it is closed), or `--save` an image of it; errors name
    the flags (`--alpha`), not the function's arguments (`alpha`)."""
    try:
        return _main(args)
    except InputError as e:
        flag = lambda m: f"`--{m.group(1).replace('_', '-')}`"  # noqa: E731
        raise InputError(re.sub(r"`(n|d|s|noise|seed|alpha|algorithm|gamma|eps|max_steps|data)`", flag, str(e))) from None


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
    kw = dict(alpha=args.alpha, algorithm=args.algorithm, gamma=args.gamma, eps=args.eps,
              seed=0 if args.seed is None else args.seed, max_steps=args.max_steps,
              sim_alphas=np.logspace(*LOG10_ALPHA_RANGE, args.curve_points),
              **{k: v for k, v in opts.items() if v is not None})
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
