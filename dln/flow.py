"""Continuous time: the flow `theta' = -D(theta)`, stiffly accurate, a step size per run.

Gradient flow on a diagonal network is stiff in the rich regime: coordinates
that must die out do so at a rate proportional to their own size, so the loss
decays like a power of `t` while the learned coordinates relax on a time scale
of order one. An explicit solver then needs ~1e7 steps; this one takes steps
that grow with `t`.

Method: the Rosenbrock-W method ROS34PW2 (Rang & Angermann 2005; 4 stages,
order 3, embedded order 2, L-stable, and of order 3 for any matrix `W`, so an
approximate Jacobian costs no accuracy). `W` is the Gauss-Newton Jacobian of
gradient flow, `J ~ -P (X^T X / n) Q` with per-coordinate `P = T J_beta^T`,
`Q = J_beta T^{-1}` (`T` the change to the integration coordinates), so
`(I - h gamma J)^{-1}` is applied by the Woodbury identity through one n x n
system per run and step.
"""
from dataclasses import replace

import numpy as np

from ._checks import InputError
from ._hyper import Declared, Hyper
from .integrate import MAX_STEPS, MAX_TIME, Move


class Flow(Declared):
    """The flow `theta' = -D(theta)`, integrated by a stiff Rosenbrock-W method (see module doc).

    Positive models are integrated in the mirror coordinates `m = log(u v)/2 =
    log alpha_eff`, `z = log(u/v)`, in which `beta = 2 e^{2m} sinh z` for the
    squares model and gradient flow is `m' = 0, z' = -4 g`; this keeps `alpha`
    from 1e-8 to 1e3 accurate. A step is accepted when its local error is at
    most `atol + rtol max|beta|` in `beta` and `rtol` in `log theta` (mirror) or
    `atol + rtol max|theta|` (plain coordinates, the product model).

    rtol, atol : float
        Local error tolerances, `0 < rtol < 1`, `0 < atol < 1`.
    max_time : float
        Time cap (`inf` for none; then `loss_tol` must be positive).
    max_steps : int
        Cap on accepted steps per run.
    """

    hyper = (Hyper("rtol", "relative local error tolerance", lo=0, hi=1, lo_open=True, hi_open=True,
                   per_run=False, default=1e-8),
             Hyper("atol", "absolute local error tolerance", lo=0, hi=1, lo_open=True, hi_open=True,
                   per_run=False, default=1e-12),
             MAX_TIME, replace(MAX_STEPS, default=200_000))

    #: the driver tests for collapse every `check_every` steps
    check_every = 1

    def save_times(self, save_at, B):
        return np.broadcast_to(save_at, (B, save_at.size)).copy()

    def start_evals(self, algorithm, B):
        return np.broadcast_to(np.asarray(algorithm.grad_evals(), np.int64), (B,)).copy()

    def hint(self, objective, algorithm, theta0, rows, B):
        return [""] * len(rows)

    def next_passes(self, carry, max_time):
        return np.zeros(carry["t"].shape, bool)

    def start(self, objective, algorithm, at, state):
        cs = _Mirror if objective.model.positive else _Plain
        B = at.theta.shape[0]
        w = cs.to_w(at.theta)
        F, _ = _rate(cs, algorithm, at, state)
        if cs is _Plain:
            scale = np.abs(F).max(axis=(1, 2)) / np.maximum(np.abs(w).max(axis=(1, 2)), 1e-300)
        else:
            scale = np.abs(F).max(axis=(1, 2))
        h = np.minimum(1e-3 / np.maximum(scale, 1e-300), self.max_time)
        return {"at": at, "state": state, "t": np.zeros(B), "steps": np.zeros(B, np.int64), "w": w, "F": F,
                "h": h, "m0": w[:, 0].copy()}

    def advance(self, objective, algorithm, carry, k):
        """One attempted ROS34PW2 step per live run, accepted where its local error is within tolerance."""
        model = objective.model
        cs = _Mirror if model.positive else _Plain
        rtol, atol = self.rtol, self.atol
        at, state, w, F0, h, t = carry["at"], carry["state"], carry["w"], carry["F"], carry["h"], carry["t"]
        th = at.theta
        J = model.jac(th)
        B = th.shape[0]
        gam = np.broadcast_to(np.asarray(algorithm.stiffness(), float), (B,))
        W = _W(objective.problem, cs.rate(th, J), cs.beta_map(th, J), h * _GAMMA, gam)
        hh = h[:, None, None]
        U = []
        for i in range(4):
            if i == 0:
                Fi = F0
            else:
                wi = w + sum(_A[i, j] * U[j] for j in range(i))
                Fi = _rate(cs, algorithm, objective.at(cs.theta(wi)), state)[0]
            rhs = Fi + sum((_C[i, j] / hh) * U[j] for j in range(i))
            U.append(hh * _GAMMA * W.solve(rhs))
        w_new = w + sum(_M[i] * U[i] for i in range(4))
        dw = sum(_E[i] * U[i] for i in range(4))
        at_new = objective.at(cs.theta(w_new))
        F_new, _ = _rate(cs, algorithm, at_new, state)
        th_new = at_new.theta
        beta_old, beta_new = at.beta, at_new.beta
        dbeta = np.einsum("bkd,bkd->bd", cs.beta_map(th_new, model.jac(th_new)), dw)
        bscale = atol + rtol * np.maximum(np.abs(beta_old).max(axis=1), np.abs(beta_new).max(axis=1))
        err = np.maximum(np.abs(dbeta).max(axis=1) / bscale, cs.w_error(w, w_new, dw, rtol, atol))
        err = np.where(np.isfinite(err) & np.isfinite(at_new.loss), err, np.inf)
        ok = err <= 1
        t_new = t + h
        w_prev, F_prev, t_prev, h_prev = w, F0, t, h

        def dense(rows, tq):
            """Cubic Hermite interpolation in `w` within the accepted step."""
            sig = ((tq - t_prev[rows]) / h_prev[rows])[:, None, None]
            hd = h_prev[rows][:, None, None]
            h00, h10 = (1 + 2 * sig) * (1 - sig) ** 2, sig * (1 - sig) ** 2
            h01, h11 = sig * sig * (3 - 2 * sig), sig * sig * (sig - 1)
            return cs.theta(h00 * w_prev[rows] + h10 * hd * F_prev[rows] + h01 * w_new[rows] + h11 * hd * F_new[rows])

        okb = ok[:, None, None]
        w = np.where(okb, w_new, w)
        fac = np.clip(0.9 * np.where(err > 0, err, 1e-10) ** (-1 / 3), 0.2, 6.0)
        t = np.where(ok, t_new, t)
        h = h * np.where(ok, fac, np.minimum(fac, 0.5))
        h = np.minimum(h, self.max_time - t)
        new = {"at": at_new.where(ok, at), "state": state, "t": t, "steps": carry["steps"] + ok,
               "w": w, "F": np.where(okb, F_new, F0), "h": h, "m0": carry["m0"]}
        # a step that fell to round-off: a discontinuous field, or u, v collapsing to 0
        tiny = ~ok & ((t + h == t) | ~np.isfinite(h))
        failed = np.full(B, "", dtype=object)
        why = np.full(B, "", dtype=object)
        name = type(algorithm).__name__
        L = new["at"].loss
        if cs is _Mirror:
            drop = np.min(w[:, 0] - carry["m0"], axis=1)
            collapsed = (drop < -np.log(1e6)) & tiny | (np.min(w[:, 0], axis=1) < -345)
        else:
            collapsed = np.zeros(B, bool)
        for i in np.flatnonzero(collapsed):
            failed[i] = "collapsed"
            why[i] = (f"{name}: u, v driven to 0 at t = {t[i]:.6g} without fitting the data (loss {L[i]:.3g}, "
                      f"min alpha_eff {np.exp(w[i, 0].min()):.3g}): the ascent step is too large for this alpha")
        for i in np.flatnonzero(tiny & ~collapsed):
            failed[i] = "stalled"
            why[i] = (f"{name}: step size fell to round-off at t = {t[i]:.6g} (loss {L[i]:.3g}): the field is "
                      "discontinuous there (normalized SAM once the loss reaches 0) or the state overflows; "
                      "raise `loss_tol` or use `Steps`")
        evals = 4 * np.broadcast_to(np.asarray(algorithm.grad_evals(), np.int64), (B,))
        return new, Move(evals, ok, dense, failed, why)


