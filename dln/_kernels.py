"""Fused elementwise kernels of the depth model `beta = u**D - v**D` (numba, one memory pass each).

A discrete step is two matrix products (`X beta` and `X^T r`) and a few
elementwise passes over `theta` of shape (B, 2, d). NumPy makes one pass and
one temporary per operation; these kernels read `theta` once per quantity:

- `depth_beta`: `beta = u**D - v**D`;
- `depth_vjp`: `J^T g = (D u**(D-1) g, -D v**(D-1) g)`;
- `depth_descend`: `theta - eta D` and its `beta` in the same pass, so the
  next step's `beta` costs no pass of its own;
- `depth_vjp_step`, `depth_fgr_step`: GD's and F-GR's discrete steps and the new `beta`, one loop per
  run, written over the state they read where the caller owns it (the stepper's state);
  `depth_steps`: up to `m` such steps with their matrix products and losses in one call, stopped where a
  loss leaves the band in which the driver has nothing to do (a step's Python work, ~10 us, costs more
  than its arithmetic at B = 1 and 5-15% of it at B = 256);
  `depth_shifted_beta`: the `beta` of F-GR's shifted point, the shifted state not stored;
- `residual_loss`: `r = X beta - y` in place and `L = ||r||^2 / (2n)`;
- `alpha_eff2`: the squares model's `sqrt(u v)` (the driver's collapse test reads it every 32 steps),
  and `any_below`, that test's comparison with the initial scale;
- `mix`: F-GR's `G + c (D - G)` in place over `D`, where NumPy makes three passes.
- `depth_jvp`, `depth_hvp`: the two elementwise halves of the Hessian-vector product (exact GR)
  around its matrix products, `J w` and `J^T q + sum_i g_i (d^2 beta_i / d theta^2) w`;
  `depth_gr_direction`: GR's whole direction with its products in one call.
- `quadratic_moments`, `ascent_residuals`, `combine`: the elementwise passes of per-example
  sharpness (`MSharpness(base, 1)` on a quadratic model) around its matrix products.

Compiled on first use and cached on disk (`cache=True`): a later process
loads them in milliseconds. `x**k` is formed by repeated products, so for the
squares model (`D = 2`) every value is bit for bit the NumPy expression
(`x**2` is `x * x` there too). Inner loops run over contiguous rows and do
not branch, so that LLVM vectorizes them.
"""
import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _pow(x, k):
    """`x**k` for an integer `k >= 1` by repeated products (`x**2` is `x * x`, as in NumPy)."""
    r = x
    for _ in range(k - 1):
        r *= x
    return r


@_jit
def _beta_row(u, v, depth, beta):
    if depth == 2:
        for i in range(beta.size):
            beta[i] = u[i] * u[i] - v[i] * v[i]
    else:
        for i in range(beta.size):
            beta[i] = _pow(u[i], depth) - _pow(v[i], depth)


@_jit
def _beta_into(theta, depth, beta):
    for b in range(theta.shape[0]):
        _beta_row(theta[b, 0], theta[b, 1], depth, beta[b])


@_jit
def _vjp_row(t, gb, depth, sign, o):
    """`o = sign D g t**(D-1)`: the `u` (sign 1) or `v` (sign -1) half of `J^T g` of one run."""
    if depth == 2:
        s = 2.0 * sign
        for i in range(t.size):
            o[i] = s * gb[i] * t[i]
    else:
        sd = depth * sign
        for i in range(t.size):
            o[i] = sd * gb[i] * _pow(t[i], depth - 1)


@_jit
def _vjp_into(theta, g, depth, out):
    for b in range(theta.shape[0]):
        _vjp_row(theta[b, 0], g[b], depth, 1.0, out[b, 0])
        _vjp_row(theta[b, 1], g[b], depth, -1.0, out[b, 1])


