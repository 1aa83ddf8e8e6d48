"""Continuous time: the flow `theta' = -D(theta)`, stiffly stable, a step size per run.

Gradient flow on a diagonal network is stiff in the rich regime: coordinates
that must die out do so at a rate proportional to their own size, so the loss
decays like a power of `t` while the learned coordinates relax on a time scale
of order one. An explicit solver then needs ~1e7 steps; this one takes steps
that grow with `t`.

Coordinates. For the GR family (`algorithm.mirror`) on the squares model,
`z = log(u/v)` stays in `z0 + row span(X)`: `z = z0 + X^T nu`. With full-row-rank
`X` the state is then `y = (nu, m)`, `m = log(u v)/2 = log alpha_eff` (n + d
numbers), and only `nu` (n numbers) where `algorithm.drift_free()` (`m' = 0`):
`nu' = (X X^T)^{-1} X z'` is recovered from any algorithm's direction. Gradient
flow is then `nu' = -(4/n) r`, a gradient flow of the convex dual of the
implicit-bias problem, with the exact n x n Jacobian
`-(4/n) X diag(u^2 + v^2) X^T`. Otherwise (other models, rank-deficient `X`) the
state is `w = (m, z)` (positive models) or `theta` (the product model).

Methods (Rosenbrock, transformed form; Hairer & Wanner IV.7). With the exact
Jacobian (gradient flow in `nu`): Shampine's order-4 method (4 stages, 3
evaluations, embedded order 3, A-stable with `R(inf) = 1/3`). Otherwise the
W-method ROS34PW2 (Rang & Angermann 2005; order 3 for any matrix, embedded
order 2, L-stable) with the Gauss-Newton matrix of gradient regularization
`J ~ -(K + gamma K^2)` in `nu` (Woodbury through an n x n system in `w`).
"""
from dataclasses import replace

import numpy as np

from ._hyper import Declared, Hyper
from .integrate import MAX_STEPS, MAX_TIME, Move
from .models import Depth

#: consecutive rejected steps after which a run is stalled (the step shrank by >= 5^40)
MAX_REJECTS = 40
#: accepted steps in a row that leave theta unchanged in floating point after which a run is stalled
MAX_FROZEN = 100


