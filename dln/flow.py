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

Method, in every coordinates: the variable-order NDF of Shampine & Reichelt
(ode15s, scipy's BDF; orders 1-5) with BDF6 as order 6, batched with a step
size and an order per run. BDF6, which ode15s and LSODE leave out for its small
A(alpha) angle (17.8 degrees), is stable on the whole negative real axis (its
instability region in the left half-plane is a bounded lobe, |h lambda| < 18,
outside that sector), and the flows here are gradient flows or perturbations of
one: the Jacobian of gradient flow in `nu` is symmetric, and the eigenvalues of
`h J` measured along order-6 steps of GD, GR, F-GR, B-GR, USAM, SAM and NormGR
on the three models were real, or complex with |Im h lambda| < 0.03, all inside
BDF6's stability region. On the default problem at rtol 1e-8 order 6 takes
8-17% fewer steps than a cap at 5 at alpha 0.1 to 1e-6 (0-15% on the depth-3
and product models); at rtol 1e-6 and alpha <= 1e-6 it saves at most 9% and
takes about 10% more gradient evaluations (more Newton iterations per step).
The method uses a simplified Newton iteration whose matrix `I - c J` is kept
between steps as LSODE keeps it: about one gradient evaluation per step, fewer
than scipy's LSODA in log coordinates on the default problem. `J` is the exact
Jacobian of gradient flow in `nu` and otherwise the Gauss-Newton one of
gradient regularization, `-(K + gamma K^2)` in `nu` and
`-P X^T (I + gamma K) X Q / n` in `w` or `theta` (Woodbury through n x n);
`K = X diag(s) X^T / n` (s >= 0) is kept as its eigendecomposition, so a new
step size or order costs no factorization. Its per-run bookkeeping
(prediction, differences, error test, step and order selection, the Newton
test) runs in a few numba kernels over two packed per-run arrays, since at
B = 1 some seventy NumPy calls per step cost more than the step's arithmetic;
for the same reason a Newton correction (the rate of the direction, the
residual, the solve and the error norm) is one method of the coordinates
(`corrector`), in the dual coordinates one kernel with its products inside.
"""
from dataclasses import replace

import numba
import numpy as np

from ._hyper import Declared, Hyper
from .algorithms import collapse_hint, evals_per_run, knobs, per_run_vector
from .integrate import MAX_STEPS, MAX_TIME, Move
from .models import Depth

#: consecutive rejected steps after which a run is stalled (the step shrank by >= 5^40)
MAX_REJECTS = 40
#: accepted steps in a row that leave theta unchanged in floating point after which a run is stalled
MAX_FROZEN = 100
#: `log alpha_eff` below which a run has collapsed (`alpha_eff < 1e-150`)
LOG_FLOOR = -345.0


class Flow(Declared):
    """The flow `theta' = -D(theta)`, integrated by a stiff method (see the module doc).

    A step is accepted when its local error is at most `atol + rtol max|beta|` in
    `beta` and `rtol` in `log u`, `log v` (as `z = log(u/v)` and `m = log alpha_eff`;
    positive models) or `atol + rtol max|theta|` in `theta` (product model).
    Positive models are integrated in logarithmic coordinates, so `alpha` from
    1e-60 to 1e3 is accurate. The global error of the saved `beta` measured
    against Radau at rtol 1e-12 is 0.2-1.0 rtol in `nu` (tests/test_flow.py).
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
        return evals_per_run(algorithm, B).copy()

    def hint(self, objective, algorithm, theta0, rows, B):
        return [""] * len(rows)

    def next_passes(self, carry, max_time):
        return np.zeros(carry["t"].shape, bool)

    def start(self, objective, algorithm, at, state):
        cs = _coordinates(objective, algorithm, at.theta)
        y = cs.y0(at.theta)
        F = cs.rate(at.theta, algorithm.update(at, state, 0)[0])
        # the first step moves the logarithmic coordinates by 1e-3, and beta by at most 1e-3 of its
        # error scale over rtol (beta starts at 0 for u = v, where the first would be far too long at large alpha)
        bscale = self.atol + self.rtol * np.abs(at.beta).max(axis=1)
        speed = np.maximum(cs.speed(F, y), np.abs(cs.dbeta(at.theta, F)).max(axis=1) * self.rtol / bscale)
        h = 1e-3 / np.maximum(speed, 1e-300)
        h = np.where(np.isfinite(h), np.minimum(h, self.max_time), self.max_time)
        carry = {"at": at, "state": state, "cs": cs}
        carry.update(_NDF.start(cs, algorithm, at, y, F, h))
        carry["t"], carry["steps"] = carry["F"][:, T], carry["I"][:, STEPS]
        return carry

    def room(self, carry, k, max_steps, max_time, rec, idx):
        """One attempt per `advance`: the driver's stop rules see every step of a flow."""
        return 1

    def advance(self, objective, algorithm, carry, k, m=1, band=None):
        """One attempted step per live run (see `_BDF`; `m` is 1, `band` unused)."""
        return _NDF.advance(self, objective, algorithm, carry)


def _stiffness(algorithm, at):
    """`algorithm.stiffness(at)` per run, (B,)."""
    return per_run_vector(algorithm.stiffness(at), at.theta.shape[0])


def _failures(algorithm, cs, carry, ok, speed, attention):
    """Statuses and messages of runs the stepper cannot continue: a direction that is not finite
    (`speed = max|y'|` at the step's start is NaN or inf) or zero (a stationary point above the loss
    tolerance: the flow stays there), a state frozen in floating point for `MAX_FROZEN` accepted
    steps, collapse of `alpha_eff`, a step fallen to round-off or NaN, or `MAX_REJECTS` rejections
    in a row (an overflowing state). `attention`: some run was rejected, has a direction that is zero
    or not finite, left theta unchanged or has some `log alpha_eff` below `LOG_FLOOR` (else no run
    failed). Returns `(failed, why)`, str arrays (`""` for a run that goes on), or `(None, None)` where
    no run failed."""
    if not attention:  # the common case
        return None, None
    F, I, L = carry["F"], carry["I"], carry["at"].loss
    t, h, frozen, rejects = F[:, T], F[:, H], I[:, FROZEN], I[:, REJECTS]
    B = t.shape[0]
    m = cs.log_alpha(carry["D"][:, 0]) if cs.drift else None
    name = type(algorithm).__name__
    failed = np.full(B, "", dtype=object)
    why = np.full(B, "", dtype=object)
    for i in np.flatnonzero(~np.isfinite(speed)):
        failed[i] = "diverged"
        why[i] = (f"{name}: the direction is not finite at t = {t[i]:.6g} (loss {L[i]:.3g}): the state or a "
                  f"point the algorithm evaluates overflows; lower {knobs(algorithm, ['alpha'])}")
    for i in np.flatnonzero(speed == 0):
        failed[i] = "stalled"
        why[i] = (f"{name}: the flow is at rest at t = {t[i]:.6g} (the direction is 0, loss {L[i]:.3g}): a "
                  "stationary point that does not fit the data, e.g. u = v = 0 (change the initialization), or a "
                  "fit to round-off (raise `loss_tol` above what floating point resolves)")
    for i in np.flatnonzero(frozen >= MAX_FROZEN):
        failed[i] = "stalled"
        why[i] = (f"{name}: the state stopped changing in floating point at t = {t[i]:.6g} (loss {L[i]:.3g}; "
                  f"{MAX_FROZEN} accepted steps left theta unchanged): its changes are below the round-off of "
                  "u and v, as for alpha far above 1e3 in the lazy regime; use a smaller alpha")
    stuck = ~ok & ((t + h == t) | ~np.isfinite(h) | (rejects >= MAX_REJECTS)) & (failed == "")
    if m is not None:
        drop = np.min(m - cs.m0, axis=1)
        collapsed = (drop < -np.log(1e6)) & stuck | (np.min(m, axis=1) < LOG_FLOOR)
    else:
        collapsed = np.zeros(B, bool)
    for i in np.flatnonzero(collapsed):
        failed[i] = "collapsed"
        why[i] = (f"{name}: u, v driven to 0 at t = {t[i]:.6g} without fitting the data (loss {L[i]:.3g}, "
                  f"min alpha_eff {np.exp(m[i].min()):.3g}): its drift of log alpha_eff outweighs the fit at this "
                  f"alpha; {collapse_hint(algorithm)}")
    for i in np.flatnonzero(stuck & ~collapsed):
        failed[i] = "stalled"
        why[i] = (f"{name}: the flow cannot advance at t = {t[i]:.6g} (loss {L[i]:.3g}, step size {h[i]:.3g}, "
                  f"{rejects[i]} rejected steps in a row): the field is discontinuous there (normalized "
                  "SAM once the loss reaches 0) or overflows; raise `loss_tol`, change alpha or the "
                  "hyperparameters, or use `Steps`")
    return failed, why


# ---- the NDF's per-run bookkeeping, fused (numba): a few loops in three kernels instead of some
# seventy NumPy calls per step, which at B = 1 cost more than the step's arithmetic. Per-run
# integers and floats are packed in two arrays (columns below), so a kernel takes few arguments.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

#: columns of the per-run integers `I`: order k, steps taken at the current h, accepted steps, age of
#: the Jacobian (accepted steps), rejections in a row, accepted steps in a row that left theta
#: unchanged, Jacobian fresh (1) since the last accepted step, last Newton iteration failed (1)
ORDER, EQUAL, STEPS, AGE, REJECTS, FROZEN, FRESH, FAILED = range(8)
#: columns of the per-run floats `F`: time, step size, Newton's carried contraction rate
T, H, RATE = range(3)


@_jit
def _ndf_predict(D, I, F, alpha, psi_of, max_age):
    """The start of a step: the predictor `y_p = sum_{j<=k} D_j`, `psi = sum_{1<=j<=k} (g_j/alpha_k) D_j`,
    `c = h / alpha_k`, Newton's starting contraction rate (0.7 with a Jacobian new since the last
    step, so that its first step measures the rate; else the carried one) and the runs whose
    Jacobian is `max_age` accepted steps old (refreshed before the step), with whether there is one."""
    B, _, N = D.shape
    y, psi = np.empty((B, N)), np.empty((B, N))
    c, rate, aged = np.empty(B), np.empty(B), np.empty(B, np.bool_)
    any_aged = False
    for b in range(B):
        k = I[b, ORDER]
        c[b] = F[b, H] / alpha[k]
        aged[b] = I[b, AGE] >= max_age
        any_aged |= aged[b]
        rate[b] = 0.7 if aged[b] or (I[b, FRESH] and I[b, AGE] == 0) else F[b, RATE]
        for n in range(N):
            acc, p = D[b, 0, n], 0.0
            for j in range(1, k + 1):
                acc += D[b, j, n]
                p += psi_of[k, j - 1] * D[b, j, n]
            y[b, n], psi[b, n] = acc, p
    return y, psi, c, rate, aged, any_aged


@_jit
def _newton_update(it, maxiter, tol, norm, old, rate, done, conv, iters, y, d, dy):
    """One simplified-Newton update of the runs not `done`, in place: count the evaluation; the
    contraction `rate = |dy| / |dy_old|` (from the second iteration; before it the carried one);
    diverging (`rate >= 1`, or not within `tol` by `maxiter`) -> done without the update; else
    `y += dy`, `d += dy`, and converged once `rate / (1 - rate) |dy| < tol`. Returns whether every
    run is done."""
    B, N = y.shape
    for b in range(B):
        if done[b]:
            continue
        iters[b] += 1
        if not np.isfinite(norm[b]):
            done[b] = True
            continue
        if it > 0:
            rate[b] = norm[b] / old[b]
            if rate[b] >= 1 or rate[b] ** (maxiter - it) / (1 - rate[b]) * norm[b] > tol:
                done[b] = True
                continue
        for n in range(N):
            y[b, n] += dy[b, n]
            d[b, n] += dy[b, n]
        if norm[b] == 0 or rate[b] / (1 - rate[b]) * norm[b] < tol:
            conv[b] = True
            done[b] = True
    for b in range(B):
        if not done[b]:
            return False
    return True


@_jit
def _newton_rhs(f, c, psi, d):
    """`f <- c f - psi - d` in place: the residual of the NDF's implicit formula at `y = y_p + d`."""
    B, N = f.shape
    for b in range(B):
        for n in range(N):
            f[b, n] = c[b] * f[b, n] - psi[b, n] - d[b, n]


@_jit
def _shrink(c, mu):
    """`1 / (1 + c mu)`, (B, n): `(I - c J)^{-1}` on the eigenvectors of `J` (eigenvalues `-mu`)."""
    out = np.empty_like(mu)
    for b in range(mu.shape[0]):
        for i in range(mu.shape[1]):
            out[b, i] = 1 / (1 + c[b] * mu[b, i])
    return out


@_jit
def _ndf_test(D, d, I, F, conv, norm_d, loss, error_const, max_order):
    """The error test: `err = C_k |d|` (`d = y - y_p`, `norm_d = |d|` in the coordinates' norm; inf
    where Newton failed or the new loss is not finite), accepted where `err <= 1` and the step's
    direction is finite and not zero (`speed = max|D_1| / h > 0`); and, for runs whose order is due
    for a change (`k + 1` steps at one h), the differences whose norms estimate the errors of orders
    `k - 1` and `k + 1`, `C_{k-1} (d + D_k)` and `C_{k+1} (d - D_{k+1})` (zero for the others)."""
    B, _, N = D.shape
    err, speed, ok = np.empty(B), np.empty(B), np.empty(B, np.bool_)
    em, ep = np.zeros((B, N)), np.zeros((B, N))
    any_due = False
    for b in range(B):
        k = I[b, ORDER]
        err[b] = error_const[k] * norm_d[b]
        if not (conv[b] and np.isfinite(err[b]) and np.isfinite(loss[b])):
            err[b] = np.inf
        speed[b] = _absmax(D[b, 1]) / F[b, H]
        ok[b] = err[b] <= 1 and speed[b] > 0
        if ok[b] and I[b, EQUAL] + 1 >= k + 1:
            any_due = True
            cm, cp = error_const[max(k - 1, 0)], error_const[min(k + 1, max_order)]
            for n in range(N):
                em[b, n] = cm * (d[b, n] + D[b, k, n])
                ep[b, n] = cp * (d[b, n] - D[b, k + 1, n])
    return err, speed, ok, any_due, em, ep


@_jit
def _ndf_accept_one(D, d, k, out):
    """`out` = the differences after an accepted step of order `k`: `D_{k+2} = d - D_{k+1}`,
    `D_{k+1} = d`, `D_i = d + sum_{i<=j<=k} D_j` for `i <= k`, the rows above kept."""
    R, N = D.shape
    for n in range(N):
        out[k + 2, n] = d[n] - D[k + 1, n]
        out[k + 1, n] = d[n]
        acc = d[n]
        for i in range(k, -1, -1):
            acc += D[i, n]
            out[i, n] = acc
        for i in range(k + 3, R):
            out[i, n] = D[i, n]


@_jit
def _ndf_accept(D, d, order):
    """`_ndf_accept_one` of every run: the differences after accepted steps (for dense output)."""
    out = np.empty_like(D)
    for b in range(D.shape[0]):
        _ndf_accept_one(D[b], d[b], order[b], out[b])
    return out


@_jit
def _ndf_R(k, f):
    """Shampine & Reichelt's `R` of order `k` for the step ratio `f`: `cumprod` over rows of
    `M_0j = 1`, `M_ij = (i - 1 - f j) / i` (i >= 1), (k+1, k+1)."""
    R = np.ones((k + 1, k + 1))
    for j in range(k + 1):
        for i in range(1, k + 1):
            R[i, j] = R[i - 1, j] * (i - 1 - f * j) / i
    return R


@_jit
def _copy(src, dst):
    """`dst[:] = src` for (R, N) arrays, by loops (a slice assignment compiles NumPy's broadcasting
    checks and their error messages: seconds on first use)."""
    for i in range(src.shape[0]):
        for n in range(src.shape[1]):
            dst[i, n] = src[i, n]


@_jit
def _ndf_RU(k, f):
    """`R(f) R(1)`, (k+1, k+1), by loops: numba's `@` compiles NumPy's shape checks and their error
    messages, which made this module's first use take 9 s longer."""
    R, U = _ndf_R(k, f), _ndf_R(k, 1.0)
    out = np.zeros((k + 1, k + 1))
    for i in range(k + 1):
        for m in range(k + 1):
            for j in range(k + 1):
                out[i, j] += R[i, m] * U[m, j]
    return out


@_jit
def _ndf_finish(D, d, I, F, ok, conv, iters, err, em, ep, rate, theta, theta_old, m_cols, max_time, newton_maxiter,
                max_order, min_factor, max_factor):
    """The end of a step, per run: the differences of an accepted step (`_ndf_accept_one`); the next
    step size and order; the differences re-expressed on the new step's grid (rows `0..k`:
    `(R(f) R(1))^T D`); the counters. Returns the new `(D, I, F)`, the runs whose Jacobian must be
    refreshed (Newton failed with a stale one) and whether there is one, and whether any run needs
    `_failures`' attention (rejected, direction zero or not finite, theta frozen, or some `log alpha_eff`,
    the columns `m_cols = (lo, hi)` of `y`, below `LOG_FLOOR` or NaN).

    Step and order: after an error-test rejection smaller (`safety err^(-1/(k+1))`, at least
    `min_factor`); after a Newton failure with a fresh Jacobian halved, with a stale one retried with a
    fresh one; after `k + 1` steps at one h, the order of `k - 1`, `k`, `k + 1` that allows the longest
    step (at most `max_factor`, and 2x after a Newton failure: LSODE's RMAX, otherwise a field the
    Jacobian models poorly cycles between a failure at h, halvings and a step change back to h); never
    past `max_time`. Newton's carried rate: `max(0.2 rate_old, rate)` after a step that measured it."""
    B, _, N = D.shape
    Dn, In, Fn = np.empty_like(D), I.copy(), F.copy()
    refresh = np.zeros(B, np.bool_)
    attention = any_refresh = False
    tmp = np.empty((max_order + 1, N))
    for b in range(B):
        k = I[b, ORDER]
        if ok[b]:
            _ndf_accept_one(D[b], d[b], k, Dn[b])
        else:
            _copy(D[b], Dn[b])
        fresh, failed = I[b, FRESH] == 1, I[b, FAILED] == 1
        safety = 0.9 * (2 * newton_maxiter + 1) / (2 * newton_maxiter + iters[b])
        refresh[b] = not conv[b] and not fresh
        any_refresh |= refresh[b]
        if ok[b]:
            f = 1.0
        elif conv[b]:
            e = err[b] if err[b] > 0 else 1e-10
            f = max(min_factor, safety * e ** (-1.0 / (k + 1)))
        else:
            f = 1.0 if refresh[b] else 0.5
        equal = I[b, EQUAL] + ok[b]
        new_k = k
        due = ok[b] and equal >= k + 1
        if due:
            best, fbest = 1, 0.0
            for o in range(3):
                if (o == 0 and k <= 1) or (o == 2 and k >= max_order):
                    continue
                e = em[b] if o == 0 else (err[b] if o == 1 else ep[b])
                e = e if e > 0 else 1e-10
                fo = e ** (-1.0 / (k + o))
                if fo > fbest:
                    best, fbest = o, fo
            new_k = k + best - 1
            f = min(2.0 if failed else max_factor, safety * fbest)
        t = F[b, T] + F[b, H] if ok[b] else F[b, T]
        if F[b, H] * f > max_time - t:
            f = (max_time - t) / F[b, H]
        # the differences on the grid of the new step (rows 0..new_k; the others kept)
        if f != 1.0:
            RU = _ndf_RU(new_k, f)
            _copy(Dn[b, :new_k + 1], tmp)
            for i in range(new_k + 1):
                for n in range(N):
                    acc = 0.0
                    for j in range(new_k + 1):
                        acc += RU[j, i] * tmp[j, n]
                    Dn[b, i, n] = acc
        moved = False
        if ok[b]:
            for n in range(theta.shape[1]):
                for i in range(theta.shape[2]):
                    if theta[b, n, i] != theta_old[b, n, i]:
                        moved = True
                        break
                if moved:
                    break
        In[b, ORDER] = new_k
        In[b, EQUAL] = 0 if f != 1.0 else equal
        In[b, STEPS] += ok[b]
        In[b, AGE] = (0 if refresh[b] else I[b, AGE]) + ok[b]
        In[b, REJECTS] = 0 if ok[b] else I[b, REJECTS] + 1
        In[b, FROZEN] = (0 if moved else I[b, FROZEN] + 1) if ok[b] else I[b, FROZEN]
        In[b, FRESH] = refresh[b] or (fresh and not ok[b])
        In[b, FAILED] = (failed or (not conv[b] and not refresh[b])) and not (due and f != 1.0)
        Fn[b, T] = t
        Fn[b, H] = F[b, H] * f
        if conv[b] and iters[b] > 1:
            Fn[b, RATE] = max(0.2 * F[b, RATE], rate[b])
        attention |= not ok[b] or In[b, FROZEN] > 0
        for n in range(m_cols[0], m_cols[1]):
            attention |= not Dn[b, 0, n] >= LOG_FLOOR
    return Dn, In, Fn, refresh, any_refresh, attention


@_jit
def _nanmax(a, b):
    """`max(a, b)`, NaN if either is (as `np.maximum`)."""
    return a if a > b or a != a else b


@_jit
def _absmax(a):
    """`max_i |a_i|` of a vector, NaN if any entry is NaN (as NumPy's `max`)."""
    m = 0.0
    for x in a:
        m = _nanmax(m, abs(x))
    return m


@_jit
def _wmax(a, w, c, v):
    """The weighted max norm `max(max_i |a_i w_i|, max_j |c_j v_j|)` of each row, (B,) (`c`, `v` of
    no columns: the first alone), NaN where any term is."""
    B, N = a.shape
    out = np.empty(B)
    for b in range(B):
        m = 0.0
        for n in range(N):
            m = _nanmax(m, abs(a[b, n] * w[b, n]))
        for n in range(c.shape[1]):
            m = _nanmax(m, abs(c[b, n] * v[b, n]))
        out[b] = m
    return out


class _BDF:
    """Variable-order (1-6) numerical differentiation formulas with per-run order and step size:
    the NDF of Shampine & Reichelt (1997) (the method of MATLAB's ode15s and scipy's BDF, orders 1-5),
    batched, with BDF6 as order 6 (see the module doc).

    Each run keeps the backward differences `D` (rows 0..8) of its solution on an equidistant grid of
    step `h`; a step predicts `y_p = sum_{j<=k} D_j`, solves the implicit formula
    `c f(y) - psi - (y - y_p) = 0` (`c = h / alpha_k`) by a simplified Newton iteration with the
    matrix `I - c J` (`J` the coordinates' Jacobian, symmetric negative semi-definite on `nu`, kept
    with its eigendecomposition between steps and refreshed after `AGE` steps or when Newton does
    not converge; a new `c` then costs no factorization), estimates the local error as
    `C_k (y - y_p)`, and changes `h` and `k` after `k + 1` steps at one `h` from the error estimates of
    orders `k - 1`, `k`, `k + 1`. The convergence rate of Newton is carried from step to step, so a
    step whose first correction is small enough takes one evaluation (as LSODE does). The error
    norm is the coordinates' own (`weights`, `norm`: within tolerance in `beta` and in `log u, log v`).
    Dense output: the interpolating polynomial of the step.
    """

    MAX_ORDER = 6
    NEWTON_MAXITER = 4
    #: Newton stops when its estimated remaining error is below this fraction of the error tolerance
    #: (ode15s' value; scipy's `min(0.03, sqrt(rtol))` is 300x stricter at rtol 1e-8 and costs an iteration)
    NEWTON_TOL = 0.03
    #: the Jacobian is refreshed after this many accepted steps, besides when Newton fails (LSODE: 20;
    #: on the default problem 20 and 40 take more evaluations, since a refresh resets Newton's rate, and
    #: a batch of 32 spends a quarter of its time in the refreshes at 20; 100 takes more on depth 3 and GR)
    AGE = 60
    MIN_FACTOR, MAX_FACTOR = 0.2, 10.0

    def __init__(self):
        # Shampine & Reichelt's kappa of orders 1-4; 0 from order 5 on (BDF5, BDF6)
        kappa = np.r_[0, -0.1850, -1 / 9, -0.0823, -0.0415, np.zeros(self.MAX_ORDER - 4)]
        self.g = np.hstack([0, np.cumsum(1 / np.arange(1, self.MAX_ORDER + 1))])
        self.alpha = (1 - kappa) * self.g
        self.error_const = kappa * self.g + 1 / np.arange(1, self.MAX_ORDER + 2)
        # per order k: psi's weights of D_1..D_MAX_ORDER (g_j / alpha_k up to k)
        upto = np.arange(1, self.MAX_ORDER + 1)[None, :] <= np.arange(self.MAX_ORDER + 1)[:, None]
        self._psi = self.g[1:] * upto / np.where(self.alpha > 0, self.alpha, 1)[:, None]

    def start(self, cs, algorithm, at, y, F, h):
        B, N = y.shape
        D = np.zeros((B, self.MAX_ORDER + 3, N))
        D[:, 0], D[:, 1] = y, F * h[:, None]
        ints = np.zeros((B, 8), np.int64)
        ints[:, ORDER], ints[:, FRESH] = 1, 1
        floats = np.zeros((B, 3))
        floats[:, H], floats[:, RATE] = h, 0.7
        return {"D": D, "I": ints, "F": floats, "jac": cs.jacobian(at.theta, _stiffness(algorithm, at)),
                "evals": evals_per_run(algorithm, B).copy()}

    @staticmethod
    def _refresh(cs, algorithm, at, jac, rows):
        """The coordinates' Jacobian at the point `at` for the runs `rows` (mask), the others' kept."""
        sel = rows.nonzero()[0]
        stiff = _stiffness(algorithm, at)
        if sel.size == rows.size:
            return cs.jacobian(at.theta, stiff)
        sub = cs if cs.problem.P == 1 else cs.take(sel)  # (a Jacobian reads only X of the runs' problem)
        new = sub.jacobian(at.theta[sel], stiff[sel])
        out = {k: v.copy() for k, v in jac.items()}
        for k, v in out.items():
            v[sel] = new[k]
        return out

    def advance(self, flow, objective, algorithm, carry):
        cs, at, state, D, ints, floats, jac = (carry["cs"], carry["at"], carry["state"], carry["D"], carry["I"],
                                               carry["F"], carry["jac"])
        y_pred, psi, c, rate, aged, any_aged = _ndf_predict(D, ints, floats, self.alpha, self._psi, self.AGE)
        if any_aged:  # a Jacobian at the step's start
            jac = self._refresh(cs, algorithm, at, jac, aged)
            ints = ints.copy()
            ints[aged, FRESH], ints[aged, AGE] = 1, 0
        th = cs.theta(y_pred)
        point = objective.at(th)
        w = cs.weights(th, at.beta, point.beta, flow)
        correct = cs.corrector(jac, c, psi, w)
        # simplified Newton on `c f(y) - psi - (y - y_p) = 0`, every run together; a run leaves the loop
        # when it converged (estimated remaining error `rate / (1 - rate) |dy| < NEWTON_TOL`, `rate` the
        # contraction measured in this step or carried from the last one) or when it diverges
        B = D.shape[0]
        yk, dsum = y_pred, np.zeros(y_pred.shape)  # updated in place
        done, conv = np.zeros(B, bool), np.zeros(B, bool)
        iters = np.zeros(B, np.int64)
        norm = None
        for it in range(self.NEWTON_MAXITER):
            if it:
                th = cs.theta(yk)
                point = objective.at(th)
            dy, new_norm = correct(th, algorithm.update(point, state, 0)[0], dsum)
            old, norm = norm, new_norm
            old = norm if old is None else old  # (not read in the first iteration)
            if _newton_update(it, self.NEWTON_MAXITER, self.NEWTON_TOL, norm, old, rate, done, conv, iters, yk, dsum,
                              dy):
                break
        th_new = cs.theta(yk)
        at_new = objective.at(th_new)
        # |y - y_p|: after one iteration (every run's), the first correction's norm (or NaN with no update)
        norm_d = norm if it == 0 else cs.norm(dsum, w)
        err, speed, ok, due, em, ep = _ndf_test(D, dsum, ints, floats, conv, norm_d, at_new.loss, self.error_const,
                                                self.MAX_ORDER)
        if due:
            em, ep = cs.norm(em, w), cs.norm(ep, w)
        else:
            em = ep = err
        D_new, ints_new, floats_new, refresh, any_refresh, attention = _ndf_finish(
            D, dsum, ints, floats, ok, conv, iters, err, em, ep, rate, th_new, at.theta, cs.m_cols, float(flow.max_time),
            self.NEWTON_MAXITER, self.MAX_ORDER, self.MIN_FACTOR, self.MAX_FACTOR)
        if any_refresh:
            jac = self._refresh(cs, algorithm, at, jac, refresh)

        def dense(sel, tq):
            """The step's interpolating polynomial `D_0 + sum_{j<k} prod_{m<=j} (tq - t + m h)/((m+1) h) D_{j+1}`."""
            Dn = _ndf_accept(D[sel], dsum[sel], ints[sel, ORDER])
            m = np.arange(self.MAX_ORDER)[None, :]
            hh = floats[sel, H][:, None]
            t_new = floats[sel, T][:, None] + hh
            p = np.cumprod((tq[:, None] - (t_new - m * hh)) / ((m + 1) * hh), axis=1)
            yq = Dn[:, 0] + np.einsum("bj,bjn->bn", p * (m < ints[sel, ORDER][:, None]), Dn[:, 1:self.MAX_ORDER + 1])
            return cs.take(sel).theta(yq)

        new = dict(carry, at=at_new if not attention else at_new.where(ok, at), D=D_new, I=ints_new,
                   F=floats_new, t=floats_new[:, T], steps=ints_new[:, STEPS], jac=jac)
        failed, why = _failures(algorithm, cs, new, ok, speed, attention)
        return new, Move(iters * carry["evals"], ok, dense, failed, why)


#: the method of every flow
_NDF = _BDF()


def _coordinates(objective, algorithm, theta):
    """The integration coordinates of this batch (see the module doc)."""
    model, problem = objective.model, objective.problem
    B = theta.shape[0]
    if not model.positive:
        return _Plain(problem, model)
    if algorithm.mirror and isinstance(model, Depth) and model.depth == 2 and problem.row_map is not None:
        free = np.broadcast_to(np.asarray(algorithm.drift_free(), bool), (B,))
        return _Dual(problem, model, problem.row_map, theta, free)
    return _Mirror(problem, model, theta)


class _Coordinates:
    """Integration coordinates `y` (B, N) of a batch: the map to `theta`, the rate, the step matrix,
    the error measures. Per-run attributes (names in `per_run`) are sliced by `take`."""

    per_run = ()
    #: the columns `(lo, hi)` of `y` that hold `m = log alpha_eff`, where it is part of the state
    m_cols = (0, 0)

    @property
    def drift(self):
        """Whether `m = log alpha_eff` is part of the state (so it may collapse)."""
        return self.m_cols[1] > self.m_cols[0]

    def take(self, idx):
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.problem = self.problem.take(idx)
        for name in self.per_run:
            setattr(out, name, getattr(self, name)[idx])
        return out

    def log_alpha(self, y):
        """`log alpha_eff` of states `y`, (B, d), where it is part of the state (`drift`)."""
        return y[:, self.m_cols[0]:self.m_cols[1]]

    def speed(self, F, y):
        """The largest rate of the state's logarithmic coordinates: the first step is `1e-3` over it."""
        return np.abs(F).max(axis=1)

    def norm(self, dy, w):
        """The weighted max norm of a change `dy` of the state (1: at the tolerance), (B,)."""
        return _wmax(dy, w[0], dy[:, :0], dy[:, :0])

    def solver(self, jac, c):
        """`r -> (I - c J)^{-1} r` with the Jacobian `jac` (`_low_rank`); it may overwrite `r`."""
        return _low_rank_solver(self.problem, jac, c)

    def corrector(self, jac, c, psi, w):
        """A step's Newton correction, `(theta, D, d) -> (dy, |dy|)`: the residual of the NDF's implicit formula
        at `y = y_p + d`, `f = c y' - psi - d` (`y'` the rate of `theta' = -D` at `theta = theta(y)`), and
        `dy = (I - c J)^{-1} f` with its norm (weights `w`)."""
        solve = self.solver(jac, c)

        def correct(theta, D, d):
            f = self.rate(theta, D)
            _newton_rhs(f, c, psi, d)
            dy = solve(f)
            return dy, self.norm(dy, w)
        return correct


@_jit
def _times(x, A):
    """`x_b A_b` per run, (B, m), for `x` (B, k) and `A` (P, k, m) (P = 1: one product for the batch)."""
    x = np.ascontiguousarray(x)
    if A.shape[0] == 1:
        return np.dot(x, A[0])
    out = np.empty((x.shape[0], A.shape[2]))
    for b in range(x.shape[0]):
        row = np.dot(x[b], A[b])
        for i in range(row.size):
            out[b, i] = row[i]
    return out


@_jit
def _dual_exponents(y, X, z0, m0, out):
    """`out = (m + z/2, m - z/2)`, `z = z0 + X^T nu`, (B, 2, d): `(log u, log v)` of `y = nu` (`m = m0`) or
    `y = (nu, m)`."""
    B, N = y.shape
    n, d = X.shape[1], X.shape[2]
    half = _times(y[:, :n], X)
    for b in range(B):
        m = y[b, n:] if N > n else m0[b]
        for i in range(d):
            z = 0.5 * (z0[b, i] + half[b, i])
            out[b, 0, i] = m[i] + z
            out[b, 1, i] = m[i] - z


@_jit
def _dual_norm(dy, X, wz, wm):
    """The weighted max norm of a change `dy = (dnu, dm)`: `max(max_i |(X^T dnu)_i| wz_i, max_j |dm_j| wm_j)`, (B,)."""
    n = X.shape[1]
    return _wmax(_times(dy[:, :n], X), wz, dy[:, n:], wm)


@_jit
def _zm_rates(D, theta, keep_m, zr, mr):
    """`zr = z' = D_v/v - D_u/u` and, where `mr` has columns, `mr = m' = -(D_u/u + D_v/v) keep_m / 2`
    (`theta' = -D`), (B, d) each."""
    B, _, d = theta.shape
    for b in range(B):
        for i in range(d):
            pu, pv = D[b, 0, i] / theta[b, 0, i], D[b, 1, i] / theta[b, 1, i]
            zr[b, i] = pv - pu
            if mr.shape[1]:
                mr[b, i] = -0.5 * keep_m[b, 0] * (pu + pv)


@_jit
def _dual_weights(theta, beta, beta_new, atol, rtol, wz, wm):
    """`wz = max((u^2 + v^2) s, 1 / rtol)` and, where `wm` has columns, `wm = max(2 |beta_new| s, 1 / rtol)`,
    `s = 1 / (atol + rtol max(max|beta|, max|beta_new|))` per run (see `_Dual.weights`)."""
    B, _, d = theta.shape
    for b in range(B):
        s = 1 / (atol + rtol * _nanmax(_absmax(beta[b]), _absmax(beta_new[b])))
        for i in range(d):
            wz[b, i] = _nanmax((theta[b, 0, i] ** 2 + theta[b, 1, i] ** 2) * s, 1 / rtol)
            if wm.shape[1]:
                wm[b, i] = _nanmax(2 * abs(beta_new[b, i]) * s, 1 / rtol)


@_jit
def _dual_rate(D, theta, keep_m, GT, N):
    """The rate `y'` (B, N) of `theta' = -D` in `y = nu` or `y = (nu, m)`: `nu' = G z'` (`GT` = `G^T`, (P, d, n)),
    `z'` and `m'` as `_zm_rates`."""
    B, _, d = theta.shape
    n = GT.shape[2]
    out = np.empty((B, N))
    zr = np.empty((B, d))
    _zm_rates(D, theta, keep_m, zr, out[:, n:])
    _copy(_times(zr, GT), out[:, :n])
    return out


@_jit
def _dual_correct(D, theta, keep_m, GT, c, psi, d, V, shrink, X, wz, wm):
    """The Newton correction in `y = (nu, m)` (`_Coordinates.corrector`): the rate `y'` of `theta' = -D`
    (`_dual_rate`), `f = c y' - psi - d`, `dy = (V diag(shrink) V^T f_nu, f_m)` and its norm
    (`_dual_norm`). Returns `(dy, norm)`."""
    dy = _dual_rate(D, theta, keep_m, GT, psi.shape[1])
    _newton_rhs(dy, c, psi, d)
    n = GT.shape[2]
    for b in range(dy.shape[0]):
        row = np.dot(V[b], np.dot(dy[b, :n], V[b]) * shrink[b])
        for j in range(n):
            dy[b, j] = row[j]
    return dy, _dual_norm(dy, X, wz, wm)


class _Dual(_Coordinates):
    """`y = nu` (every run drift-free) or `y = (nu, m)`: `z = z0 + X^T nu`, `m = log alpha_eff`.

    `G = (X X^T)^{-1} X` (per problem) maps `z'` to `nu'`, kept as `GT = G^T` (`Problem.row_map`). Per-run
    arrays: `z0`, `m0` (B, d) and the drift mask `keep_m` (B, 1) (0 where `drift_free()`).
    """

    per_run = _Coordinates.per_run + ("z0", "m0", "keep_m")

    def __init__(self, problem, model, GT, theta, free):
        self.problem, self.model, self.GT = problem, model, GT
        lu, lv = np.log(theta[:, 0]), np.log(theta[:, 1])
        self.z0, self.m0 = lu - lv, (lu + lv) / 2
        self.keep_m = 1.0 - free[:, None]
        if not free.all():
            self.m_cols = (problem.n, problem.n + problem.d)

    def take(self, idx):
        out = super().take(idx)
        if self.problem.P > 1:
            out.GT = self.GT[idx]
        return out

    def _XT(self, nu):
        """`X^T nu`, shape (B, d)."""
        return _times(nu, self.problem.X)

    def y0(self, theta):
        nu = np.zeros((theta.shape[0], self.problem.n))
        return np.concatenate([nu, self.m0], axis=1) if self.drift else nu

    def _split(self, y):
        n = self.problem.n
        return (y[:, :n], y[:, n:]) if self.drift else (y, self.m0)

    def theta(self, y):
        """`(u, v) = exp(m +- z/2)` (NumPy's vectorized `exp`: numba's, per element, is 5-10x slower)."""
        out = np.empty((y.shape[0], 2, self.problem.d))
        _dual_exponents(y, self.problem.X, self.z0, self.m0, out)
        return np.exp(out, out=out)

    def rate(self, theta, D):
        """`y'` of `theta' = -D`: `z' = -(D_u/u - D_v/v)`, `nu' = G z'`, `m' = -(D_u/u + D_v/v)/2`."""
        return _dual_rate(D, theta, self.keep_m, self.GT, self.problem.n + (self.problem.d if self.drift else 0))

    def speed(self, F, y):
        nu, m = self._split(F)
        s = np.abs(self._XT(nu)).max(axis=1)
        return np.maximum(s, np.abs(m).max(axis=1)) if self.drift else s

    def _Q(self, theta):
        """`d beta / d z` and `d beta / d m` per coordinate, (B, d) each, and the model's Jacobian."""
        J = self.model.jac(theta)
        fu, fv = J[:, 0] * theta[:, 0], J[:, 1] * theta[:, 1]
        return (fu - fv) / 2, fu + fv, J

    def jacobian(self, theta, stiff):
        """`-J` on `nu`, `K + gamma K^2` with `K = X diag(s) X^T / n`, `s = (d z'/d(-g)) (d beta/d z) =
        4 (u^2 + v^2)` on the squares model (J = 0 on `m`): the exact Jacobian of gradient flow, the
        Gauss-Newton one of GR with `gamma = stiff` (B,) (`algorithm.stiffness` there); kept as the
        eigendecomposition of `K` (symmetric positive semi-definite), `{"lam", "V", "gamma"}`."""
        return _eig(self.problem, np.square(theta).sum(axis=1) * 4, stiff)

    def corrector(self, jac, c, psi, w):
        """The Newton correction in one kernel (`_dual_correct`): `(I - c J)^{-1} = V diag(1 / (1 + c (lam +
        gamma lam^2))) V^T` on `nu`, the identity on `m`."""
        GT, V, X, keep_m = self.GT, jac["V"], self.problem.X, self.keep_m
        shrink = _shrink(c, jac["mu"])
        wz, wm = w

        def correct(theta, D, d):
            return _dual_correct(D, theta, keep_m, GT, c, psi, d, V, shrink, X, wz, wm)
        return correct

    def weights(self, theta, beta, beta_new, flow):
        """Per-coordinate weights of the error norm: an error `dz` in `z` (`dm` in `m`) counts as
        `max(|d beta/d z| / (atol + rtol max|beta|), 1 / rtol) |dz|`: within tolerance in `beta` and in
        `log u`, `log v` (without the second, errors in the exponents of still-small coordinates,
        invisible in `beta`, would shift the times at which they grow). On the squares model (the only
        one in these coordinates) `d beta/d z = u^2 + v^2`, `d beta/d m = 2 beta`; `beta` and
        `beta_new` are those of the step's start and of `theta`."""
        B, d = beta.shape
        wz, wm = np.empty((B, d)), np.empty((B, d if self.drift else 0))
        _dual_weights(theta, beta, beta_new, flow.atol, flow.rtol, wz, wm)
        return wz, wm

    def norm(self, dy, w):
        """The weighted max norm of a change `dy` of the state (1: at the tolerance), (B,)."""
        return _dual_norm(dy, self.problem.X, w[0], w[1])

    def dbeta(self, theta, dy):
        nu, m = self._split(dy)
        Qz, Qm, _ = self._Q(theta)
        out = Qz * self._XT(nu)
        if self.drift:
            out += Qm * m
        return out


class _Mirror(_Coordinates):
    """Coordinates `w = (m, z) = (log(u v)/2, log(u/v))` of positive parameters, flattened to (B, 2d)."""

    per_run = _Coordinates.per_run + ("m0",)

    def __init__(self, problem, model, theta):
        self.problem, self.model = problem, model
        self.m_cols = (0, problem.d)
        self.m0 = self.log_alpha(self.y0(theta))

    @staticmethod
    def y0(theta):
        lu, lv = np.log(theta[:, 0]), np.log(theta[:, 1])
        return np.concatenate([(lu + lv) / 2, lu - lv], axis=1)

    def theta(self, y):
        d = self.problem.d
        m, z = y[:, :d], y[:, d:]
        return np.exp(np.stack([m + z / 2, m - z / 2], axis=1))

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

    def jacobian(self, theta, stiff):
        """The Gauss-Newton Jacobian of GR with `gamma = stiff` in `w` (`_low_rank`)."""
        J = self.model.jac(theta)
        return _low_rank(self.problem, self._w(theta, J), self._Q(theta, J), stiff)

    def weights(self, theta, beta, beta_new, flow):
        """Weights of the error norm: a change `dw` counts as `max(|d beta/d w| / (atol + rtol max|beta|),
        1 / rtol) |dw|`, within tolerance in `beta` and in `log u`, `log v`."""
        big = np.maximum(np.abs(beta).max(axis=1), np.abs(beta_new).max(axis=1))
        scale = (1 / (flow.atol + flow.rtol * big))[:, None]
        return (np.maximum(np.abs(self._Q(theta, self.model.jac(theta))) * scale, 1 / flow.rtol),)

    def dbeta(self, theta, dy):
        d = self.problem.d
        q = self._Q(theta, self.model.jac(theta)) * dy
        return q[:, :d] + q[:, d:]


class _Plain(_Coordinates):
    """Plain coordinates `y = theta`, flattened to (B, 2d)."""

    def __init__(self, problem, model):
        self.problem, self.model = problem, model

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

    def jacobian(self, theta, stiff):
        """The Gauss-Newton Jacobian of GR with `gamma = stiff` in `theta` (`_low_rank`)."""
        J = self.model.jac(theta).reshape(theta.shape[0], -1)
        return _low_rank(self.problem, J, J, stiff)

    def weights(self, theta, beta, beta_new, flow):
        """Weights of the error norm: a change `dtheta` counts as `max(|d beta/d theta| / (atol + rtol
        max|beta|), 1 / (atol + rtol max|theta|)) |dtheta|`."""
        big = np.maximum(np.abs(beta).max(axis=1), np.abs(beta_new).max(axis=1))
        scale = (1 / (flow.atol + flow.rtol * big))[:, None]
        own = (1 / (flow.atol + flow.rtol * np.abs(theta).max(axis=(1, 2))))[:, None]
        return (np.maximum(np.abs(self.model.jac(theta).reshape(theta.shape[0], -1)) * scale, own),)

    def dbeta(self, theta, dy):
        d = self.problem.d
        q = self.model.jac(theta).reshape(theta.shape[0], -1) * dy
        return q[:, :d] + q[:, d:]


def _eig(problem, s, gamma):
    """`K = X diag(s) X^T / n` per run (`s >= 0`: symmetric positive semi-definite) as its
    eigendecomposition, `{"lam", "V", "gamma", "mu"}` with GR's `gamma` (B,) and the eigenvalues
    `mu = lam + gamma lam^2` of `K + gamma K^2`."""
    X, n = problem.X, problem.n
    B, d = s.shape
    s = s / n
    if X.shape[0] == 1:  # one GEMM (B n, d) x (d, n) rather than B small ones
        K = ((X[0] * s[:, None, :]).reshape(B * n, d) @ X[0].T).reshape(B, n, n)
    else:
        K = np.matmul(X * s[:, None, :], np.swapaxes(X, 1, 2))
    lam, V = np.linalg.eigh(K)
    gamma = np.array(gamma, float)
    return {"lam": lam, "V": V, "gamma": gamma, "mu": lam * (1 + gamma[:, None] * lam)}


def _low_rank(problem, P, Q, gamma):
    """The Gauss-Newton Jacobian of gradient regularization in coordinates `w` (B, 2d), per run.

    With `penalty (gamma/2) ||grad L||^2`, `D ~ J^T (A + gamma A S A) beta + ...`, `A = X^T X / n`,
    `S = diag(s)`, `s = Q . P` per coordinate (`P = d w'/d(-g)`, `Q = d beta/d w`, flattened over the
    two halves of `w`; `s = |d beta/d theta|^2 >= 0`), so `J ~ -P X^T (I + gamma K) X Q / n` with
    `K = X S X^T / n`: kept as `P`, `Q` and the eigendecomposition of `K`."""
    d = problem.d
    return dict(_eig(problem, P[:, :d] * Q[:, :d] + P[:, d:] * Q[:, d:], gamma), P=P, Q=Q)


def _low_rank_solver(problem, jac, c):
    """`r -> (I - c J)^{-1} r` for `J` of `_low_rank`, by Woodbury: `r - c P X^T N^{-1} (I + gamma K)
    X (Q r) / n`, `N = I + c (K + gamma K^2)`, `N^{-1} (I + gamma K) = V diag((1 + gamma lam) /
    (1 + c (lam + gamma lam^2))) V^T`: no factorization when `c` changes."""
    d, lam, V, P, Q = problem.d, jac["lam"], jac["V"], jac["P"], jac["Q"]
    mult = _shrink(c, jac["mu"])
    mult *= 1 + jac["gamma"][:, None] * lam
    cc = c[:, None]

    def solve(r):
        q = Q * r
        x = problem.apply(q[:, :d] + q[:, d:])
        y = np.matmul(V, (np.matmul(x[:, None, :], V)[:, 0] * mult)[..., None])[..., 0]
        return r - cc * P * np.tile(problem.XT(y), 2)
    return solve