@_jit
def _vjp_step_over(step, g, depth, eta, out, beta):
    # J^T g into `out` (unless it has no rows), then `theta - eta J^T g` over `step` (which holds theta) and
    # its beta, u and v of a coordinate in one loop: the state read and written through one array (into a
    # second one, LLVM vectorized only behind aliasing checks: ~1.3x the time), no pass of its own for
    # beta (~10% faster than three loops per row), and every entry indexed in the 3-d array (row views
    # bound once per run: ~1.15x the time at (256, 200))
    B, _, d = step.shape
    store = out.shape[0] > 0
    for b in range(B):
        e = eta[b]
        if store:
            _vjp_row(step[b, 0], g[b], depth, 1.0, out[b, 0])
            _vjp_row(step[b, 1], g[b], depth, -1.0, out[b, 1])
        if depth == 2:
            for i in range(d):
                u, v, gi = step[b, 0, i], step[b, 1, i], g[b, i]
                x = u - e * (2.0 * gi * u)
                y = v - e * (-2.0 * gi * v)
                step[b, 0, i] = x
                step[b, 1, i] = y
                beta[b, i] = x * x - y * y
        else:
            for i in range(d):
                u, v, gi = step[b, 0, i], step[b, 1, i], g[b, i]
                x = u - e * (depth * gi * _pow(u, depth - 1))
                y = v - e * (-depth * gi * _pow(v, depth - 1))
                step[b, 0, i] = x
                step[b, 1, i] = y
                beta[b, i] = _pow(x, depth) - _pow(y, depth)


@_jit
def _shifted_beta_into(theta, g, depth, eta, beta):
    # beta(theta - eta J^T g), the state not stored: u and v of a coordinate in one loop, rounded as
    # `_vjp_step_over` rounds them
    B, _, d = theta.shape
    for b in range(B):
        gb, e = g[b], eta[b]
        u, v, o = theta[b, 0], theta[b, 1], beta[b]
        if depth == 2:
            for i in range(d):
                x = u[i] - e * (2.0 * gb[i] * u[i])
                y = v[i] - e * (-2.0 * gb[i] * v[i])
                o[i] = x * x - y * y
        else:
            for i in range(d):
                x = u[i] - e * (depth * gb[i] * _pow(u[i], depth - 1))
                y = v[i] - e * (-depth * gb[i] * _pow(v[i], depth - 1))
                o[i] = _pow(x, depth) - _pow(y, depth)


@_jit
def _fgr_step_over(step, g, gs, depth, ascent, c, eta, beta):
    # F-GR's step theta - eta [G + c (J_s^T g_s - G)] over `step` (which holds theta) and its beta, one loop
    # per run as `_vjp_step_over`, G = J^T g and the shifted state theta_s = theta - ascent G formed again,
    # the rounding of `_vjp_step_over` (theta_s), `_vjp_mix_into` (the bracket) and `_descend_over` (the step)
    B, _, d = step.shape
    for b in range(B):
        gb, hb, cb, e, f = g[b], gs[b], c[b], eta[b], ascent[b]
        u, v, bb = step[b, 0], step[b, 1], beta[b]
        if depth == 2:
            for i in range(d):
                xu = 2.0 * gb[i] * u[i]
                xv = -2.0 * gb[i] * v[i]
                x = u[i] - e * ((2.0 * hb[i] * (u[i] - f * xu) - xu) * cb + xu)
                y = v[i] - e * ((-2.0 * hb[i] * (v[i] - f * xv) - xv) * cb + xv)
                u[i] = x
                v[i] = y
                bb[i] = x * x - y * y
        else:
            for i in range(d):
                xu = depth * gb[i] * _pow(u[i], depth - 1)
                xv = -depth * gb[i] * _pow(v[i], depth - 1)
                x = u[i] - e * ((depth * hb[i] * _pow(u[i] - f * xu, depth - 1) - xu) * cb + xu)
                y = v[i] - e * ((-depth * hb[i] * _pow(v[i] - f * xv, depth - 1) - xv) * cb + xv)
                u[i] = x
                v[i] = y
                bb[i] = _pow(x, depth) - _pow(y, depth)


@_jit
def _steps_over(theta, beta, r, loss, XT, Xn, y, depth, eta, ascent, c, m, lo, hi):
    # up to m steps of GD (c empty) or F-GR over theta, beta, r and loss, each as the steppers' one-step path
    # forms it (`depth_vjp_step`, or `depth_shifted_beta` then `depth_fgr_step`, the products on one problem),
    # then the new loss; stops after a step whose loss leaves (lo, hi] for some run. Returns the steps taken.
    B, _, d = theta.shape
    none = np.empty((0, 2, d))
    f = B if c.size else 0  # F-GR's shifted point (none for GD)
    g, bs, rs, ls, gs = np.empty((B, d)), np.empty((f, d)), np.empty((f, r.shape[1])), np.empty(f), np.empty((f, d))
    for s in range(m):
        np.dot(r, Xn, g)
        if c.size:
            _shifted_beta_into(theta, g, depth, ascent, bs)
            np.dot(bs, XT, rs)
            _residual_loss_into(rs, y, ls)
            np.dot(rs, Xn, gs)
            _fgr_step_over(theta, g, gs, depth, ascent, c, eta, beta)
        else:
            _vjp_step_over(theta, g, depth, eta, none, beta)
        np.dot(beta, XT, r)
        _residual_loss_into(r, y, loss)
        if not _within(loss, lo, hi):
            return s + 1
    return m


