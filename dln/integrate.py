"""One entry point, `run(problem, algorithm, integrator, ...)`, and one result type.

What is solved (`Objective` + algorithm), how it is stepped (`Steps` or
`Flow`) and what is recorded (`save_at` times, observables) are separate. A
batch of runs is one vectorized computation: runs share the data layout,
each has its own hyperparameters, time, step size and status, and runs that
stop leave the batch.
"""
from dataclasses import dataclass

import numpy as np
from scipy.integrate import RK45

from . import algorithms as _alg
from ._checks import InputError, batch_size, finite_array, positive
from .models import Squares
from .objective import Objective

#: a run whose loss exceeds this multiple of its initial loss has diverged
BLOWUP = 1e12


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
class Flow:
    """The flow `theta' = -D(theta)` by the adaptive Dormand-Prince 5(4) method.

    Every run has its own step size. Positive models are integrated in the
    mirror coordinates `m = log(u v)/2 = log alpha_eff`, `z = log(u/v)`, in
    which `beta = 2 e^{2m} sinh z` for the squares model and gradient flow is
    `m' = 0, z' = -4 g`; this keeps `alpha` from 1e-8 to 1e3 accurate. A step
    is accepted when its local error is below `atol + rtol max|beta|` in
    `beta` and below `rtol` in `log theta` (mirror) or `atol + rtol max|theta|`
    (plain coordinates).

    rtol, atol : float
        Local error tolerances, `0 < rtol < 1`, `atol > 0`.
    max_time : float
        Time cap (`inf` for none; then `loss_tol` must be positive).
    max_steps : int
        Cap on accepted steps per run.
    """

    rtol: float = 1e-10
    atol: float = 1e-13
    max_time: float = np.inf
    max_steps: int = 200_000

    def __post_init__(self):
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating)) and 0 < v < 1):
                raise InputError(f"`{name}` must satisfy 0 < {name} < 1; got {v!r}")
        if not (isinstance(self.max_time, (int, float, np.floating)) and self.max_time > 0):
            raise InputError(f"`max_time` must be > 0 (inf for no cap); got {self.max_time!r}")
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


