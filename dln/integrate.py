"""One entry point, `run(problem, algorithm, integrator, ...)`, one driver, one result type.

What is solved (`Objective` + algorithm), how it is stepped (a stepper:
`Steps` or `Flow`) and what is recorded (`save_at` times, observables) are
separate. The driver (`_drive`) is written once for both steppers: it owns
the live-run bookkeeping (slicing every per-run array, the algorithm's state
included, when runs stop), the stop rules, statuses and messages, the saves,
the work counters, the wall-clock cap and the progress bar. A stepper only
advances the live runs by one (attempted) step.

A stepper has
- `start(objective, algorithm, at, state) -> carry`: a dict of per-run
  arrays (and `Point`s) with keys at least `at` (the current point), `state`
  (the algorithm's state), `t` and `steps` (accepted steps);
- `room(carry, k, max_steps, max_time, rec, idx) -> m`: how many attempts one `advance` may make before
  the driver has work (a cap, a save time, a periodic test; 1 for a flow);
- `advance(objective, algorithm, carry, k, m, band) -> (carry, Move)`: up to `m` attempts, stopped early
  where a run's loss leaves `band` (the driver's stop rules then apply);
- `next_passes(carry, max_time)`: runs whose next step would pass `max_time`;
- `save_times(save_at, B)`: the times actually recorded (discrete runs:
  `eta k` at the step nearest each requested time).
"""
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import numpy as np

from . import _kernels
from . import algorithms as _alg
from ._checks import InputError, alpha_batch, batch_size, finite_array, fits_in_memory, seed_array
from ._hyper import Declared, Hyper
from .models import Depth, Product, Squares
from .objective import Objective, Point
from .problem import as_problem

#: a run whose loss exceeds this multiple of its initial loss has diverged
BLOWUP = 1e12
#: a run in which some coordinate's scale (`alpha_eff`, or `|(u, v)|` without one) falls below this
#: fraction of its initial value before the loss has halved has collapsed
COLLAPSE = 1e-6
#: statuses of a run; the first five leave a meaningful final state (`Result.ok`)
STATUSES = ("converged", "no_interpolator", "max_steps", "max_time", "max_wall",
            "diverged", "collapsed", "stalled")

MAX_STEPS = Hyper("max_steps", "cap on (accepted) steps per run", kind="int", lo=1, per_run=False)
MAX_TIME = Hyper("max_time", "cap on the time t", lo=0, lo_open=True, infinite=True, per_run=False, default=np.inf)
#: `run`'s stop rules (a sweep's `[integrator]` table takes them too)
LOSS_TOL = Hyper("loss_tol", "stop at train loss <= loss_tol (times L(0) when relative)", lo=0, per_run=False,
                 default=1e-14)
RELATIVE = Hyper("relative", "loss_tol is relative to the initial loss", kind="bool", per_run=False, default=True)
MAX_WALL = Hyper("max_wall", "wall-clock cap in seconds on a batch (a sweep: on each task)", lo=0, lo_open=True,
                 per_run=False, default=None)
STOP = {h.name: h for h in (LOSS_TOL, RELATIVE, MAX_WALL)}
PROGRESS = Hyper("progress", "show a progress bar over finished runs", kind="bool", per_run=False, default=False)


class Move(NamedTuple):
    """What one attempted step did, per live run.

    evals : ndarray of int, (B,)
        Gradient evaluations spent.
    accepted : ndarray of bool, (B,)
    dense : callable
        `dense(rows, t) -> theta` of shape (len(rows), 2, d): the state at times `t` within the
        last accepted step of runs `rows`.
    failed : ndarray of str, (B,), or None
        A status for runs the stepper cannot continue (`""` for none), with `why`, their messages; None
        where no run failed (always from discrete steps, which cannot fail a run).
    why : ndarray of str, (B,), or None
    taken : int
        Attempts made, `<= m` of the stepper's `advance`: the step counter advances by it.
    """

    evals: np.ndarray
    accepted: np.ndarray
    dense: Callable
    failed: np.ndarray
    why: np.ndarray
    taken: int = 1


def tree_take(tree, idx):
    """Rows `idx` of every array in a (nested) dict; objects with a `take` method use it."""
    if isinstance(tree, dict):
        return {k: tree_take(v, idx) for k, v in tree.items()}
    if hasattr(tree, "take") and not isinstance(tree, np.ndarray):
        return tree.take(idx)
    return tree[idx]