@_jit
def _vjp_mix_into(theta, g, depth, G, c, out):
    # (J^T g - G) c + G into `out`, one pass; J^T g as `_vjp_into` forms it
    B, _, d = theta.shape
    for b in range(B):
        gb, cb = g[b], c[b]
        for k in range(2):
            s = 2.0 if k == 0 else -2.0
            t, o, Gk = theta[b, k], out[b, k], G[b, k]
            if depth == 2:
                for i in range(d):
                    o[i] = (s * gb[i] * t[i] - Gk[i]) * cb + Gk[i]
            else:
                sd = depth if k == 0 else -depth
                for i in range(d):
                    o[i] = (sd * gb[i] * _pow(t[i], depth - 1) - Gk[i]) * cb + Gk[i]


@_jit
def _descend_over(theta, D, eta, depth, beta):
    # `D` is written over: one array argument for both, so LLVM needs no aliasing check between an
    # input and an output of the same pass (with `out is D` passed twice the loop ran 1.7x slower)
    B, _, d = theta.shape
    for b in range(B):
        e = eta[b]
        for k in range(2):
            tk, Dk = theta[b, k], D[b, k]
            for i in range(d):
                Dk[i] = tk[i] - e * Dk[i]
        _beta_row(D[b, 0], D[b, 1], depth, beta[b])


@_jit
def _descend_into(theta, D, eta, depth, out, beta):
    B, _, d = theta.shape
    for b in range(B):
        e = eta[b]
        for k in range(2):
            tk, Dk, ok = theta[b, k], D[b, k], out[b, k]
            for i in range(d):
                ok[i] = tk[i] - e * Dk[i]
        _beta_row(out[b, 0], out[b, 1], depth, beta[b])


@_jit
def _mix_over(D, G, c):
    B, _, d = D.shape
    for b in range(B):
        cb = c[b]
        for k in range(2):
            Dk, Gk = D[b, k], G[b, k]
            for i in range(d):
                Dk[i] = (Dk[i] - Gk[i]) * cb + Gk[i]


@_jit
def _residual_loss_into(r, y, loss):
    B, n = r.shape
    for b in range(B):
        yb = y[b if y.shape[0] > 1 else 0]
        s = 0.0
        for j in range(n):
            x = r[b, j] - yb[j]
            r[b, j] = x
            s += x * x
        loss[b] = 0.5 * s / n


@_jit
def _alpha_eff2_into(theta, out):
    for b in range(theta.shape[0]):
        u, v, ob = theta[b, 0], theta[b, 1], out[b]
        for i in range(ob.size):
            uv = u[i] * v[i]
            ob[i] = np.sqrt(uv) if uv >= 0 else np.nan


@_jit
def _within(L, lo, hi):
    for b in range(L.size):
        if not (L[b] > lo[b] and L[b] <= hi[b]):
            return False
    return True


def within(L, lo, hi):
    """Whether `lo < L <= hi` holds for every entry (all of shape (B,)): `((L > lo) & (L <= hi)).all()`
    without its three temporaries and reduction (the driver asks it every step)."""
    return _within(L, lo, hi)


@_jit
def _any_below(a, ref, c, out):
    # a count, not an early exit: the loop has no branch and vectorizes (2.5x faster where no entry is below)
    for b in range(a.shape[0]):
        ab, rb = a[b], ref[b]
        hits = 0
        for i in range(ab.size):
            hits += ab[i] < c * rb[i]
        out[b] = hits > 0


def any_below(a, ref, c):
    """Per row, whether some entry has `a < c ref` (`a`, `ref` of shape (B, d)), shape (B,): the driver's
    collapse test `np.any(a / ref < c, axis=1)` (NaN compares false in both) without its quotient, mask
    and reduction passes."""
    out = np.empty(a.shape[0], bool)
    _any_below(_c(a), _c(ref), float(c), out)
    return out


def _c(a):
    return np.ascontiguousarray(a, dtype=float)


#: an optional per-run vector left out (a kernel tests for rows)
_NONE = np.empty(0)