def _stable_eta(objective, theta, iters=60):
    """`2 / lambda_max(H(theta))` per run by power iteration: the step size above which
    gradient descent is unstable at `theta`."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(theta.shape)
    lam = np.zeros(theta.shape[0])
    for _ in range(iters):
        w /= np.sqrt(np.einsum("bkd,bkd->b", w, w))[:, None, None]
        Hw = objective.hvp(theta, w)
        lam = np.einsum("bkd,bkd->b", w, Hw)
        w = Hw
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
    evals = algorithm.grad_evals
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
        finite = np.isfinite(L) & np.isfinite(D).all(axis=(1, 2))
        bad = ~finite | (L > BLOWUP * L0[idx])
        conv = ~bad & (L <= tol[idx])
        cap = ~bad & ~conv & (k == integ.max_steps)
        stop = bad | conv | cap
        if stop.any():
            rec.steps[idx[stop]] = k
            rec.grad_evals[idx[stop]] = k * evals + 1  # the last direction's gradient checked the loss
            for mask, status, fill in ((conv, "converged", True), (cap, "max_steps", True), (bad, "diverged", False)):
                if not mask.any():
                    continue
                rows = idx[mask]
                if status == "diverged":
                    lim = _stable_eta(objective.take(rows), theta0[rows])
                    msg = [f"diverged at step {k} (train loss {L[i]:.3g} > {BLOWUP:.0e} x initial); "
                           f"`eta` = {eta[r]:.3g} is too large: try eta < {lm:.3g} (2 / largest Hessian "
                           "eigenvalue at initialization)" for i, r, lm in zip(mask.nonzero()[0], rows, lim)]
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
        theta -= e * D


class _Mirror:
    """Coordinates `w = (m, z) = (log(u v)/2, log(u/v))` of positive parameters."""

    @staticmethod
    def to_w(theta):
        lu, lv = np.log(theta[:, 0]), np.log(theta[:, 1])
        return np.stack([(lu + lv) / 2, lu - lv], axis=1)

    @staticmethod
    def theta(w):
        m, z = w[:, 0], w[:, 1]
        return np.exp(np.stack([m + z / 2, m - z / 2], axis=1))

    @staticmethod
    def rate(theta, D):
        """`(m', z') = ((p_u + p_v)/2, p_u - p_v)` with `p = theta'/theta = -D/theta`."""
        p = -D / theta
        return np.stack([(p[:, 0] + p[:, 1]) / 2, p[:, 0] - p[:, 1]], axis=1)

    @staticmethod
    def dtheta(theta, dw):
        dm, dz = dw[:, 0], dw[:, 1]
        return theta * np.stack([dm + dz / 2, dm - dz / 2], axis=1)

    @staticmethod
    def w_error(w_old, w_new, dw, rtol, atol):
        """Error in `log theta` against `rtol`."""
        return np.abs(dw).max(axis=(1, 2)) / rtol


class _Plain:
    """Plain coordinates `w = theta`."""

    to_w = theta = staticmethod(lambda x: x)
    rate = staticmethod(lambda theta, D: -D)
    dtheta = staticmethod(lambda theta, dw: dw)

    @staticmethod
    def w_error(w_old, w_new, dw, rtol, atol):
        scale = atol + rtol * np.maximum(np.abs(w_old).max(axis=(1, 2)), np.abs(w_new).max(axis=(1, 2)))
        return np.abs(dw).max(axis=(1, 2)) / scale


_A, _B, _C, _E, _P = RK45.A, RK45.B, RK45.C, RK45.E, RK45.P


def _flow(objective, algorithm, theta0, integ, save_at, tol, rec):
    if getattr(algorithm, "discrete_only", False):
        raise InputError(f"`algorithm` {type(algorithm).__name__} is defined for discrete steps only "
                         "(its direction jumps); use `Steps(eta)`")
    B = theta0.shape[0]
    model = objective.model
    cs = _Mirror if model.positive else _Plain
    rec.t[:] = save_at[None, :]
    L0 = objective.loss(theta0)
    idx = np.arange(B)
    obj, alg = objective, algorithm
    evals = algorithm.grad_evals
    rtol, atol = integ.rtol, integ.atol

    def f(w, o, a):
        th = cs.theta(w)
        D, L = a.direction(th, o)
        return cs.rate(th, D), L, th

    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        w = cs.to_w(theta0)
        K0, L, th = f(w, obj, alg)
        t = np.zeros(B)
        scale = np.abs(K0).max(axis=(1, 2)) / np.maximum(np.abs(w).max(axis=(1, 2)), 1e-300) \
            if cs is _Plain else np.abs(K0).max(axis=(1, 2))
        h = np.minimum(1e-3 / np.maximum(scale, 1e-300), integ.max_time)
        accepted = np.zeros(B, np.int64)
        calls = np.ones(B, np.int64)
        K = np.empty((7,) + w.shape)
        while idx.size:
            K = K[:, :idx.size]
            K[0] = K0
            hh = h[:, None, None]
            for s in range(1, 6):
                dy = np.tensordot(_A[s, :s], K[:s], axes=(0, 0)) * hh
                K[s] = f(w + dy, obj, alg)[0]
            w_new = w + hh * np.tensordot(_B, K[:6], axes=(0, 0))
            K[6], L_new, th_new = f(w_new, obj, alg)
            calls[idx] += 6
            dw = hh * np.tensordot(_E, K, axes=(0, 0))
            beta_old, beta_new = model.beta(th), model.beta(th_new)
            dbeta = np.einsum("bkd,bkd->bd", model.jac(th_new), cs.dtheta(th_new, dw))
            bscale = atol + rtol * np.maximum(np.abs(beta_old).max(axis=1), np.abs(beta_new).max(axis=1))
            err = np.maximum(np.abs(dbeta).max(axis=1) / bscale, cs.w_error(w, w_new, dw, rtol, atol))
            err = np.where(np.isfinite(err) & np.isfinite(L_new), err, np.inf)
            ok = err <= 1
            t_new = t + h
            # dense output for the save times passed by accepted steps
            Q = np.tensordot(_P.T, K, axes=(1, 0))  # (4, b, 2, d)
            while rec.S:
                p = rec.ptr[idx]
                due = ok & (p < rec.S)
                due[due] = save_at[p[due]] <= t_new[due]
                if not due.any():
                    break
                sig = (save_at[p[due]] - t[due]) / h[due]
                pw = np.cumprod(np.repeat(sig[None, :], 4, axis=0), axis=0)[:, :, None, None]
                wi = w[due] + h[due][:, None, None] * (Q[:, due] * pw).sum(axis=0)
                rec.save(obj.take(due.nonzero()[0]), idx[due], cs.theta(wi))
            # accept
            w = np.where(ok[:, None, None], w_new, w)
            th = np.where(ok[:, None, None], th_new, th)
            K0 = np.where(ok[:, None, None], K[6], K[0])
            L = np.where(ok, L_new, L)
            t = np.where(ok, t_new, t)
            accepted[idx] += ok
            fac = np.clip(0.9 * np.where(err > 0, err, 1e-10) ** -0.2, 0.2, 10.0)
            h = h * np.where(ok, fac, np.minimum(fac, 0.5))
            h = np.minimum(h, integ.max_time - t)
            # stop conditions
            tiny = ~ok & (t + h == t)
            blow = ok & (L > BLOWUP * L0[idx])
            conv = ok & ~blow & (L <= tol[idx])
            collapsed = ok & ~conv & ~blow & (model.positive and True) & \
                (np.min(w[:, 0] - np.abs(w[:, 1]) / 2, axis=1) < -690 if cs is _Mirror else False)
            tcap = ok & ~conv & ~blow & ~collapsed & (t >= integ.max_time)
            scap = ~conv & ~blow & ~collapsed & ~tcap & (accepted[idx] >= integ.max_steps)
            stop = tiny | blow | conv | collapsed | tcap | scap
            if not stop.any():
                continue
            rec.steps[idx[stop]] = accepted[idx[stop]]
            rec.grad_evals[idx[stop]] = calls[idx[stop]] * evals
            for mask, status, fill, msg in (
                (conv, "converged", True, lambda i: f"loss {L[i]:.3g} below tolerance at t = {t[i]:.6g}"),
                (tcap, "max_time", True, lambda i: f"reached max_time = {t[i]:.6g} with loss {L[i]:.3g}"),
                (scap, "max_steps", True, lambda i: f"reached max_steps = {integ.max_steps} at t = {t[i]:.6g} "
                                                    f"with loss {L[i]:.3g}; raise `max_steps` or `max_time`"),
                (blow, "diverged", False, lambda i: f"diverged at t = {t[i]:.6g} (train loss {L[i]:.3g} > "
                                                    f"{BLOWUP:.0e} x initial)"),
                (collapsed, "collapsed", False, lambda i: f"u, v driven to 0 at t = {t[i]:.6g} without fitting "
                                                          f"the data (loss {L[i]:.3g}); the ascent step is too "
                                                          "large for this alpha"),
                (tiny, "stalled", False, lambda i: f"step size fell to round-off at t = {t[i]:.6g} (loss "
                                                   f"{L[i]:.3g}): the field is discontinuous there (normalized "
                                                   "SAM once the loss reaches 0) or too stiff; lower `loss_tol`'s "
                                                   "reach or use `Steps`")):
                if mask.any():
                    sel = mask.nonzero()[0]
                    rec.finish(obj.take(sel), idx[sel], th[sel], t[sel], status, [msg(i) for i in sel], fill)
            keep = ~stop
            idx, w, th, K0, L, t, h = idx[keep], w[keep], th[keep], K0[keep], L[keep], t[keep], h[keep]
            if idx.size:
                obj = objective.take(idx)
                alg = _alg.take(algorithm, idx, B)


def _alpha_batch(alpha, d):
    a = positive(alpha, "alpha")
    if a.ndim > 2 or (a.ndim == 2 and a.shape[1] != d):
        raise InputError(f"`alpha` must be a scalar, shape (B,) (one per run) or shape (B, d) / (1, d) "
                         f"(per coordinate, d = {d}); got shape {a.shape}")
    return a.reshape(-1) if a.ndim < 2 else a


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
        a = _alpha_batch(alpha, d)
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
