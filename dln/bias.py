"""Implicit bias of gradient flow: the potential `Q_alpha` and its minimiser among interpolators.

Gradient flow on `beta = u*u - v*v` from `u = v = alpha` converges to
`argmin Q_alpha(beta)` subject to `X beta = y` (Woodworth et al. 2020), with

    Q_alpha(beta) = sum_i alpha_i^2 q(beta_i / alpha_i^2),
    q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z/2),     q'(z) = arcsinh(z/2).

The minimiser has the mirror form `beta = 2 alpha^2 sinh(X^T nu)`, so it is
found from the n-dimensional dual, not by a d-dimensional constrained solve.
"""
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from ._checks import InputError, alpha_batch, finite_array
from ._hyper import Hyper
from .problem import as_problem


def q(z):
    """`q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z/2)`, written as
    `z arcsinh(z/2) - |z| (|z| / (2 + hypot(2, z)))` to avoid cancellation at small `z` and
    the overflow of `z^2` at large `z` (`q(+-inf) = inf`, where that form is inf - inf)."""
    z = np.asarray(z, dtype=float)
    a = np.abs(z)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(z), np.inf, z * np.arcsinh(z / 2) - a * (a / (2 + np.hypot(2.0, z))))


def _alpha2(alpha, d):
    """`alpha^2` of shape (B, 1) or (B, d)."""
    a = alpha_batch(alpha, d)
    a = a[:, None] if a.ndim == 1 else a
    return a * a


def Q_alpha(beta, alpha):
    """`Q_alpha(beta) = sum_i alpha_i^2 q(beta_i / alpha_i^2)`.

    Parameters
    ----------
    beta : ndarray, shape (B, d) or (d,)
    alpha : float or ndarray, shape (B,), (1, d) or (B, d)

    Returns
    -------
    ndarray, shape (B,) (a float for a 1-D `beta` and scalar `alpha`)
    """
    b = finite_array(beta, "beta", ndim=(1, 2))
    if not b.size:
        raise InputError(f"`beta` must have at least one coordinate; got shape {b.shape}")
    a2 = _alpha2(alpha, b.shape[-1])
    if b.ndim == 2 and a2.shape[0] not in (1, b.shape[0]):
        raise InputError(f"`beta` and `alpha` must have one run each or the same number of runs; got shapes "
                         f"{b.shape} and {np.shape(alpha)}")
    out = np.sum(a2 * q(np.atleast_2d(b) / a2), axis=-1)
    return out[0] if b.ndim == 1 and out.shape == (1,) else out


@dataclass(frozen=True, eq=False)
class DualSolution:
    """`argmin Q_alpha(beta)` s.t. `X beta = y`, per (problem, alpha) pair.

    beta : ndarray, shape (B, d)
        `beta = 2 alpha^2 sinh(X^T nu)`.
    nu : ndarray, shape (B, n)
    residual : ndarray, shape (B,)
        `max |X beta - y|`.
    iterations : ndarray of int, shape (B,)
    converged : ndarray of bool, shape (B,)
    """

    beta: np.ndarray
    nu: np.ndarray
    residual: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


#: `solve_dual`'s stopping rule
TOL = Hyper("tol", "interpolation tolerance, relative to max(1, max|y|)", lo=0, hi=1, lo_open=True, hi_open=True,
            per_run=False, default=1e-12)
MAX_ITER = Hyper("max_iter", "cap on Newton iterations", kind="int", lo=1, per_run=False, default=200)