def depth_beta(theta, depth):
    """`beta = u**D - v**D` for `theta` of shape (B, 2, d); returns shape (B, d)."""
    beta = np.empty((theta.shape[0], theta.shape[2]))
    _beta_into(_c(theta), depth, beta)
    return beta


def depth_vjp(theta, g, depth):
    """`J^T g = (D u**(D-1) g, -D v**(D-1) g)`, shape (B, 2, d), for `g` of shape (B, d)."""
    out = np.empty(theta.shape)
    _vjp_into(_c(theta), _c(g), depth, out)
    return out


@_jit
def _jvp_into(theta, w, depth, out):
    # J w = D (u**(D-1) w_u - v**(D-1) w_v) per coordinate
    B, _, d = theta.shape
    for b in range(B):
        u, v, wu, wv, o = theta[b, 0], theta[b, 1], w[b, 0], w[b, 1], out[b]
        if depth == 2:
            for i in range(d):
                o[i] = 2.0 * (u[i] * wu[i] - v[i] * wv[i])
        else:
            for i in range(d):
                o[i] = depth * (_pow(u[i], depth - 1) * wu[i] - _pow(v[i], depth - 1) * wv[i])


@_jit
def _hvp_into(theta, g, w, q, depth, gamma, out):
    # h = J^T q + g D (D-1) (u**(D-2) w_u, -v**(D-2) w_v), or h gamma + w where gamma has rows
    B, _, d = theta.shape
    c = depth * (depth - 1.0)
    add = gamma.shape[0] > 0
    for b in range(B):
        gm = gamma[b] if add else 1.0
        for k in range(2):
            s = 1.0 if k == 0 else -1.0
            t, wk, o, gb, qb = theta[b, k], w[b, k], out[b, k], g[b], q[b]
            if depth == 2:
                for i in range(d):
                    o[i] = s * (2.0 * t[i] * qb[i] + c * gb[i] * wk[i])
            else:
                for i in range(d):
                    o[i] = s * (depth * _pow(t[i], depth - 1) * qb[i] + c * gb[i] * _pow(t[i], depth - 2) * wk[i])
            if add:
                for i in range(d):
                    o[i] = o[i] * gm + wk[i]


@_jit
def _gr_direction(theta, r, XT, Xn, depth, gamma):
    # g = X^T r / n, G = J^T g, q = X^T X J G / n, D = G + gamma H G, as `depth_vjp`, `depth_jvp`, the two products
    # of `Objective.hvp` and `depth_hvp` form them
    B, _, d = theta.shape
    g = np.dot(r, Xn)
    G, w, D = np.empty((B, 2, d)), np.empty((B, d)), np.empty((B, 2, d))
    _vjp_into(theta, g, depth, G)
    _jvp_into(theta, G, depth, w)
    q = np.dot(np.dot(w, XT), Xn)
    _hvp_into(theta, g, G, q, depth, gamma, D)
    return g, G, D


def depth_gr_direction(theta, r, XT, Xn, gamma, depth):
    """GR's direction `D = G + gamma H G` (`G = J^T g`, `g = X^T r / n`, `H G = J^T (X^T X / n) J G + sum_i g_i
    (d^2 beta_i / d theta^2) G`) from the residual `r` (B, n) on one problem (`XT = X^T`, `Xn = X / n`), `gamma`
    (B,), in one call: bit for bit `depth_vjp`, `depth_jvp`, the products and `depth_hvp`. Returns `(g, G, D)`."""
    return _gr_direction(_c(theta), _c(r), XT, Xn, depth, _c(gamma))


def depth_jvp(theta, w, depth):
    """`J w = D (u**(D-1) w_u - v**(D-1) w_v)`, shape (B, d), for `w` of shape (B, 2, d)."""
    out = np.empty((theta.shape[0], theta.shape[2]))
    _jvp_into(_c(theta), _c(w), depth, out)
    return out


def depth_hvp(theta, g, w, q, depth, gamma=None):
    """`h = J^T q + sum_i g_i (d^2 beta_i / d theta^2) w = (D u**(D-1) q + D (D-1) g u**(D-2) w_u,
    -D v**(D-1) q - D (D-1) g v**(D-2) w_v)`, shape (B, 2, d), for `g`, `q` of shape (B, d); with
    `gamma` (B,), `w + gamma h` in the same pass (rounded as `h gamma + w`)."""
    out = np.empty(theta.shape)
    _hvp_into(_c(theta), _c(g), _c(w), _c(q), depth, _NONE if gamma is None else _c(gamma), out)
    return out