class Flow(Declared):
    """The flow `theta' = -D(theta)`, integrated by a stiff Rosenbrock method (see module doc).

    A step is accepted when its local error is at most `atol + rtol max|beta|` in
    `beta` and `rtol` in `log u`, `log v` (as `z = log(u/v)` and `m = log alpha_eff`;
    positive models) or `atol + rtol max|theta|` in `theta` (product model).
    Positive models are integrated in logarithmic coordinates, so `alpha` from
    1e-60 to 1e3 is accurate. The global error of the saved `beta` measured
    against Radau at rtol 1e-12 is 0.07-0.33 rtol (tests/test_flow.py).
    A run stops with a status when it cannot go on: `diverged` (a direction
    that is not finite), `stalled` (at rest above the loss tolerance, `theta`
    frozen in floating point, or a step that falls to round-off or is rejected
    `MAX_REJECTS` times in a row) or `collapsed` (`alpha_eff -> 0`).

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

    #: the driver tests for collapse every `check_every` steps (the stepper tests `log alpha_eff` every step)
    check_every = 16

    def save_times(self, save_at, B):
        return np.broadcast_to(save_at, (B, save_at.size)).copy()

    def start_evals(self, algorithm, B):
        return np.broadcast_to(np.asarray(algorithm.grad_evals(), np.int64), (B,)).copy()

    def hint(self, objective, algorithm, theta0, rows, B):
        return [""] * len(rows)

    def next_passes(self, carry, max_time):
        return np.zeros(carry["t"].shape, bool)

    def start(self, objective, algorithm, at, state):
        cs = _coordinates(objective, algorithm, at.theta)
        B = at.theta.shape[0]
        y = cs.y0(at.theta)
        F = cs.rate(at.theta, algorithm.update(at, state, 0)[0])
        # the first step moves the logarithmic coordinates by 1e-3, and beta by at most 1e-3 of its
        # error scale over rtol (beta starts at 0 for u = v, where the first would be far too long at large alpha)
        bscale = self.atol + self.rtol * np.abs(at.beta).max(axis=1)
        speed = np.maximum(cs.speed(F, y), np.abs(cs.dbeta(at.theta, F)).max(axis=1) * self.rtol / bscale)
        h = 1e-3 / np.maximum(speed, 1e-300)
        h = np.where(np.isfinite(h), np.minimum(h, self.max_time), self.max_time)
        return {"at": at, "state": state, "t": np.zeros(B), "steps": np.zeros(B, np.int64), "y": y, "F": F,
                "h": h, "cs": cs, "rejects": np.zeros(B, np.int64), "frozen": np.zeros(B, np.int64)}

    def advance(self, objective, algorithm, carry, k):
        """One attempted Rosenbrock step per live run, accepted where its local error is within tolerance."""
        cs, at, state, y, F0, h, t = (carry[key] for key in ("cs", "at", "state", "y", "F", "h", "t"))
        tab = cs.tableau
        th = at.theta
        B = th.shape[0]
        W = cs.matrix(th, h * tab.gamma)
        hc = (1 / h)[:, None]
        U = []
        Fi = F0
        for i in range(4):
            if i and tab.fresh[i]:
                yi = y + sum(tab.A[i][j] * U[j] for j in range(i) if tab.A[i][j] is not None)
                Fi = cs.rate(*_direction(objective, algorithm, cs.theta(yi), state))
            rhs = Fi + sum((tab.C[i][j] * hc) * U[j] for j in range(i)) if i else Fi
            U.append(W(rhs))
        y_new = y + sum(tab.M[i] * U[i] for i in range(4))
        dy = sum(tab.E[i] * U[i] for i in range(4))
        th_new = cs.theta(y_new)
        at_new = objective.at(th_new)
        F_new = cs.rate(th_new, algorithm.update(at_new, state, 0)[0])
        bscale = self.atol + self.rtol * np.maximum(np.abs(at.beta).max(axis=1), np.abs(at_new.beta).max(axis=1))
        err = np.maximum(np.abs(cs.dbeta(th_new, dy)).max(axis=1) / bscale, cs.own_error(dy, y, y_new, self))
        err = np.where(np.isfinite(err) & np.isfinite(at_new.loss), err, np.inf)
        speed = np.abs(F0).max(axis=1)
        ok = (err <= 1) & (speed > 0)
        t_new = t + h
        y_prev, F_prev, t_prev, h_prev = y, F0, t, h

        def dense(rows, tq):
            """Cubic Hermite interpolation in `y` within the accepted step."""
            sig = ((tq - t_prev[rows]) / h_prev[rows])[:, None]
            hd = h_prev[rows][:, None]
            h00, h10 = (1 + 2 * sig) * (1 - sig) ** 2, sig * (1 - sig) ** 2
            h01, h11 = sig * sig * (3 - 2 * sig), sig * sig * (sig - 1)
            yq = h00 * y_prev[rows] + h10 * hd * F_prev[rows] + h01 * y_new[rows] + h11 * hd * F_new[rows]
            return cs.take(rows).theta(yq)

        fac = np.clip(0.9 * np.where(err > 0, err, 1e-10) ** tab.expo, 0.2, 6.0)
        moved = np.any(th_new != th, axis=(1, 2))
        if ok.all():  # the common case: no per-row selection
            at, y, F0, t = at_new, y_new, F_new, t_new
            rejects = np.zeros(B, np.int64)
            frozen = np.where(moved, 0, carry["frozen"] + 1)
        else:
            okb = ok[:, None]
            at, y, F0, t = at_new.where(ok, at), np.where(okb, y_new, y), np.where(okb, F_new, F0), np.where(ok, t_new, t)
            fac = np.where(ok, fac, np.minimum(fac, 0.5))
            rejects = np.where(ok, 0, carry["rejects"] + 1)
            frozen = np.where(ok & ~moved, carry["frozen"] + 1, np.where(ok, 0, carry["frozen"]))
        h = np.minimum(h * fac, self.max_time - t)
        new = {"at": at, "state": state, "t": t, "steps": carry["steps"] + ok,
               "y": y, "F": F0, "h": h, "cs": cs, "rejects": rejects, "frozen": frozen}
        failed, why = _failures(type(algorithm).__name__, cs, new, ok, speed)
        per = np.broadcast_to(np.asarray(algorithm.grad_evals(), np.int64), (B,))
        return new, Move(tab.evals * per, ok, dense, failed, why)


def _direction(objective, algorithm, theta, state):
    """`(theta, D(theta))` at a stage point (the state of the step's start: stateless flows)."""
    return theta, algorithm.update(objective.at(theta), state, 0)[0]


def _failures(name, cs, carry, ok, speed):
    """Statuses and messages of runs the stepper cannot continue: a direction that is not finite
    (`speed = max|y'|` at the step's start is NaN or inf) or zero (a stationary point above the loss
    tolerance: the flow stays there), a state frozen in floating point for `MAX_FROZEN` accepted
    steps, collapse of `alpha_eff`, a step fallen to round-off or NaN, or `MAX_REJECTS` rejections
    in a row (an overflowing state)."""
    t, h, L = carry["t"], carry["h"], carry["at"].loss
    B = t.shape[0]
    failed = np.full(B, "", dtype=object)
    why = np.full(B, "", dtype=object)
    m = cs.log_alpha(carry["y"]) if cs.drift else None
    if (ok.all() and np.all(speed > 0) and np.all(carry["frozen"] < MAX_FROZEN)
            and (m is None or m.min() >= -345)):  # the common case, in a few reductions
        return failed, why
    for i in np.flatnonzero(~np.isfinite(speed)):
        failed[i] = "diverged"
        why[i] = (f"{name}: the direction is not finite at t = {t[i]:.6g} (loss {L[i]:.3g}): the state or a "
                  "point the algorithm evaluates (theta + eps p) overflows; lower alpha, eps or rho")
    for i in np.flatnonzero(speed == 0):
        failed[i] = "stalled"
        why[i] = (f"{name}: the flow is at rest at t = {t[i]:.6g} (the direction is 0, loss {L[i]:.3g}): a "
                  "stationary point that does not fit the data, e.g. u = v = 0; change the initialization")
    for i in np.flatnonzero(carry["frozen"] >= MAX_FROZEN):
        failed[i] = "stalled"
        why[i] = (f"{name}: the state stopped changing in floating point at t = {t[i]:.6g} (loss {L[i]:.3g}; "
                  f"{MAX_FROZEN} accepted steps left theta unchanged): its changes are below the round-off of "
                  "u and v, as for alpha far above 1e3 in the lazy regime; use a smaller alpha")
    stuck = ~ok & ((t + h == t) | ~np.isfinite(h) | (carry["rejects"] >= MAX_REJECTS)) & (failed == "")
    if m is not None:
        drop = np.min(m - cs.m0, axis=1)
        collapsed = (drop < -np.log(1e6)) & stuck | (np.min(m, axis=1) < -345)
    else:
        collapsed = np.zeros(B, bool)
    for i in np.flatnonzero(collapsed):
        failed[i] = "collapsed"
        why[i] = (f"{name}: u, v driven to 0 at t = {t[i]:.6g} without fitting the data (loss {L[i]:.3g}, "
                  f"min alpha_eff {np.exp(m[i].min()):.3g}): its drift of log alpha_eff outweighs the fit at this "
                  f"alpha; lower {name}'s hyperparameters or raise alpha")
    for i in np.flatnonzero(stuck & ~collapsed):
        failed[i] = "stalled"
        why[i] = (f"{name}: the flow cannot advance at t = {t[i]:.6g} (loss {L[i]:.3g}, step size {h[i]:.3g}, "
                  f"{carry['rejects'][i]} rejected steps in a row): the field is discontinuous there (normalized "
                  "SAM once the loss reaches 0) or overflows; raise `loss_tol`, change alpha or the "
                  "hyperparameters, or use `Steps`")
    return failed, why


def _shampine():
    """Shampine's (1982) order-4 Rosenbrock method in transformed form: `(I/(h g) - J) U_i =
    f(y + sum_j A_ij U_j) + sum_j C_ij U_j / h`, `y+ = y + sum_i M_i U_i`, error `sum_i E_i U_i`
    (order 3); stage 4 evaluates at the point of stage 3."""
    A = np.zeros((4, 4))
    A[1, 0] = 2
    A[2, :2] = A[3, :2] = 48 / 25, 6 / 25
    C = np.zeros((4, 4))
    C[1, 0] = -8
    C[2, :2] = 372 / 25, 12 / 5
    C[3, :3] = -112 / 125, -54 / 125, -2 / 5
    M = np.array([19 / 9, 1 / 2, 25 / 108, 125 / 108])
    E = np.array([17 / 54, 7 / 36, 0, 125 / 108])
    return _method(0.5, A, C, M, E, 4)


def _ros34pw2():
    """ROS34PW2 in the transformed form, from the standard-form coefficients alpha, Gamma, b, bhat."""
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
    return _method(g, alpha @ Gi, np.diag(1 / np.diag(Gam)) - Gi, b @ Gi, (b - bhat) @ Gi, 3)


def _method(g, A, C, M, E, order):
    """`(gamma, A, C, M, E, evals, fresh, order)`: `fresh[i]`, stage `i` evaluates `f` at a new point;
    `evals`, evaluations per step (the new point's included); `order`, the error estimate's order plus one."""
    fresh = np.array([False] + [not np.array_equal(A[i], A[i - 1]) for i in range(1, len(M))])
    return g, A, C, M, E, 1 + int(fresh.sum()), fresh, order


#: the methods a run can use, indexed by `_Tableau.kind`
METHODS = (_ros34pw2(), _shampine())


class _Tableau:
    """Per-run coefficients of the methods `METHODS[kind]` (kind (B,) int), as (B, 1) columns
    (`A[i][j]` None where zero in every run), so that runs of one batch may use different methods."""

    def __init__(self, kind):
        self.kind = kind
        pick = lambda f: np.array([METHODS[k][f] for k in kind], float)  # noqa: E731
        self.gamma = pick(0)
        A, C, M, E = (np.array([METHODS[k][f] for k in kind], float) for f in (1, 2, 3, 4))
        self.A = [[A[:, i, j, None] if A[:, i, j].any() else None for j in range(4)] for i in range(4)]
        self.C = [[C[:, i, j, None] for j in range(4)] for i in range(4)]
        self.M, self.E = [M[:, i, None] for i in range(4)], [E[:, i, None] for i in range(4)]
        self.evals = pick(5).astype(np.int64)
        self.fresh = np.array([METHODS[k][6] for k in kind]).any(axis=0)
        self.expo = -1 / pick(7)

    def take(self, idx):
        return _Tableau(self.kind[idx])


def _coordinates(objective, algorithm, theta):
    """The integration coordinates of this batch (see the module doc), with each run's method:
    Shampine's order-4 method where the matrix is the exact Jacobian (gradient flow in `nu`:
    drift-free and no GR curvature), else ROS34PW2."""
    model, problem = objective.model, objective.problem
    B = theta.shape[0]
    stiff = np.broadcast_to(np.asarray(algorithm.stiffness(), float), (B,)).copy()
    kind = np.zeros(B, np.int64)
    if not model.positive:
        return _Plain(problem, model, stiff, _Tableau(kind))
    if algorithm.mirror and isinstance(model, Depth) and model.depth == 2:
        XXt = np.matmul(problem.X, np.swapaxes(problem.X, 1, 2))
        ev = np.linalg.eigvalsh(XXt)
        if np.all(ev[:, -1] > 0) and np.all(ev[:, 0] > 1e-10 * ev[:, -1]):
            free = np.broadcast_to(np.asarray(algorithm.drift_free(), bool), (B,))
            kind = (free & (stiff == 0)).astype(np.int64)
            return _Dual(problem, model, stiff, _Tableau(kind), np.linalg.solve(XXt, problem.X), theta, free)
    return _Mirror(problem, model, stiff, _Tableau(kind), theta)


class _Coordinates:
    """Integration coordinates `y` (B, N) of a batch: the map to `theta`, the rate, the step matrix,
    the error measures. Per-run attributes (names in `per_run`) are sliced by `take`."""

    per_run = ("stiff", "tableau")
    #: whether `m = log alpha_eff` is part of the state (so it may collapse)
    drift = False

    def take(self, idx):
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.problem = self.problem.take(idx)
        for name in self.per_run:
            v = getattr(self, name)
            setattr(out, name, v.take(idx) if isinstance(v, _Tableau) else v[idx])
        return out

    def log_alpha(self, y):
        """`log alpha_eff`, (B, d), or None for a model without it."""
        return None

    def speed(self, F, y):
        """The largest rate of the state's logarithmic coordinates: the first step is `1e-3` over it."""
        return np.abs(F).max(axis=1)


class _Dual(_Coordinates):
    """`y = nu` (every run drift-free) or `y = (nu, m)`: `z = z0 + X^T nu`, `m = log alpha_eff`.

    `G = (X X^T)^{-1} X` (per problem) maps `z'` to `nu'`. Per-run arrays: `z0`, `m0` (B, d) and the
    drift mask `keep_m` (B, 1) (0 where `drift_free()`).
    """

    per_run = _Coordinates.per_run + ("z0", "m0", "keep_m")

    def __init__(self, problem, model, stiff, tableau, G, theta, free):
        self.problem, self.model, self.stiff, self.tableau, self.G = problem, model, stiff, tableau, G
        lu, lv = np.log(theta[:, 0]), np.log(theta[:, 1])
        self.z0, self.m0 = lu - lv, (lu + lv) / 2
        self.keep_m = 1.0 - free[:, None]
        self.drift = not free.all()

    def take(self, idx):
        out = super().take(idx)
        if self.problem.P > 1:
            out.G = self.G[idx]
        return out

    def _XT(self, nu):
        """`X^T nu`, shape (B, d)."""
        X = self.problem.X
        return nu @ X[0] if X.shape[0] == 1 else np.matmul(nu[:, None, :], X)[:, 0]

    def y0(self, theta):
        nu = np.zeros((theta.shape[0], self.problem.n))
        return np.concatenate([nu, self.m0], axis=1) if self.drift else nu

    def _split(self, y):
        n = self.problem.n
        return (y[:, :n], y[:, n:]) if self.drift else (y, self.m0)

    def theta(self, y):
        """`(u, v) = exp(m +- z/2)`."""
        nu, m = self._split(y)
        half = self._XT(nu)
        half += self.z0
        half *= 0.5
        out = np.empty((half.shape[0], 2, half.shape[1]))
        np.add(m, half, out=out[:, 0])
        np.subtract(m, half, out=out[:, 1])
        return np.exp(out, out=out)

    def log_alpha(self, y):
        return self._split(y)[1]

    def rate(self, theta, D):
        """`y'` of `theta' = -D`: `z' = -(D_u/u - D_v/v)`, `nu' = G z'`, `m' = -(D_u/u + D_v/v)/2`."""
        p = D / theta
        zr = p[:, 1] - p[:, 0]
        G = self.G
        nu = zr @ G[0].T if G.shape[0] == 1 else np.matmul(G, zr[..., None])[..., 0]
        if not self.drift:
            return nu
        m = p[:, 0] + p[:, 1]
        m *= -0.5 * self.keep_m
        return np.concatenate([nu, m], axis=1)

    def speed(self, F, y):
        nu, m = self._split(F)
        s = np.abs(self._XT(nu)).max(axis=1)
        return np.maximum(s, np.abs(m).max(axis=1)) if self.drift else s

    def _Q(self, theta):
        """`d beta / d z` and `d beta / d m` per coordinate, (B, d) each, and the model's Jacobian."""
        J = self.model.jac(theta)
        fu, fv = J[:, 0] * theta[:, 0], J[:, 1] * theta[:, 1]
        return (fu - fv) / 2, fu + fv, J

    def matrix(self, theta, hg):
        """`r -> (I/(h g) - J)^{-1} r` with `J = -(K + gamma K^2)` on `nu`, `K = X diag(s) X^T / n`,
        `s = (d z'/d(-g)) (d beta/d z) = 4 (u^2 + v^2)` read from the model, and `J = 0` on `m`:
        the exact Jacobian of gradient flow, the Gauss-Newton one of GR."""
        X, n = self.problem.X, self.problem.n
        Qz, _, J = self._Q(theta)
        s = (J[:, 0] / theta[:, 0] - J[:, 1] / theta[:, 1]) * Qz / n
        B, d = s.shape
        if X.shape[0] == 1:  # one GEMM (B n, d) x (d, n) rather than B small ones
            K = ((X[0] * s[:, None, :]).reshape(B * n, d) @ X[0].T).reshape(B, n, n)
        else:
            K = np.matmul(X * s[:, None, :], np.swapaxes(X, 1, 2))
        N = K + np.eye(n) / hg[:, None, None]
        if np.any(self.stiff):
            N += self.stiff[:, None, None] * np.matmul(K, K)
        Ninv = np.linalg.inv(N)
        if not self.drift:
            return lambda r: np.matmul(Ninv, r[..., None])[..., 0]
        hgm = hg[:, None]
        return lambda r: np.concatenate([np.matmul(Ninv, r[:, :n, None])[..., 0], hgm * r[:, n:]], axis=1)

    def dbeta(self, theta, dy):
        nu, m = self._split(dy)
        Qz, Qm, _ = self._Q(theta)
        out = Qz * self._XT(nu)
        if self.drift:
            out += Qm * m
        return out

    def own_error(self, dy, y_old, y_new, flow):
        """Error in `log theta` against `rtol`: in `z = log(u/v)` (`X^T dnu`) and `m = log alpha_eff`.
        (Without the `z` part, errors in the exponents of still-small coordinates, invisible in `beta`,
        would shift the times at which they grow.)"""
        nu, m = self._split(dy)
        e = np.abs(self._XT(nu)).max(axis=1)
        if self.drift:
            e = np.maximum(e, np.abs(m).max(axis=1))
        return e / flow.rtol


class _Mirror(_Coordinates):
    """Coordinates `w = (m, z) = (log(u v)/2, log(u/v))` of positive parameters, flattened to (B, 2d)."""

    drift = True

    per_run = _Coordinates.per_run + ("m0",)

    def __init__(self, problem, model, stiff, tableau, theta):
        self.problem, self.model, self.stiff, self.tableau = problem, model, stiff, tableau
        self.m0 = self.log_alpha(self.y0(theta))

    @staticmethod
    def y0(theta):
        lu, lv = np.log(theta[:, 0]), np.log(theta[:, 1])
        return np.concatenate([(lu + lv) / 2, lu - lv], axis=1)

    def theta(self, y):
        d = self.problem.d
        m, z = y[:, :d], y[:, d:]
        return np.exp(np.stack([m + z / 2, m - z / 2], axis=1))

    def log_alpha(self, y):
        return y[:, :self.problem.d]

    @staticmethod
    def _w(theta, dtheta):
        """`w'` from `theta'`: `(m', z') = ((p_u + p_v)/2, p_u - p_v)`, `p = theta'/theta`."""
        p = dtheta / theta
        return np.concatenate([(p[:, 0] + p[:, 1]) / 2, p[:, 0] - p[:, 1]], axis=1)

    def rate(self, theta, D):
        return self._w(theta, -D)

    @staticmethod
    def _Q(theta, J):
        """`Q = d beta / d w` per coordinate: `(f_u u + f_v v, (f_u u - f_v v)/2)`, (B, 2d)."""
        fu, fv = J[:, 0] * theta[:, 0], J[:, 1] * theta[:, 1]
        return np.concatenate([fu + fv, (fu - fv) / 2], axis=1)

    def matrix(self, theta, hg):
        J = self.model.jac(theta)
        return _woodbury(self.problem, self._w(theta, J), self._Q(theta, J), hg, self.stiff)

    def dbeta(self, theta, dy):
        d = self.problem.d
        q = self._Q(theta, self.model.jac(theta)) * dy
        return q[:, :d] + q[:, d:]

    def own_error(self, dy, y_old, y_new, flow):
        """Error in `log theta` against `rtol`."""
        return np.abs(dy).max(axis=1) / flow.rtol


class _Plain(_Coordinates):
    """Plain coordinates `y = theta`, flattened to (B, 2d)."""

    def __init__(self, problem, model, stiff, tableau):
        self.problem, self.model, self.stiff, self.tableau = problem, model, stiff, tableau

    @staticmethod
    def y0(theta):
        return theta.reshape(theta.shape[0], -1).copy()

    def theta(self, y):
        return y.reshape(y.shape[0], 2, -1)

    def rate(self, theta, D):
        return -D.reshape(D.shape[0], -1)

    def speed(self, F, y):
        """Relative rate: `max|theta'| / max|theta|`."""
        return np.abs(F).max(axis=1) / np.maximum(np.abs(y).max(axis=1), 1e-300)

    def matrix(self, theta, hg):
        J = self.model.jac(theta).reshape(theta.shape[0], -1)
        return _woodbury(self.problem, J, J, hg, self.stiff)

    def dbeta(self, theta, dy):
        d = self.problem.d
        q = self.model.jac(theta).reshape(theta.shape[0], -1) * dy
        return q[:, :d] + q[:, d:]

    def own_error(self, dy, y_old, y_new, flow):
        scale = flow.atol + flow.rtol * np.maximum(np.abs(y_old).max(axis=1), np.abs(y_new).max(axis=1))
        return np.abs(dy).max(axis=1) / scale


def _woodbury(problem, P, Q, c, gamma):
    """`r -> c (I - c J)^{-1} r` for the Gauss-Newton Jacobian of gradient regularization, per run.

    With `penalty (gamma/2) ||grad L||^2`, `D ~ J^T (A + gamma A S A) beta + ...`, `A = X^T X / n`,
    `S = diag(s)`, `s = Q . P` per coordinate (`P = d w'/d(-g)`, `Q = d beta/d w`, flattened over
    the two halves of `w`), so `J ~ -P X^T (I + gamma K) X Q / n` with `K = X S X^T / n`. Woodbury:
    `(I - cJ)^{-1} r = r - c P X^T N^{-1} (I + gamma K) X (Q . r) / n`, `N = I + c (K + gamma K^2)`:
    one n x n inverse per run and step.
    """
    d, n, X = problem.d, problem.n, problem.X
    s = P[:, :d] * Q[:, :d] + P[:, d:] * Q[:, d:]
    K = np.matmul(X * s[:, None, :], np.swapaxes(X, 1, 2)) / n
    eye = np.eye(n)
    G = eye + gamma[:, None, None] * K
    N = eye + c[:, None, None] * np.matmul(K, G)
    NinvG = np.matmul(np.linalg.inv(N), G)
    cc = c[:, None]

    def solve(r):
        q = Q * r
        y = np.einsum("bij,bj->bi", NinvG, problem.apply(q[:, :d] + q[:, d:]))
        return cc * (r - cc * P * np.tile(problem.XT(y), 2))
    return solve