def _rate(cs, algorithm, at, state):
    """`w'` at the point `at`: the integration coordinates' rate of `theta' = -D(theta)`."""
    D, state = algorithm.update(at, state, 0)
    return cs.rate(at.theta, -D), state


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
    def rate(theta, dtheta):
        """`w'` from `theta'`: `(m', z') = ((p_u + p_v)/2, p_u - p_v)`, `p = theta'/theta`."""
        p = dtheta / theta
        return np.stack([(p[:, 0] + p[:, 1]) / 2, p[:, 0] - p[:, 1]], axis=1)

    @staticmethod
    def dtheta(theta, dw):
        """`theta` change from a `w` change: `du = u (dm + dz/2)`, `dv = v (dm - dz/2)`."""
        dm, dz = dw[:, 0], dw[:, 1]
        return theta * np.stack([dm + dz / 2, dm - dz / 2], axis=1)

    @staticmethod
    def beta_map(theta, J):
        """`Q = J T^{-1}` per coordinate, so that `dbeta = Q . dw`: `(f_u u + f_v v, (f_u u - f_v v)/2)`."""
        fu, fv = J[:, 0] * theta[:, 0], J[:, 1] * theta[:, 1]
        return np.stack([fu + fv, (fu - fv) / 2], axis=1)

    @staticmethod
    def w_error(w_old, w_new, dw, rtol, atol):
        """Error in `log theta` against `rtol`."""
        return np.abs(dw).max(axis=(1, 2)) / rtol