def _own(a, overwrite=True):
    """The array a kernel writes its result over: `a` itself where `overwrite` and `a` is a writeable
    contiguous float array (the caller's own), else a copy of it (one copy, also where `a` needed
    converting)."""
    c = _c(a)
    return c if (overwrite or c is not a) and c.flags.writeable else c.copy()


def depth_vjp_step(theta, g, eta, depth, store=True, overwrite=False):
    """`J^T g` (as `depth_vjp`), `theta' = theta - eta J^T g` (`eta` of shape (B,)) and `beta(theta')`,
    in one pass (`theta'` as `depth_descend` forms it), `theta'` written over `theta` where `overwrite`.
    Returns shapes (B, 2, d), (B, 2, d), (B, d); without `store`, `J^T g` is not written (None for it):
    gradient descent's step."""
    B, _, d = theta.shape
    out = np.empty(theta.shape if store else (0, 2, d))
    step, beta = _own(theta, overwrite), np.empty((B, d))
    _vjp_step_over(step, _c(g), depth, _c(eta), out, beta)
    return (out if store else None), step, beta


def depth_shifted_beta(theta, g, eta, depth):
    """`beta(theta - eta J^T g)` (`eta` of shape (B,)), shape (B, d), in one pass that stores neither the
    state nor `J^T g` (F-GR's shifted point), rounded as `depth_vjp_step`."""
    beta = np.empty((theta.shape[0], theta.shape[2]))
    _shifted_beta_into(_c(theta), _c(g), depth, _c(eta), beta)
    return beta


def depth_fgr_step(theta, g, gs, ascent, c, eta, depth, overwrite=False):
    """F-GR's discrete step `theta' = theta - eta [G + c (J_s^T g_s - G)]` and `beta(theta')`, one pass:
    `G = J^T g`, `J_s` at `theta_s = theta - ascent G`, `g_s` the gradient there; `ascent`, `c`, `eta` of
    shape (B,); `theta'` written over `theta` where `overwrite`. Bit for bit `depth_vjp_step`,
    `depth_vjp_mix`, then `depth_descend`. Returns shapes (B, 2, d), (B, d)."""
    step, beta = _own(theta, overwrite), np.empty((theta.shape[0], theta.shape[2]))
    _fgr_step_over(step, _c(g), _c(gs), depth, _c(ascent), _c(c), _c(eta), beta)
    return step, beta


def depth_steps(theta, beta, r, loss, XT, Xn, y, eta, m, lo, hi, depth, ascent=None, c=None):
    """Up to `m` discrete steps of GD, `theta <- theta - eta J^T g`, or with `ascent` and `c` (B,) of F-GR,
    `theta <- theta - eta [G + c (J_s^T g_s - G)]` (as `depth_fgr_step`), on one problem (`XT = X^T`, `Xn = X / n`,
    contiguous), in one call: `theta`, its `beta`, residual `r = X beta - y` and `loss` (B,) are updated in place,
    step by step, and the steps stop after the first whose new loss leaves `(lo, hi]` for some run. Each step is
    bit for bit the one-step path's (`depth_vjp_step`; `depth_shifted_beta`, `depth_fgr_step`), its matrix
    products those of BLAS. Returns the steps taken, `1 <= taken <= m`."""
    fgr = c is not None
    return _steps_over(theta, beta, r, loss, XT, Xn, _c(y), depth, _c(eta), _c(ascent) if fgr else _NONE,
                       _c(c) if fgr else _NONE, int(m), _c(lo), _c(hi))


def depth_vjp_mix(theta, g, G, c, depth):
    """`(J^T g - G) c + G`, shape (B, 2, d) (`c` of shape (B,)), with `J^T g` not stored: the rounding of
    `depth_vjp` followed by `mix`, in one pass."""
    out = np.empty(theta.shape)
    _vjp_mix_into(_c(theta), _c(g), depth, _c(G), _c(c), out)
    return out


def depth_descend(theta, D, eta, depth, overwrite=True):
    """`theta' = theta - eta D` (`eta` of shape (B,)) and `beta(theta')`, in one pass; `theta'` is
    written over `D` where `overwrite` and `D` is a writeable contiguous float array (no fresh
    (B, 2, d) array per step), else into a new array.

    Returns `(theta', beta)` of shapes (B, 2, d) and (B, d).
    """
    beta = np.empty((theta.shape[0], theta.shape[2]))
    theta, eta = _c(theta), _c(eta)
    if overwrite:
        D = _own(D)
        _descend_over(theta, D, eta, depth, beta)
        return D, beta
    out = np.empty(theta.shape)
    _descend_into(theta, _c(D), eta, depth, out, beta)
    return out, beta


