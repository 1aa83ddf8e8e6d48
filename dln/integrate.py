"""One entry point, `run(problem, algorithm, integrator, ...)`, and one result type.

What is solved (`Objective` + algorithm), how it is stepped (`Steps` or
`Flow`) and what is recorded (`save_at` times, observables) are separate. A
batch of runs is one vectorized computation: runs share the data layout,
each has its own hyperparameters, time, step size and status, and runs that
stop leave the batch.
"""
from dataclasses import dataclass

import numpy as np

from . import algorithms as _alg
from ._checks import InputError, alpha_batch, batch_size, finite_array, positive
from .models import Squares
from .objective import Objective
from .flow import BLOWUP, Flow, flow as _flow

@dataclass(frozen=True, eq=False)
class Steps:
    """Discrete steps `theta <- theta - eta D(theta)`, on the time axis `t = eta k`.

    eta : float or ndarray, shape (B,)
        Step size per run, `> 0`.
    max_steps : int
        Cap on the number of steps.
    """

    eta: float = 0.01
    max_steps: int = 100_000

    def __post_init__(self):
        _alg._hyper(self, "eta", self.eta, positive)
        if not isinstance(self.max_steps, (int, np.integer)) or self.max_steps < 1:
            raise InputError(f"`max_steps` must be an integer >= 1; got {self.max_steps!r}")


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
    G = objective.grad(theta)
    beta = objective.model.beta(theta)
    p = objective.problem
    return Observables(
        beta=beta,
        train_loss=G.loss,
        test_loss=None if p.X_test is None else p.loss(beta, test=True),
        grad_norm=np.sqrt(np.einsum("bkd,bkd->b", G.theta, G.theta)),
        alpha_eff=objective.model.alpha_eff(theta),
    )


@dataclass(frozen=True, eq=False)
class Result:
    """The outcome of a batch of runs; row `b` is run `b`.

    t : ndarray, shape (B, S)
        Save times (for discrete runs `eta k` at the step nearest each requested time).
    saved : Observables
        At the save times, shapes (B, S, ...). After a run stops, its later
        saves repeat its final state (converged or capped) or are NaN (diverged,
        collapsed, stalled).
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
        `converged` (loss below `loss_tol`), `max_time`, `max_steps`, `diverged`,
        `collapsed` (`u, v -> 0` without fitting the data) or `stalled` (the
        adaptive step fell to round-off: a discontinuous field).
    message : ndarray of str, shape (B,)
        What happened, and for a failure what to change.
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

    def __len__(self):
        return self.theta.shape[0]

    @property
    def ok(self):
        """Runs that ended normally (converged or reached a cap), shape (B,)."""
        return np.isin(self.status, ("converged", "max_time", "max_steps"))


class _Recorder:
    """Output buffers of a batch: saves, final states, counters, statuses."""

    def __init__(self, objective, B, save_at, t_saved):
        d = objective.problem.d
        S = save_at.size
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

    def save(self, objective, rows, theta, upto=None):
        """Record `theta` (the states of global runs `rows`) at each run's next save slot,
        or at every slot below `upto` (an array of slot indices) to fill a stopped run."""
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

    def result(self, objective):
        ok = np.isfinite(self.theta).all(axis=(1, 2))
        final = observe(objective, np.where(ok[:, None, None], self.theta, 1.0))
        nan = lambda a: None if a is None else np.where(  # noqa: E731
            ok.reshape((-1,) + (1,) * (a.ndim - 1)), a, np.nan)
        final = Observables(*(nan(getattr(final, f)) for f in Observables.__dataclass_fields__))
        return Result(self.t, Observables(**self.saved), final, self.theta, self.t_final, self.steps,
                      self.grad_evals, self.status.astype(str), self.message.astype(str))


def _stable_eta(objective, algorithm, theta, iters=60):
    """`2 / lambda_max` per run, `lambda_max` the largest eigenvalue (by power iteration) of the
    Jacobian of the update direction `D` at `theta`: the step size above which the iteration
    `theta <- theta - eta D(theta)` is unstable there. For GD it is the Hessian `H`; for GR it is
    `H + gamma H^2 + ...`, whose limit is much smaller. Jacobian-vector products by central differences
    of `algorithm.direction` (3 significant digits are all the message needs)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(theta.shape)
    lam = np.zeros(theta.shape[0])
    h = 1e-6 * np.maximum(1.0, np.abs(theta).max(axis=(1, 2)))[:, None, None]
    for _ in range(iters):
        w /= np.sqrt(np.einsum("bkd,bkd->b", w, w))[:, None, None]
        Jw = algorithm.direction(theta + h * w, objective)[0]
        Jw -= algorithm.direction(theta - h * w, objective)[0]
        Jw /= 2 * h
        lam = np.einsum("bkd,bkd->b", w, Jw)
        w = Jw
    return 2 / np.abs(lam)