class _Plain:
    """Plain coordinates `w = theta`."""

    to_w = theta = staticmethod(lambda x: x)
    rate = staticmethod(lambda theta, dtheta: dtheta)
    dtheta = staticmethod(lambda theta, dw: dw)
    beta_map = staticmethod(lambda theta, J: J)

    @staticmethod
    def w_error(w_old, w_new, dw, rtol, atol):
        scale = atol + rtol * np.maximum(np.abs(w_old).max(axis=(1, 2)), np.abs(w_new).max(axis=(1, 2)))
        return np.abs(dw).max(axis=(1, 2)) / scale


def _ros34pw2():
    """ROS34PW2 in the transformed form (Hairer & Wanner IV.7):
    `(I/(h g) - J) U_i = f(y + sum_j A_ij U_j) + sum_j C_ij U_j / h`, `y+ = y + sum_i M_i U_i`,
    error `sum_i (M_i - Mhat_i) U_i`, from the standard-form coefficients alpha, Gamma, b, bhat."""
    g = 0.435866521508459
    alpha = np.zeros((4, 4))
    alpha[1, 0] = 0.87173304301691801
    alpha[2, :2] = 0.84457060015369423, -0.11299064236484185
    alpha[3, :3] = 0.0, 0.0, 1.0
    Gam = np.diag([g] * 4)
    Gam[1, 0] = -0.87173304301691801
    Gam[2, :2] = -0.90338057013044082, 0.054180672388095326
    Gam[3, :3] = 0.24212380706095346, -1.2232505839045147, 0.54526025533510214
    b = np.array([0.24212380706095346, -1.2232505839045147, 1.5452602553351020, 0.435866521508459])
    bhat = np.array([0.37810903145819369, -0.096042292212423178, 0.5, 0.2179332607542295])
    Gi = np.linalg.inv(Gam)
    return g, alpha @ Gi, np.diag(1 / np.diag(Gam)) - Gi, b @ Gi, (b - bhat) @ Gi


_GAMMA, _A, _C, _M, _E = _ros34pw2()


class _W:
    """`(I - c J)^{-1}` for the Gauss-Newton Jacobian of gradient regularization (per run).

    With `penalty (gamma/2) ||grad L||^2`, `D ~ J^T (A + gamma A S A) beta + ...`,
    `A = X^T X / n`, `S = diag(s)`, `s = Q . P` per coordinate, so in the integration
    coordinates `J ~ -P X^T (I + gamma K) X Q / n` with `K = X S X^T / n`
    (gradient flow: `gamma = 0`). Woodbury:
    `(I - cJ)^{-1} r = r - c P X^T N^{-1} (I + gamma K) X (Q . r) / n`,
    `N = I + c (K + gamma K^2)`: one n x n inverse per run and step. (A lagged
    `K` keeps a W-method's order but, tried here, its error estimate in the slow
    rich-regime tail grew and the runs took 30x more steps.)
    """

    def __init__(self, problem, P, Q, c, gamma):
        s = np.einsum("bkd,bkd->bd", Q, P)
        X, n = problem.X, problem.n
        if problem.P == 1:
            K = np.matmul(X[0] * s[:, None, :], X[0].T)
        else:
            K = np.matmul(X * s[:, None, :], np.swapaxes(X, 1, 2))
        K /= n
        eye = np.eye(n)
        G = eye + gamma[:, None, None] * K  # I + gamma K
        N = eye + c[:, None, None] * np.matmul(K, G)
        self.problem, self.P, self.Q, self.c = problem, P, Q, c[:, None, None]
        self.NinvG = np.matmul(np.linalg.inv(N), G)

    def solve(self, r):
        p = self.problem
        y = np.einsum("bij,bj->bi", self.NinvG, p.apply(np.einsum("bkd,bkd->bd", self.Q, r)))
        return r - self.c * self.P * p.XT(y)[:, None, :]  # X^T y / n = XT(y)