class Steps(Declared):
    """Discrete steps `theta <- theta - eta D(theta)`, on the time axis `t = eta k`.

    eta : float or ndarray, shape (B,)
        Step size per run, `> 0`.
    max_steps : int
        Cap on the number of steps.
    max_time : float
        Cap on `t = eta k`: a run takes at most `floor(max_time / eta)` steps.
    """

    hyper = (Hyper("eta", "step size", lo=0, lo_open=True, default=0.01),
             replace(MAX_STEPS, default=100_000), MAX_TIME)

    #: the driver tests for collapse every `check_every` steps
    check_every = 32
    #: multiply-adds of matrix products that one `advance` of several steps may take (~0.05 s on one core):
    #: Ctrl-C, `max_wall` and the progress bar are seen between calls
    call_work = 2e8

    def save_times(self, save_at, B):
        eta = self.per_run("eta", B)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.rint(save_at[None, :] / eta[:, None]) * eta[:, None]

    def start(self, objective, algorithm, at, state):
        B = at.theta.shape[0]
        # the steps write each new state over the last (`Algorithm.apply`): the carried state is a copy of
        # the start (which the caller may hold, and `hint` reads), its beta shared (no step writes it)
        at = Point(objective, at.theta.copy(), at.beta)
        # the per-run parts of every `Move` are the same each step: made once, sliced with the carry
        return {"at": at, "state": state, "t": np.zeros(B), "steps": np.zeros(B, np.int64),
                "eta": self.per_run("eta", B).astype(float), "evals": _alg.evals_per_run(algorithm, B).copy(),
                "accepted": np.ones(B, bool), "loss_check": np.full(B, np.nan), "theta_check": np.empty((B, 0, 0)),
                "fitted": np.broadcast_to(_floor(objective.problem, fitted=True), (B,)).copy()}

    def start_evals(self, algorithm, B):
        """Gradient evaluations counted before the first step: the loss of the state the run ends in."""
        return np.ones(B, np.int64)

    def hint(self, objective, algorithm, theta0, rows, B):
        """What to change, appended to the messages of diverged runs `rows`: the stable step size."""
        lim = _stable_eta(objective.take(rows), algorithm.take(rows, B), theta0[rows])
        eta = self.per_run("eta", B)
        others = _alg.knobs(algorithm, ["alpha"])
        return [f"; `eta` = {eta[r]:.3g} is too large: try eta < {lm:.3g} (2 / largest eigenvalue of the update's "
                "Jacobian at initialization)" if np.isfinite(lm) and eta[r] >= lm > 0 else
                f"; `eta` = {eta[r]:.3g} is below 2 / the largest eigenvalue of the update's Jacobian at "
                f"initialization ({lm:.3g}): what grows is set by {others}" if np.isfinite(lm) and lm > 0 else
                f"; the update's Jacobian at initialization is not finite: the data, {others} overflow"
                for r, lm in zip(rows, lim)]

    @staticmethod
    def _last_step(eta, max_time):
        """The last step `K` per run (B,) that ends within `max_time`: the largest `K` with
        `eta K <= max_time (1 + 1e-12)` (the step `k -> k + 1` ends at `eta (k + 1)`; compared as the save
        times are formed), the quotient's rounding corrected either way (inf where `max_time` is)."""
        cap = max_time * (1 + 1e-12)
        with np.errstate(all="ignore"):
            K = np.floor(cap / eta)
            K = np.where(eta * (K + 1) <= cap, K + 1, K)
            return np.where(eta * K > cap, K - 1, K)

    def next_passes(self, carry, max_time):
        return carry["steps"] + 1 > self._last_step(carry["eta"], max_time)

    def room(self, carry, k, max_steps, max_time, rec, idx):
        """How many steps the live runs `idx` may take in one `advance` before the driver has work: up to the
        next multiple of `check_every` (its collapse test, `_frozen`), `max_steps`, each run's last step within
        `max_time` (as `next_passes` allows it) and the step of its next save time in `rec` (save times are
        `eta` times an integer, `save_times`), and `call_work` (a step's products: `2 B n d` multiply-adds per
        gradient). At least 1."""
        at = carry["at"]
        B, _, d = at.theta.shape
        step_work = 2.0 * B * at.objective.problem.n * d * float(carry["evals"].max())
        m = min(self.check_every - k % self.check_every, max_steps - k, max(1, int(self.call_work // step_work)))
        eta, steps = carry["eta"], carry["steps"]
        with np.errstate(all="ignore"):
            last = np.rint(rec.next_times(idx) / eta) if rec.S else np.full(idx.size, np.inf)
            if np.isfinite(max_time):
                last = np.minimum(last, self._last_step(eta, max_time))
            room = np.min(last - steps, initial=np.inf)
        return int(max(1, min(m, room)))

    def advance(self, objective, algorithm, carry, k, m=1, band=None):
        """Up to `m` steps `theta - eta D` (`Algorithm.apply_many`, within the loss band `band`)."""
        at, state, taken = algorithm.apply_many(carry["at"], carry["state"], k, carry["eta"], m, band)
        steps = carry["steps"] + taken
        new = dict(carry, at=at, state=state, t=carry["eta"] * steps, steps=steps)
        failed = why = None
        if (k + taken) % self.check_every == 0:
            failed, why = self._frozen(algorithm, new)
        return new, Move(carry["evals"] * taken, carry["accepted"], lambda rows, t: at.theta[rows], failed, why,
                         taken)

    def _frozen(self, algorithm, carry):
        """Every `check_every` steps: the runs whose state has not changed in floating point since the last
        check, above the loss of a fit to round-off (`carry["fitted"]`), stop as `stalled` (deterministic
        steps from it repeat it forever; a run fitted to round-off goes on to its cap, as `loss_tol = 0`
        asks). Their loss is the same first; `theta` is kept, in `carry` (updated in place), only while some
        run's loss is (in a run that moves, never). Returns `(failed, why)` as `Move` takes them, or
        `(None, None)`."""
        at = carry["at"]
        L, snap = at.loss, carry["theta_check"]
        same = (L == carry["loss_check"]) & (L > carry["fitted"])
        frozen = same & np.all(at.theta == snap, axis=(1, 2)) if snap.size else None
        carry["loss_check"] = L
        carry["theta_check"] = at.theta.copy() if same.any() else np.empty((L.size, 0, 0))
        if frozen is None or not frozen.any():
            return None, None
        failed, why = np.full(L.size, "", dtype=object), np.full(L.size, "", dtype=object)
        name = type(algorithm).__name__
        for i in np.flatnonzero(frozen):
            failed[i] = "stalled"
            why[i] = (f"{name}: the state has not changed in floating point over {self.check_every} steps (step "
                      f"{carry['steps'][i]}, loss {L[i]:.3g}): its direction is 0, a stationary point that does not "
                      "fit the data such as u = v = 0 (change the initialization), or `eta` times it is below the "
                      "round-off of u and v (raise `eta`)")
        return failed, why


@dataclass(frozen=True, eq=False)
class Observables:
    """What is recorded of a state. Shapes below for a batch of states (B,);
    saved observables carry one more axis, (B, S), for the save times.

    beta : ndarray, shape (B, d)
    train_loss : ndarray, shape (B,)
    test_loss : ndarray, shape (B,), or None without a test set
    grad_norm : ndarray, shape (B,)
        `||grad_theta L||`.
    alpha_eff : ndarray, shape (B, d), or None where the model has none
        `sqrt(u v)` for the squares model.
    """

    beta: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray | None
    grad_norm: np.ndarray
    alpha_eff: np.ndarray | None


def observe(objective, theta):
    """The `Observables` of states `theta` of shape (B, 2, d)."""
    at = objective.at(theta)
    G = at.grad
    p = objective.problem
    return Observables(
        beta=at.beta,
        train_loss=at.loss,
        test_loss=None if p.X_test is None else p.loss(at.beta, test=True),
        grad_norm=np.sqrt(np.einsum("bkd,bkd->b", G, G)),
        alpha_eff=objective.model.alpha_eff(theta),
    )


@dataclass(frozen=True, eq=False)
class Result:
    """The outcome of a batch of runs; row `b` is run `b`.

    t : ndarray, shape (B, S)
        Save times (for discrete runs `eta k` at the step nearest each requested time).
    saved : Observables
        At the save times, shapes (B, S, ...). After a run stops, its later
        saves repeat its final state (`ok` runs) or are NaN (the others).
    final : Observables
        At the final state, shapes (B, ...).
    theta : ndarray, shape (B, 2, d)
        Final parameters `(u, v)`.
    t_final : ndarray, shape (B,)
    steps : ndarray of int, shape (B,)
        Steps taken (accepted steps for a flow).
    grad_evals : ndarray of int, shape (B,)
        Gradient evaluations (a Hessian-vector product counts as one; rejected flow steps count).
    status : ndarray of str, shape (B,)
        One of `STATUSES`: `converged` (loss below `loss_tol`), `no_interpolator` (the loss
        settled at the least-squares floor above `loss_tol`), `max_steps`, `max_time`,
        `max_wall` (caps), `diverged`, `collapsed` (`u, v -> 0` without fitting the data) or
        `stalled` (the state stopped changing in floating point, as at a stationary point that does
        not fit the data; for a flow also an adaptive step fallen to round-off: a discontinuous field).
    message : ndarray of str, shape (B,)
        What happened, and for a failure what to change.
    algorithm : Algorithm
        The algorithm of the batch (per-run hyperparameters as arrays of shape (B,) or scalars).
    integrator : Steps or Flow
    alpha : ndarray, shape (B,) or (B, d), or None when `theta0` was given
    sample_seed : ndarray of int, shape (B,)
    """

    t: np.ndarray
    saved: Observables
    final: Observables
    theta: np.ndarray
    t_final: np.ndarray
    steps: np.ndarray
    grad_evals: np.ndarray
    status: np.ndarray
    message: np.ndarray
    algorithm: object = None
    integrator: object = None
    alpha: np.ndarray | None = None
    sample_seed: np.ndarray | None = None

    def __len__(self):
        return self.theta.shape[0]

    @property
    def ok(self):
        """Runs whose final state is meaningful (converged, no interpolator, or a cap), shape (B,)."""
        return np.isin(self.status, STATUSES[:5])

    def to_xarray(self):
        """The runs as an `xarray.Dataset` on dimensions `run` (B), `coord` (d) and, with saves, `time` (S;
        the times recorded per run are the variable `saved_t`).

        Variables: the final observables (`beta`, `alpha_eff`, `train_loss`, `test_loss`, `grad_norm`; those
        the model or data lack are left out), `t_final`, `steps`, `grad_evals`, `status`, `message`, and
        with saves `saved_t` (the times recorded, `eta k` for steps) and `saved_<observable>`.
        Coordinates: `alpha`, `sample_seed` and every hyperparameter of the algorithm and the
        integrator (per-run values along `run`, the others as scalars); the classes' names are
        the attributes `algorithm` and `integrator`.
        """
        import xarray as xr
        dims = {1: ("run",), 2: ("run", "coord")}
        data = {f: (dims[a.ndim], a) for f, a in vars(self.final).items() if a is not None}
        if self.t.shape[1]:
            data["saved_t"] = (("run", "time"), self.t)
            data.update({f"saved_{f}": (("run", "time", "coord")[:a.ndim], a)
                         for f, a in vars(self.saved).items() if a is not None})
        for f in ("t_final", "steps", "grad_evals", "status", "message"):
            data[f] = ("run", getattr(self, f))
        coords = {"run": np.arange(len(self)), "coord": np.arange(self.theta.shape[2])}
        if self.alpha is not None:
            coords["alpha"] = dims[self.alpha.ndim], np.broadcast_to(self.alpha, (len(self),) + self.alpha.shape[1:])
        if self.sample_seed is not None:
            coords["sample_seed"] = ("run", self.sample_seed)
        attrs = {}
        for role, obj in (("algorithm", self.algorithm), ("integrator", self.integrator)):
            if obj is None:
                continue
            attrs[role] = type(obj).__name__
            for h in obj.hyper:
                v = getattr(obj, h.name)
                if h.kind == "algorithm":
                    attrs[h.name] = repr(v)
                    continue
                name = h.name if h.name not in coords else f"{role}_{h.name}"
                coords[name] = ("run", np.broadcast_to(v, (len(self),))) if isinstance(v, np.ndarray) else v
        return xr.Dataset(data, coords=coords, attrs=attrs)


class _Recorder:
    """Output buffers of a batch: saves, final states, counters, statuses."""

    def __init__(self, objective, B, t_saved):
        d = objective.problem.d
        S = t_saved.shape[1]
        has_test = objective.problem.X_test is not None
        has_aeff = objective.model.alpha_eff(np.ones((1, 2, d))) is not None
        self.S = S
        self.t = t_saved
        self.saved = dict(beta=np.full((B, S, d), np.nan), train_loss=np.full((B, S), np.nan),
                          test_loss=np.full((B, S), np.nan) if has_test else None,
                          grad_norm=np.full((B, S), np.nan),
                          alpha_eff=np.full((B, S, d), np.nan) if has_aeff else None)
        self.ptr = np.zeros(B, dtype=np.int64)
        self.theta = np.full((B, 2, d), np.nan)
        self.t_final = np.zeros(B)
        self.steps = np.zeros(B, dtype=np.int64)
        self.grad_evals = np.zeros(B, dtype=np.int64)
        self.status = np.full(B, "", dtype=object)
        self.message = np.full(B, "", dtype=object)

    def next_times(self, rows):
        """The next save time of runs `rows` (inf where none is left), (len(rows),)."""
        p = self.ptr[rows]
        left = p < self.S
        out = np.full(rows.size, np.inf)
        out[left] = self.t[rows[left], p[left]]
        return out

    def due(self, rows, t):
        """Of runs `rows` at time `t`, those whose next save time is `<= t` (a bool mask)."""
        p = self.ptr[rows]
        due = p < self.S
        due[due] = self.t[rows[due], p[due]] <= t[due]
        return due

    def save(self, objective, rows, theta, upto=None):
        """Record `theta` (the states of global runs `rows`) at each run's next save slot,
        or at every slot below `upto` (an array of slot indices) to fill a stopped run."""
        with np.errstate(all="ignore"):
            o = observe(objective, theta)
        slots = self.ptr[rows]
        hi = slots + 1 if upto is None else upto
        for k in range(int((hi - slots).max(initial=0))):
            sel = slots + k < hi
            r, s = rows[sel], (slots + k)[sel]
            for name, buf in self.saved.items():
                if buf is not None:
                    buf[r, s] = getattr(o, name)[sel]
        self.ptr[rows] = np.maximum(hi, slots)

    def finish(self, objective, rows, theta, t, status, message, fill):
        """Close runs `rows` with final state `theta` at time `t`; `fill` repeats the
        final state into the remaining save slots."""
        self.theta[rows] = theta
        self.t_final[rows] = t
        self.status[rows] = status
        self.message[rows] = message
        if fill and self.S:
            self.save(objective, rows, theta, upto=np.full(rows.size, self.S))

    def result(self, objective, **meta):
        ok = np.isfinite(self.theta).all(axis=(1, 2))
        with np.errstate(all="ignore"):
            final = observe(objective, np.where(ok[:, None, None], self.theta, 1.0))
        nan = lambda a: None if a is None else np.where(  # noqa: E731
            ok.reshape((-1,) + (1,) * (a.ndim - 1)), a, np.nan)
        final = Observables(*(nan(getattr(final, f)) for f in Observables.__dataclass_fields__))
        return Result(self.t, Observables(**self.saved), final, self.theta, self.t_final, self.steps,
                      self.grad_evals, self.status.astype(str), self.message.astype(str), **meta)


def _stable_eta(objective, algorithm, theta, iters=60):
    """`2 / lambda_max` per run, `lambda_max` the largest eigenvalue (by power iteration) of the
    Jacobian of the update direction `D` at `theta`: the step size above which the iteration
    `theta <- theta - eta D(theta)` is unstable there. For GD it is the Hessian `H`; for GR it is
    `H + gamma H^2 + ...`, whose limit is much smaller. Jacobian-vector products by central differences
    of the direction from a fresh state (`algorithms.direction`: a pure call, no run's state is touched;
    3 significant digits are all the message needs). NaN where the direction is not finite."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(theta.shape)
    lam = np.zeros(theta.shape[0])
    h = 1e-6 * np.maximum(1.0, np.abs(theta).max(axis=(1, 2)))[:, None, None]
    with np.errstate(all="ignore"):
        for _ in range(iters):
            w /= np.sqrt(np.einsum("bkd,bkd->b", w, w))[:, None, None]
            Jw = _alg.direction(algorithm, objective, theta + h * w)
            Jw -= _alg.direction(algorithm, objective, theta - h * w)
            Jw /= 2 * h
            lam = np.einsum("bkd,bkd->b", w, Jw)
            w = np.where(np.isfinite(w), Jw, 0.0)
        return 2 / np.abs(lam)


def _scale(model, theta):
    """Per-coordinate scale of the state, shape (B, d): `alpha_eff`, or `sqrt(u^2 + v^2)` for a model
    without one (NaN where `alpha_eff` is undefined)."""
    a = model.alpha_eff(theta)
    return np.sqrt(np.einsum("bkd,bkd->bd", theta, theta)) if a is None else a


def _collapsed(model, theta, scale0, L, L0):
    """Runs driven to `u, v -> 0` without fitting the data, shape (B,): some coordinate's scale fell
    below `COLLAPSE` times its initial value while the loss is still above half the initial loss."""
    with np.errstate(all="ignore"):
        low = _kernels.any_below(_scale(model, theta), scale0, COLLAPSE)
    return low & (L >= 0.5 * L0)


def _floor(problem, fitted=False):
    """The least-squares floor `min L` per problem, (P,), 0 where it is round-off: at most the loss
    `(1e4 eps)^2 ||y||^2 / (2n)` of a residual of 1e4 ulps of `y` (a computed least-squares residual of data
    that interpolate is round-off, ~1e-31 of that scale on the default problem, and no loss tolerance
    below it can be told from 0). With `fitted`, the floor plus that round-off: a loss at most this is a
    fit as close as floating point resolves."""
    y = problem.y
    ulps = (1e4 * np.finfo(float).eps) ** 2 * 0.5 * np.einsum("pn,pn->p", y, y) / problem.n
    floor = np.where(problem.floor > ulps, problem.floor, 0.0)
    return floor + ulps if fitted else floor


def _drive(objective, algorithm, stepper, theta0, seeds, save_at, tol, rec, max_wall, progress):
    """The batch loop, written once for every stepper (see the module doc)."""
    B = theta0.shape[0]
    model = objective.model
    name = type(algorithm).__name__
    with np.errstate(all="ignore"):
        at0 = objective.at(theta0)
        L0 = at0.loss
        state = algorithm.init(at0, seeds)
        carry = stepper.start(objective, algorithm, at0, state)
        scale0 = _scale(model, theta0)
    floor = _floor(objective.problem)
    floor = np.broadcast_to(floor, (B,)) if floor.size == 1 else floor
    floor_tol = np.maximum(tol, 1e-9 * floor)
    no_interp = floor > tol
    max_steps, max_time = stepper.max_steps, stepper.max_time
    idx = np.arange(B)
    obj, alg = objective, algorithm
    if rec.S:
        due = rec.due(idx, carry["t"])
        if due.any():
            rec.save(obj.take(due.nonzero()[0]), idx[due], theta0[due])
    deadline = np.inf if max_wall is None else time.monotonic() + max_wall
    bar = _progress(B, progress)
    rec.grad_evals[:] = stepper.start_evals(algorithm, B)
    # a live run can stop by its loss only outside (lo, hi] (lo: the larger stop level, with a margin
    # over the round-off of `L - floor`; hi: the blow-up level, finite so that L = inf is outside):
    # while every loss is inside, no cap applies and no collapse test is due, a step skips the
    # stop rules (a few operations on (B,) arrays instead of some forty)
    level = np.maximum(tol, np.where(no_interp, floor + floor_tol, -np.inf)) * (1 + 1e-12)
    band = np.stack([level, np.minimum(BLOWUP * L0, np.finfo(float).max)])
    live_band = band
    timed = np.isfinite(max_time)
    k = 0
    with np.errstate(all="ignore"), bar:  # one context for the loop: no per-step enter and exit
        while idx.size:
            at, t, steps = carry["at"], carry["t"], carry["steps"]
            # the loss is finite exactly when beta is, and a non-finite theta shows in beta: one
            # check over (B,) instead of a pass over theta
            L = at.loss
            # accepted steps grow by at most one per attempt, so `steps <= k` and no run is at
            # `max_steps` before attempt `k = max_steps`
            quiet = (k < max_steps and not timed and time.monotonic() <= deadline
                     and _kernels.within(L, live_band[0], live_band[1]))
            if quiet and not k % stepper.check_every:
                # a collapse test is due (every `check_every` attempts: 16 for a flow, 32 for discrete steps),
                # and it is the only rule that can stop a run: where it stops none, the stop rules below are
                # skipped too
                quiet = not _collapsed(model, at.theta, scale0[idx], L, L0[idx]).any()
            if not quiet:
                blow = ~np.isfinite(L) | (L > BLOWUP * L0[idx])
                conv = ~blow & (L <= tol[idx])
                settled = ~blow & ~conv & no_interp[idx] & (L - floor[idx] <= floor_tol[idx])
                # the collapse test is a few passes over theta: every step of a flow (whose steps cost
                # far more), every 32nd of discrete steps
                collapsed = ~blow & ~conv & ~settled
                if k % stepper.check_every == 0:
                    collapsed &= _collapsed(model, at.theta, scale0[idx], L, L0[idx])
                else:
                    collapsed[:] = False
                live = ~(blow | conv | settled | collapsed)
                scap = live & (steps >= max_steps)
                tcap = live & ~scap & ((t >= max_time) | stepper.next_passes(carry, max_time))
                wcap = live & ~scap & ~tcap & (time.monotonic() > deadline)
                stop = ~live | scap | tcap | wcap
                if stop.any():
                    rows = [(conv, "converged", True, lambda i: f"loss {L[i]:.3g} below tolerance at t = {t[i]:.6g} "
                                                                f"after {steps[i]} steps"),
                            (settled, "no_interpolator", True,
                             lambda i: f"the data have no interpolator: the loss settled at the least-squares floor "
                                       f"{floor[idx[i]]:.6g} (excess {L[i] - floor[idx[i]]:.3g}) at t = {t[i]:.6g}"),
                            (scap, "max_steps", True, lambda i: f"reached max_steps = {max_steps} at t = {t[i]:.6g} with "
                                                                 f"loss {L[i]:.3g}; raise `max_steps` or `loss_tol`"),
                            (tcap, "max_time", True, lambda i: f"reached max_time = {max_time:.6g} at t = {t[i]:.6g} "
                                                                f"(step {steps[i]}) with loss {L[i]:.3g}"),
                            (wcap, "max_wall", True, lambda i: f"reached max_wall = {max_wall:.3g} s at t = {t[i]:.6g} "
                                                                f"(step {steps[i]}) with loss {L[i]:.3g}"),
                            (collapsed, "collapsed", False,
                             lambda i: f"{name}: u, v driven to 0 at step {steps[i]} (t = {t[i]:.6g}) without fitting "
                                       f"the data (loss {L[i]:.3g}, initial {L0[idx[i]]:.3g}; a coordinate's scale fell "
                                       f"{1 / COLLAPSE:.0e}-fold): {_alg.collapse_hint(alg)}"),
                            (blow, "diverged", False, lambda i: _diverged_message(name, L[i], t[i], steps[i]))]
                    _close(rec, obj, idx, at.theta, t, steps, rows)
                    if blow.any():
                        rows_b = idx[blow]
                        for r, h in zip(rows_b, stepper.hint(objective, algorithm, theta0, rows_b, B)):
                            rec.message[r] += h
                    keep = ~stop
                    bar.update(int(stop.sum()))
                    idx = idx[keep]
                    if not idx.size:
                        break
                    carry = tree_take(carry, keep.nonzero()[0])
                    obj, alg = objective.take(idx), algorithm.take(idx, B)
                    live_band = band[:, idx]
            m = stepper.room(carry, k, max_steps, max_time, rec, idx)
            carry, move = stepper.advance(obj, alg, carry, k, m, live_band)
            k += move.taken
            if idx.size == B:
                rec.grad_evals += move.evals  # every run live: no gather and scatter
            else:
                rec.grad_evals[idx] += move.evals
            if rec.S:
                while True:
                    due = move.accepted & rec.due(idx, carry["t"])
                    if not due.any():
                        break
                    sel = due.nonzero()[0]
                    rec.save(obj.take(sel), idx[sel], move.dense(sel, rec.t[idx[sel], rec.ptr[idx[sel]]]))
            failed = None if move.failed is None else move.failed != ""  # None: no run failed
            if failed is not None and failed.any():
                sel = failed.nonzero()[0]
                rec.steps[idx[sel]] = carry["steps"][sel]
                rec.finish(obj.take(sel), idx[sel], carry["at"].theta[sel], carry["t"][sel],
                           move.failed[sel], move.why[sel], False)
                bar.update(sel.size)
                keep = ~failed
                idx = idx[keep]
                if idx.size:
                    carry = tree_take(carry, keep.nonzero()[0])
                    obj, alg = objective.take(idx), algorithm.take(idx, B)
                    live_band = band[:, idx]
            if not bar.disable and k // 50 != (k - move.taken) // 50:
                _postfix(bar, idx, carry)


def _diverged_message(name, L, t, steps):
    return (f"{name} diverged at step {steps} (t = {t:.6g}): train loss {L:.3g} is not finite or above "
            f"{BLOWUP:.0e} x initial")


def _close(rec, obj, idx, theta, t, steps, rows):
    """Finish the runs of each (mask, status, fill, message) in `rows`."""
    for mask, status, fill, msg in rows:
        if mask.any():
            sel = mask.nonzero()[0]
            rec.steps[idx[sel]] = steps[sel]
            th = theta[sel] if fill else np.where(np.isfinite(theta[sel]), theta[sel], np.nan)
            rec.finish(obj.take(sel), idx[sel], th, t[sel], status, [msg(i) for i in sel], fill)


def _progress(B, on):
    """A tqdm bar over finished runs (disabled unless `on`)."""
    from tqdm.auto import tqdm
    return tqdm(total=B, disable=not on, unit="run", file=sys.stderr, leave=False, mininterval=0.5)


def _postfix(bar, idx, carry):
    """Name the run that holds the batch: the live run with the smallest time."""
    if idx.size:
        i = int(np.argmin(carry["t"]))
        bar.set_postfix_str(f"{idx.size} live; run {idx[i]} at t = {carry['t'][i]:.3g}, "
                            f"loss {carry['at'].loss[i]:.2e}", refresh=False)


def run(problem, algorithm=None, integrator=None, *, model=None, alpha=1.0, theta0=None, save_at=(),
        loss_tol=LOSS_TOL.default, relative=RELATIVE.default, sample_seed=0, max_wall=None,
        progress=PROGRESS.default):
    """Train a diagonal linear network: a batch of runs, one vectorized computation.

    Parameters
    ----------
    problem : Problem
        `P` stacked problems; `P = 1` serves every run, else run `b` uses problem `b`.
    algorithm : Algorithm
        Default `GD()`. Hyperparameters of shape (B,) give one value per run.
    integrator : Flow or Steps
        Default `Flow()`.
    model : Depth, Product
        Default `Squares()`.
    alpha : float or ndarray, shape (B,), (1, d) or (B, d)
        Initialization scale, `> 0`: one per run, or per coordinate (2-D).
    theta0 : ndarray, shape (2, d) or (B, 2, d), optional
        Initial `(u, v)`; overrides `alpha`.
    save_at : array_like of float, shape (S,)
        Times at which to record `Observables` (for `Steps`, `t = eta k`).
    loss_tol : float
        A run converges once its training loss is `<= loss_tol * L(theta0)`
        (`relative=True`, the default) or `<= loss_tol` (`relative=False`).
        `0` runs to the cap.
    sample_seed : int or ndarray of int, shape (B,)
        Seeds of the runs' random streams (stochastic algorithms): run `b` draws from its own
        seed only, so it equals the single run with that seed.
    max_wall : float, optional
        Wall-clock cap in seconds for the batch; live runs then end with status `max_wall`.
    progress : bool
        Show a progress bar over finished runs, naming the run that holds the batch.

    Returns
    -------
    Result
        Row `b` equals the single run with the `b`-th hyperparameters.
    """
    from .flow import Flow
    problem = as_problem(problem)
    algorithm = _alg.GD() if algorithm is None else _alg.check_algorithm(algorithm)
    integrator = Flow() if integrator is None else integrator
    model = Squares() if model is None else model
    if not isinstance(model, (Depth, Product)):
        raise InputError(f"`model` must be a model object, Squares(), Depth(D) or Product(); got {model!r}")
    if not isinstance(integrator, (Flow, Steps)):
        raise InputError(f"`integrator` must be Flow(...) or Steps(eta); got {integrator!r}")
    if isinstance(integrator, Flow) and not algorithm.flow:
        raise InputError(f"`algorithm` {type(algorithm).__name__} is defined for discrete steps only; use `Steps(eta)`")
    d = problem.d
    for h, v in algorithm.items():
        if h.divides == "n" and np.any(problem.n % np.asarray(v) != 0):
            raise InputError(f"`{h.name}` must divide n = {problem.n}; got {v}")
    sizes = {"problem": problem.P}
    if theta0 is None:
        a = alpha_batch(alpha, d)
        sizes["alpha"] = a.shape[0]
    else:
        th = finite_array(theta0, "theta0", ndim=(2, 3))
        th = th[None] if th.ndim == 2 else th
        if th.shape[1:] != (2, d):
            raise InputError(f"`theta0` must have shape (2, d) or (B, 2, d) with d = {d}; got {th.shape}")
        model.check_init(th)
        sizes["theta0"] = th.shape[0]
    sizes.update(algorithm.batch_sizes())
    sizes.update(integrator.batch_sizes())
    seeds = seed_array(sample_seed, "sample_seed")
    sizes["sample_seed"] = seeds.size
    B = batch_size(sizes)
    seeds = np.broadcast_to(seeds, (B,)).copy()
    theta = model.init(a, d) if theta0 is None else th
    theta = np.ascontiguousarray(np.broadcast_to(theta, (B, 2, d)), dtype=float)
    save_at = finite_array(save_at, "save_at", ndim=(0, 1)).reshape(-1)
    if np.any(save_at < 0) or np.any(np.diff(save_at) <= 0):
        raise InputError("`save_at` must be non-negative times in increasing order, each once")
    save_at = save_at[save_at <= integrator.max_time]
    fits_in_memory(8 * B * save_at.size * (2 * d + 4), f"`save_at` ({save_at.size} times) x d x runs = "
                   f"{save_at.size} x {d} x {B}")
    tol, relative, progress = LOSS_TOL.check(loss_tol), RELATIVE.check(relative), PROGRESS.check(progress)
    max_wall = None if max_wall is None else MAX_WALL.check(max_wall)
    if tol == 0 and isinstance(integrator, Flow) and not np.isfinite(integrator.max_time):
        raise InputError("`loss_tol` = 0 runs to the cap, so the flow needs a finite `max_time`")
    objective = Objective(problem, model)
    with np.errstate(all="ignore"):
        L0 = objective.loss(theta)
    tol = tol * L0 if relative else np.full(B, float(tol))
    rec = _Recorder(objective, B, integrator.save_times(save_at, B))
    _drive(objective, algorithm, integrator, theta, seeds, save_at, tol, rec, max_wall, progress)
    return rec.result(objective, algorithm=algorithm, integrator=integrator,
                      alpha=a if theta0 is None else None, sample_seed=seeds)