def _steps(objective, algorithm, theta0, integ, save_at, tol, rec):
    B = theta0.shape[0]
    eta = np.broadcast_to(np.asarray(integ.eta, float), (B,))
    with np.errstate(over="ignore", invalid="ignore"):
        save_steps = np.rint(save_at[None, :] / eta[:, None]).astype(np.int64) if save_at.size \
            else np.zeros((B, 0), np.int64)
    rec.t[:] = save_steps * eta[:, None]
    idx = np.arange(B)
    theta = theta0.copy()
    obj, alg, e = objective, algorithm, eta[:, None, None]
    L0 = objective.loss(theta0)
    evals = _alg.evals_per_run(algorithm, B)
    step = None
    for k in range(integ.max_steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            D, L = alg.direction(theta, obj)
        while rec.S:
            p = rec.ptr[idx]
            due = p < rec.S
            due[due] = save_steps[idx[due], p[due]] == k
            if not due.any():
                break
            rec.save(obj.take(due.nonzero()[0]), idx[due], theta[due])
        # L is finite exactly when theta is (a non-finite D shows in the next step's L), so
        # one check on (B,) replaces a pass over D
        bad = ~np.isfinite(L) | (L > BLOWUP * L0[idx])
        conv = ~bad & (L <= tol[idx])
        cap = ~bad & ~conv & (k == integ.max_steps)
        stop = bad | conv | cap
        if stop.any():
            rec.steps[idx[stop]] = k
            rec.grad_evals[idx[stop]] = k * evals[idx[stop]] + 1  # the last direction's gradient checked the loss
            for mask, status, fill in ((conv, "converged", True), (cap, "max_steps", True), (bad, "diverged", False)):
                if not mask.any():
                    continue
                rows = idx[mask]
                if status == "diverged":
                    lim = _stable_eta(objective.take(rows), _alg.take(algorithm, rows, B), theta0[rows])
                    msg = [f"diverged at step {k} (train loss {L[i]:.3g} > {BLOWUP:.0e} x initial); "
                           f"`eta` = {eta[r]:.3g} is too large: try eta < {lm:.3g} (2 / largest eigenvalue "
                           "of the update's Jacobian at initialization)" for i, r, lm in zip(mask.nonzero()[0], rows, lim)]
                    th = np.where(np.isfinite(theta[mask]), theta[mask], np.nan)
                else:
                    msg = (f"loss {L[mask][0]:.3g} below tolerance after {k} steps" if status == "converged"
                           else f"reached max_steps = {k} with loss above tolerance")
                    th = theta[mask]
                rec.finish(obj.take(mask.nonzero()[0]), rows, th, k * eta[rows], status, msg, fill)
            keep = ~stop
            idx, theta, D = idx[keep], theta[keep], D[keep]
            if not idx.size:
                break
            obj = objective.take(idx)
            alg = _alg.take(algorithm, idx, B)
            e = eta[idx][:, None, None]
        step = np.multiply(e, D, out=step if step is not None and step.shape == D.shape else None)
        theta -= step  # `step` is reused across steps: no new (B, 2, d) temporary


def run(problem, algorithm=None, integrator=None, *, model=None, alpha=1.0, theta0=None, save_at=(),
        loss_tol=1e-14, relative=True):
    """Train a diagonal linear network: a batch of runs, one vectorized computation.

    Parameters
    ----------
    problem : Problem
        `P` stacked problems; `P = 1` serves every run, else run `b` uses problem `b`.
    algorithm : GR, FGR, Flooding, ...
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

    Returns
    -------
    Result
        Row `b` equals the single run with the `b`-th hyperparameters.
    """
    algorithm = _alg.GD() if algorithm is None else algorithm
    integrator = Flow() if integrator is None else integrator
    model = Squares() if model is None else model
    if not hasattr(algorithm, "direction"):
        raise InputError(f"`algorithm` must be an algorithm object such as GD() or FGR(gamma, eps); got {algorithm!r}")
    if not isinstance(integrator, (Flow, Steps)):
        raise InputError(f"`integrator` must be Flow(...) or Steps(eta); got {integrator!r}")
    d = problem.d
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
    for name, v in _alg.hyperparameters(algorithm).items():
        sizes[name] = v.size
    if isinstance(integrator, Steps):
        sizes["eta"] = np.size(integrator.eta)
    B = batch_size(sizes)
    theta = model.init(a, d) if theta0 is None else th
    theta = np.ascontiguousarray(np.broadcast_to(theta, (B, 2, d)), dtype=float)
    save_at = finite_array(save_at, "save_at", ndim=(0, 1)).reshape(-1)
    if np.any(save_at < 0) or np.any(np.diff(save_at) < 0):
        raise InputError("`save_at` must be non-negative times in increasing order")
    if isinstance(integrator, Flow) and np.isfinite(integrator.max_time):
        save_at = save_at[save_at <= integrator.max_time]
    tol = positive(loss_tol, "loss_tol", allow_zero=True)
    if tol.ndim:
        raise InputError(f"`loss_tol` must be a scalar; got shape {tol.shape}")
    if tol == 0 and isinstance(integrator, Flow) and not np.isfinite(integrator.max_time):
        raise InputError("`loss_tol` = 0 runs to the cap, so the flow needs a finite `max_time`")
    objective = Objective(problem, model)
    with np.errstate(over="ignore", invalid="ignore"):
        L0 = objective.loss(theta)
    tol = tol * L0 if relative else np.full(B, float(tol))
    rec = _Recorder(objective, B, save_at, np.zeros((B, save_at.size)))
    (_flow if isinstance(integrator, Flow) else _steps)(objective, algorithm, theta, integrator, save_at, tol, rec)
    return rec.result(objective)
