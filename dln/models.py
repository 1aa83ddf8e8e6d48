"""Parametrizations `beta = f(u, v)` of a diagonal linear network, elementwise.

Parameters are `theta = (u, v)` stacked as an array of shape (B, 2, d).
Each model gives the map, its Jacobian-vector and vector-Jacobian products and
the curvature term of the Hessian, so that for `L(theta) = L(beta(theta))`

    grad_theta L = J^T g,         J = d beta / d theta,
    H w = J^T (X^T X / n) J w + sum_i g_i (d^2 beta_i / d theta^2) w,

with `g = X^T (X beta - y) / n`. No autodiff is needed.
"""
from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._checks import InputError, positive, scale_range


#: `(d beta/du, d beta/dv) / (u, v) = (2, -2)` for the squares model, shape (2, 1)
_JAC2 = np.array([[2.0], [-2.0]])


#: the largest depth `D`: `alpha**D` stays in floating-point range for alpha in [1e-3, 1e3]
MAX_DEPTH = 100


@dataclass(frozen=True)
class Depth:
    """`beta = u**D - v**D`, initialised at `u = v = alpha` (Woodworth et al. 2020).

    `D = 2` is the default squares model `beta = u*u - v*v`.
    """

    depth: int = 2

    #: positive parameters: flows run in the mirror coordinates `log(u v)/2, log(u / v)`
    positive = True

    def __post_init__(self):
        if (not isinstance(self.depth, (int, np.integer)) or isinstance(self.depth, bool)
                or not 2 <= self.depth <= MAX_DEPTH):
            raise InputError(f"`depth` must be an integer with 2 <= depth <= {MAX_DEPTH} (u**depth leaves the "
                             f"floating-point range beyond it unless alpha is near 1); got {self.depth!r}")

    def beta(self, theta):
        """`beta = u**D - v**D`, shape (B, d) (one fused pass over theta)."""
        return _kernels.depth_beta(theta, self.depth)

    def vjp(self, theta, g):
        """`J^T g = (D u**(D-1) g, -D v**(D-1) g)`, shape (B, 2, d), for `g` of shape (B, d)."""
        return _kernels.depth_vjp(theta, g, self.depth)

    def vjp_step(self, theta, g, eta, store=True, overwrite=False):
        """`(J^T g, theta - eta J^T g, beta(theta - eta J^T g))` in one pass (`vjp`, then `descend`);
        without `store`, `J^T g` is not kept (None); the new state written over `theta` (the caller's
        own array) where `overwrite`."""
        return _kernels.depth_vjp_step(theta, g, eta, self.depth, store, overwrite)

    def steps(self, theta, beta, r, loss, XT, Xn, y, eta, m, lo, hi, ascent=None, c=None):
        """Up to `m` steps of GD (or F-GR with `ascent`, `c`) in one call, in place (`_kernels.depth_steps`)."""
        return _kernels.depth_steps(theta, beta, r, loss, XT, Xn, y, eta, m, lo, hi, self.depth, ascent, c)

    def gr_direction(self, theta, r, XT, Xn, gamma):
        """`(g, G, G + gamma H G)` from the residual `r`, in one call (`_kernels.depth_gr_direction`)."""
        return _kernels.depth_gr_direction(theta, r, XT, Xn, gamma, self.depth)

    def jvp(self, theta, w):
        """`J w = D (u**(D-1) w_u - v**(D-1) w_v)`, shape (B, d), for `w` of shape (B, 2, d)."""
        return _kernels.depth_jvp(theta, w, self.depth)

    def hvp(self, theta, g, w, q, gamma=None):
        """`J^T q + sum_i g_i (d^2 beta_i/d theta^2) w`, shape (B, 2, d): the Hessian-vector product
        `H w` given `q = (X^T X / n) J w`, or `w + gamma H w` with `gamma` (B,) (one fused pass)."""
        return _kernels.depth_hvp(theta, g, w, q, self.depth, gamma)

    def vjp_mix(self, theta, g, G, c):
        """`(J^T g - G) c + G` for `c` of shape (B,), in one pass, `J^T g` not stored (`vjp`, then `mix`)."""
        return _kernels.depth_vjp_mix(theta, g, G, c, self.depth)

    def shifted_beta(self, theta, g, eta):
        """`beta(theta - eta J^T g)`, shape (B, d), in one pass that stores neither `J^T g` nor the state."""
        return _kernels.depth_shifted_beta(theta, g, eta, self.depth)

    def fgr_step(self, theta, g, gs, ascent, c, eta, overwrite=False):
        """F-GR's step `theta - eta [G + c (J_s^T g_s - G)]` and its `beta` in one pass (`G = J^T g`, `J_s`
        at `theta - ascent G`), written over `theta` where `overwrite`; bit for bit `vjp_step`, `vjp_mix`,
        `descend`."""
        return _kernels.depth_fgr_step(theta, g, gs, ascent, c, eta, self.depth, overwrite)

    def descend(self, theta, D, eta, overwrite=True):
        """`theta' = theta - eta D` for `eta` of shape (B,), and `beta(theta')`, in one pass, `theta'`
        written over `D` (the caller's own array) unless not `overwrite`. Returns shapes (B, 2, d) and (B, d)."""
        return _kernels.depth_descend(theta, D, eta, self.depth, overwrite)

    def jac(self, theta):
        """Diagonal Jacobian `(d beta/du, d beta/dv) = (D u**(D-1), -D v**(D-1))`, shape (B, 2, d)."""
        D = self.depth
        if D == 2:  # one pass, a fresh array (Objective.grad scales it in place)
            return theta * _JAC2
        return np.stack([D * theta[:, 0] ** (D - 1), -D * theta[:, 1] ** (D - 1)], axis=1)

    def curvature(self, theta, g, w):
        """`sum_i g_i (d^2 beta_i/d theta^2) w = g * (D(D-1) u**(D-2) w_u, -D(D-1) v**(D-2) w_v)`."""
        D = self.depth
        c = D * (D - 1) * g[:, None, :]
        if D == 2:
            return c * w * np.array([1.0, -1.0])[:, None]
        return c * w * np.stack([theta[:, 0] ** (D - 2), -theta[:, 1] ** (D - 2)], axis=1)

    def init(self, alpha, d):
        """`u = v = alpha`; `alpha` of shape (B,) or (B, d). Returns shape (B, 2, d)."""
        a = np.broadcast_to(alpha[:, None] if alpha.ndim == 1 else alpha, (alpha.shape[0], d))
        return np.stack([a, a], axis=1).astype(float)

    def alpha_eff(self, theta):
        """Effective initialization, shape (B, d).

        `D = 2`: `alpha_eff = sqrt(u v)` (docs/theory.md); NaN where a discrete step
        made `u v < 0` (a step with `2 eta |g| > 1`), where it is undefined. `D > 2`: the value of
        `alpha` that the gradient-flow invariant `u**(2-D) + v**(2-D) = 2 alpha**(2-D)`
        assigns to the current state; it tends to `sqrt(u v)` as `D -> 2`.
        """
        if self.depth == 2:
            return _kernels.alpha_eff2(theta)
        u, v = theta[:, 0], theta[:, 1]
        k = 2 - self.depth
        return ((u**k + v**k) / 2) ** (1 / k)

    def check_init(self, theta0):
        """`theta0` within `ALPHA_RANGE`, as `alpha` (`u`, `v` positive)."""
        scale_range(positive(theta0, "theta0"), "theta0")


