"""Continuous time: the flow `theta' = -D(theta)` with a step size per run."""
from dataclasses import dataclass

import numpy as np
from scipy.integrate import RK45

from . import algorithms as _alg
from ._checks import InputError

#: a run whose loss exceeds this multiple of its initial loss has diverged
BLOWUP = 1e12


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


def flow(objective, algorithm, theta0, integ, save_at, tol, rec):
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