def mix(D, G, c):
    """`D <- (D - G) c + G` in place (one pass; `D`, `G` of shape (B, 2, d), `c` of shape (B,)): the
    finite-difference combination of F-GR, `G + (gamma/eps) (grad L(theta + eps p) - G)`, with
    NumPy's rounding of `D -= G; D *= c; D += G`. Returns `D` (a new array where `D` was not a
    writeable contiguous float array)."""
    D = _own(D)
    _mix_over(D, _c(G), _c(c))
    return D


def alpha_eff2(theta):
    """`sqrt(u v)`, NaN where `u v < 0`, shape (B, d), for `theta` of shape (B, 2, d), in one pass."""
    out = np.empty((theta.shape[0], theta.shape[2]))
    _alpha_eff2_into(_c(theta), out)
    return out


def residual_loss(r, y):
    """`r <- r - y` in place (`r = X beta` of shape (B, n), a fresh array; `y` of shape (1, n) or
    (B, n)) and the loss `L = ||r||^2 / (2n)`, shape (B,)."""
    loss = np.empty(r.shape[0])
    _residual_loss_into(r, _c(y), loss)
    return loss


# ---- per-example (m = 1) sharpness on a model quadratic in theta (dln.stochastic.MSharpness) ----

@_jit
def _moments_into(J, K, P1, P2):
    for b in range(J.shape[0]):
        ju, jv, ku, kv, p1, p2 = J[b, 0], J[b, 1], K[b, 0], K[b, 1], P1[b], P2[b]
        for i in range(p1.size):
            p1[i] = ju[i] * ju[i] + jv[i] * jv[i]
        for i in range(p1.size):
            p2[i] = 0.5 * (ju[i] * ku[i] + jv[i] * kv[i])


@_jit
def _ascent_residuals_into(r, q1, q3, eps, c, normalized, re, w):
    B, n = r.shape
    for b in range(B):
        e, cb = eps[b], c[b]
        for k in range(n):
            rk = r[b, k]
            if normalized:
                wk = np.sqrt(q1[b, k])
                s = e * np.sign(rk) / wk if rk != 0.0 and wk > 0.0 else 0.0
            else:
                s = e * rk
            shift = s * q1[b, k] + s * s * q3[b, k]
            re[b, k] = rk + cb * shift
            w[b, k] = cb * s * (rk + shift)


@_jit
def _combine_into(J, K, a, b, out):
    for i in range(J.shape[0]):
        for k in range(2):
            jk, kk, ab, bb, o = J[i, k], K[i, k], a[i], b[i], out[i, k]
            for j in range(o.size):
                o[j] = jk[j] * ab[j] + kk[j] * bb[j]


def quadratic_moments(J, K):
    """`P1 = |J|^2 = J_u^2 + J_v^2` and `P2 = J . K / 2` per coordinate, shapes (B, d), for the Jacobian
    `J` and `K = (d^2 beta / d theta^2) J` of shape (B, 2, d), in one pass."""
    P1, P2 = np.empty((J.shape[0], J.shape[2])), np.empty((J.shape[0], J.shape[2]))
    _moments_into(J, K, P1, P2)
    return P1, P2


def ascent_residuals(r, q1, q3, eps, c, normalized):
    """Per-example ascent of `MSharpness(base, 1)` on the residuals, all of shape (B, n), in one pass.

    `s_k = eps r_k` (normalized: `eps sign(r_k) / sqrt(q1_k)`, 0 where `r_k = 0` or `q1_k = 0`),
    `r_k^+ = r_k + s_k q1_k + s_k^2 q3_k`; returns `r + c (r^+ - r)` and `c s r^+`. `eps`, `c` of shape (B,).
    """
    re, w = np.empty(r.shape), np.empty(r.shape)
    _ascent_residuals_into(r, q1, q3, _c(eps), _c(c), bool(normalized), re, w)
    return re, w


def combine(J, K, a, b):
    """`J a + K b`, shape (B, 2, d), for `J`, `K` of shape (B, 2, d) and `a`, `b` of shape (B, d), in one pass."""
    out = np.empty(J.shape)
    _combine_into(J, K, a, b, out)
    return out