def Squares():
    """`beta = u*u - v*v`: the default model, `Depth(2)`."""
    return Depth(2)


@dataclass(frozen=True)
class Product:
    """`beta = u * v` with an arbitrary initialization `(u0, v0)` per coordinate.

    `init(alpha)` gives `u0 = alpha, v0 = 0` (the SAM literature, Andriushchenko &
    Flammarion 2022); pass `theta0` to `run` for other, e.g. unbalanced, inits.
    """

    positive = False

    def beta(self, theta):
        """`beta = u v`."""
        return theta[:, 0] * theta[:, 1]

    def jac(self, theta):
        """`(d beta/du, d beta/dv) = (v, u)`."""
        return theta[:, ::-1]

    def vjp(self, theta, g):
        """`J^T g = (v g, u g)`, shape (B, 2, d)."""
        return theta[:, ::-1] * g[:, None, :]

    def vjp_step(self, theta, g, eta, store=True, overwrite=False):
        """`(J^T g, theta - eta J^T g, beta(theta - eta J^T g))` (`J^T g` formed whatever `store`; the new
        state in a new array whatever `overwrite`)."""
        G = self.vjp(theta, g)
        return (G, *self.descend(theta, G, eta, overwrite=False))

    def vjp_mix(self, theta, g, G, c):
        """`(J^T g - G) c + G` for `c` of shape (B,)."""
        return _kernels.mix(self.vjp(theta, g), G, c)

    def shifted_beta(self, theta, g, eta):
        """`beta(theta - eta J^T g)`, shape (B, d)."""
        return self.vjp_step(theta, g, eta)[2]

    def fgr_step(self, theta, g, gs, ascent, c, eta, overwrite=False):
        """F-GR's step `theta - eta [G + c (J_s^T g_s - G)]` and its `beta` (`G = J^T g`, `J_s` at
        `theta - ascent G`; a new array whatever `overwrite`)."""
        G = self.vjp(theta, g)
        shifted = theta - ascent[:, None, None] * G
        return self.descend(theta, self.vjp_mix(shifted, gs, G, c), eta)

    def jvp(self, theta, w):
        """`J w = v w_u + u w_v`, shape (B, d)."""
        return np.einsum("bkd,bkd->bd", theta[:, ::-1], w)

    def hvp(self, theta, g, w, q, gamma=None):
        """`H w = J^T q + sum_i g_i (d^2 beta_i/d theta^2) w = (v q + g w_v, u q + g w_u)` given
        `q = (X^T X / n) J w`, or `w + gamma H w` with `gamma` (B,)."""
        h = self.vjp(theta, q) + self.curvature(theta, g, w)
        if gamma is not None:
            h *= gamma[:, None, None]
            h += w
        return h

    def descend(self, theta, D, eta, overwrite=True):
        """`theta' = theta - eta D` for `eta` of shape (B,), and `beta(theta')`; `D` is the caller's own
        array, scaled in place where `overwrite`."""
        if overwrite:
            D *= eta[:, None, None]
        else:
            D = eta[:, None, None] * D
        theta = theta - D
        return theta, self.beta(theta)

    def curvature(self, theta, g, w):
        """`sum_i g_i (d^2 beta_i/d theta^2) w = g * (w_v, w_u)`."""
        return g[:, None, :] * w[:, ::-1]

    def init(self, alpha, d):
        """`u = alpha, v = 0`; returns shape (B, 2, d)."""
        a = np.broadcast_to(alpha[:, None] if alpha.ndim == 1 else alpha, (alpha.shape[0], d))
        return np.stack([a, np.zeros_like(a)], axis=1).astype(float)

    def alpha_eff(self, theta):
        """Undefined for the product model (`u v` changes sign): None."""
        return None

    def check_init(self, theta0):
        """`|theta0|` at most `ALPHA_RANGE[1]`, as `alpha` (0 and negative entries allowed)."""
        scale_range(theta0, "theta0", magnitude=True)


MODELS = {"squares": Squares, "depth": Depth, "product": Product}