def solve_dual(problem, alpha, tol=TOL.default, max_iter=MAX_ITER.default):
    """Minimise `Q_alpha` among interpolators by Newton's method on the dual.

    The dual objective, convex in `nu` (shape (n,)), is
    `F(nu) = sum_i 2 alpha_i^2 (cosh((X^T nu)_i) - 1) - nu . y`,
    with gradient `X beta(nu) - y`, `beta(nu) = 2 alpha^2 sinh(X^T nu)`, and
    Hessian `X diag(2 alpha^2 cosh(X^T nu)) X^T`. Newton steps with an Armijo
    backtracking line search, stopped when `max |X beta - y| <= tol max(1, max|y|)`.
    A batch of `B` pairs (`alpha` of shape (B,) or (B, d); problem `P = 1` or
    `B`) is solved together.
    """
    problem = as_problem(problem)
    d, n = problem.d, problem.n
    tol, max_iter = TOL.check(tol), MAX_ITER.check(max_iter)
    a2 = _alpha2(alpha, d)
    B = max(a2.shape[0], problem.P)
    if problem.P not in (1, B) or a2.shape[0] not in (1, B):
        raise InputError(f"batch sizes disagree: `problem` has {problem.P} and `alpha` {a2.shape[0]}")
    a2 = np.broadcast_to(a2, (B, d))
    y = np.broadcast_to(problem.y, (B, n))
    Xs = problem.X

    def Xb(b):
        return Xs[0] if problem.P == 1 else Xs[b]

    def XT(nu, rows):
        """`X^T nu` for runs `rows`."""
        return nu @ Xs[0] if problem.P == 1 else np.matmul(nu[:, None, :], Xs[rows])[:, 0]

    def Xv(beta, rows):
        return beta @ Xs[0].T if problem.P == 1 else np.matmul(Xs[rows], beta[..., None])[..., 0]

    def F(nu, rows):
        """Dual objective; `cosh(w) - 1 = 2 sinh(w/2)^2` avoids cancellation at small `w`."""
        with np.errstate(over="ignore"):
            return np.sum(4 * a2[rows] * np.sinh(XT(nu, rows) / 2) ** 2, axis=1) - np.einsum("bn,bn->b", nu, y[rows])

    nu = np.zeros((B, n))
    its = np.zeros(B, np.int64)
    ytol = tol * np.maximum(1.0, np.abs(y).max(axis=1))
    act = np.arange(B)
    for _ in range(max_iter):
        w = XT(nu[act], act)
        with np.errstate(over="ignore"):
            beta = 2 * a2[act] * np.sinh(w)
            h = 2 * a2[act] * np.cosh(w)
        r = Xv(beta, act) - y[act]
        done = np.abs(r).max(axis=1) <= ytol[act]
        act, r, h = act[~done], r[~done], h[~done]
        if not act.size:
            break
        H = np.stack([(Xb(b) * hb) @ Xb(b).T for b, hb in zip(act, h)])
        H[:, np.arange(n), np.arange(n)] += 1e-14 * H.diagonal(axis1=1, axis2=2).max(axis=1, keepdims=True)
        step = -np.linalg.solve(H, r[..., None])[..., 0]
        slope = np.einsum("bn,bn->b", r, step)
        f0 = F(nu[act], act)
        # cap the change of the exponent X^T nu at 5 per iteration: from nu = 0 at tiny alpha the
        # Newton step is ~1/alpha^2 and every halving of a line search would still overflow cosh
        s = np.minimum(1.0, 5.0 / np.maximum(np.abs(XT(step, act)).max(axis=1), 1e-300))
        pend = np.ones(act.size, bool)
        for _ls in range(60):  # Armijo backtracking, with round-off slack near the optimum
            trial = nu[act] + s[:, None] * step
            f1 = F(trial, act)
            okay = pend & np.isfinite(f1) & (f1 <= f0 + 1e-4 * s * slope + 1e-13 * np.maximum(np.abs(f0), 1.0))
            nu[act[okay]] = trial[okay]
            pend &= ~okay
            if not pend.any():
                break
            s = np.where(pend, s / 2, s)
        its[act] += 1
    allr = np.arange(B)
    beta = 2 * a2 * np.sinh(XT(nu, allr))
    res = np.abs(Xv(beta, allr) - y).max(axis=1)
    return DualSolution(beta, nu, res, its, res <= ytol)


def min_l2(problem):
    """Minimum-l2 interpolator `X^+ y` (`= X^T (X X^T)^{-1} y` for `X` of full row rank), shape (P, d)
    (the `alpha -> inf` limit).

    `X^+` is the pseudo-inverse (SVD), so rank-deficient `X` is fine; where `X beta = y` has no
    solution this is the least-squares solution of minimum norm, and `problem.residual` says so.
    """
    problem = as_problem(problem)
    return np.matmul(np.linalg.pinv(problem.X), problem.y[..., None])[..., 0]


#: HiGHS's primal and dual feasibility tolerances for the l1 linear program, on data scaled to unit size
L1_TOL = 1e-10


def min_l1(problem):
    """Minimum-l1 interpolator `argmin ||beta||_1 s.t. X beta = y`, shape (P, d) (the `alpha -> 0` limit).

    Solved per problem on unit-scale data (`_min_l1_unit`): with `s_X = max |X|`, `s_y = max |y|`,
    `beta = (s_y / s_X) argmin ||b||_1 s.t. (X / s_X) b = y / s_y`, since the constraint and the l1 norm
    scale alike. Raises `InputError` where `X beta = y` has no solution (`min_l2` then gives the
    least-squares solution) or where the solver's answer fails the check.
    """
    problem = as_problem(problem)
    P = problem.P
    out = np.empty((P, problem.d))
    for i in range(P):
        X, y = problem.X[i], problem.y[i]
        sx, sy = np.abs(X).max(), np.abs(y).max()
        which = f" (problem {i} of the {P} stacked)" if P > 1 else ""
        out[i] = _min_l1_unit(X / sx, y / sy, which) * (sy / sx)
    return out


def _min_l1_unit(X, y, which):
    """`argmin ||b||_1 s.t. X b = y` for `max |X| = max |y| = 1`, as the linear program `min 1.(p + m)`,
    `X (p - m) = y`, `p, m >= 0` (HiGHS, feasibility tolerances `L1_TOL`).

    Unit scale matters to HiGHS: it takes bounds of 1e20 and above as infinite (a model error) and its
    tolerances as absolute (any `b` fits data of size 1e-10). The answer is then checked on its own:
    `max |X b - y| <= 10 L1_TOL max(1, max_k sum_j |X_kj b_j|)`, the solver's tolerance (10 times, for its
    internal row and column scaling) relative to the size of the terms summed.
    """
    d = X.shape[1]
    res = linprog(np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs",
                  options={"primal_feasibility_tolerance": L1_TOL, "dual_feasibility_tolerance": L1_TOL})
    if res.status == 2:  # infeasible: on finite unit-scale data HiGHS has no model error to report
        raise InputError(f"`problem`{which} has no interpolator: X beta = y has no solution (the minimum-l1 "
                         "linear program is infeasible); min_l2 gives the least-squares solution")
    if res.status != 0:
        raise InputError(f"`problem`{which}: the minimum-l1 linear program failed ({res.message})")
    b = res.x[:d] - res.x[d:]
    miss, size = np.abs(X @ b - y).max(), max(1.0, (np.abs(X) @ np.abs(b)).max())
    if miss > 10 * L1_TOL * size:
        raise InputError(f"`problem`{which}: the minimum-l1 linear program's answer misses X beta = y by "
                         f"{miss / size:.3g} of the data's size (tolerance {10 * L1_TOL:g}): X is too "
                         "ill-conditioned for it")
    return b
