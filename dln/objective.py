"""The training objective `L(theta) = L(beta(theta))` of a model on a problem, and points of it.

`objective.at(theta)` is a `Point`: `theta` with its `beta`, residual, loss
and gradients computed once, when first asked for. The driver reads a
point's loss to decide when to stop, and hands the same point to the
algorithm's `update`, so the residual is formed once per state.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _kernels
from .problem import Problem


class Gradient(NamedTuple):
    """The loss and its gradients at one point.

    loss : ndarray, shape (B,)
        `L = ||X beta - y||^2 / (2n)`.
    theta : ndarray, shape (B, 2, d)
        `grad_theta L = J^T g`.
    beta : ndarray, shape (B, d)
        `g = X^T (X beta - y) / n`.
    """

    loss: np.ndarray
    theta: np.ndarray
    beta: np.ndarray


class _cached:
    """`functools.cached_property` without its lock (Python 3.11 takes one on every first access,
    and a `Point` is made every step): computed once, then read from the instance dict."""

    def __init__(self, f):
        self.f, self.name, self.__doc__ = f, f.__name__, f.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        v = obj.__dict__[self.name] = self.f(obj)
        return v


class Point:
    """A batch of states `theta` (B, 2, d) of `objective`, with lazily computed, cached parts
    (`theta` None: a point known by its `beta` alone, as F-GR's shifted point in a discrete step).

    beta : `beta(theta)`, (B, d)
    residual : `r = X beta - y`, (B, n)
    loss : `L = ||r||^2 / (2n)`, (B,)
    g : `X^T r / n`, (B, d)
    grad : `grad_theta L = J^T g`, (B, 2, d)
    """

    __slots__ = ("objective", "theta", "__dict__")

    def __init__(self, objective, theta, beta=None):
        self.objective = objective
        self.theta = theta
        if beta is not None:  # known already (formed in the pass that formed theta)
            self.__dict__["beta"] = beta

    @_cached
    def beta(self):
        return self.objective.model.beta(self.theta)

    @_cached
    def residual(self):
        p = self.objective.problem
        r = p.apply(self.beta)
        self.__dict__["loss"] = _kernels.residual_loss(r, p.y)  # r - y and the loss in one pass
        return r

    @_cached
    def loss(self):
        self.residual
        return self.__dict__["loss"]

    @_cached
    def g(self):
        return self.objective.problem.XT(self.residual)

    @_cached
    def grad(self):
        return self.objective.model.vjp(self.theta, self.g)

    def step(self, eta, keep=True, overwrite=False):
        """The `Point` at `theta - eta grad L` (`eta` of shape (B,)); `grad L` (cached here, unless not
        `keep`), the new state and its `beta` in one pass where `grad L` is not yet formed. With
        `overwrite`, the new state may be written over this point's `theta`, which the caller then
        drops (a stepper's own state: `Algorithm.apply`)."""
        if "grad" in self.__dict__:
            return self.objective.descend(self.theta, self.grad, eta, overwrite=False)
        G, theta, beta = self.objective.model.vjp_step(self.theta, self.g, eta, store=keep, overwrite=overwrite)
        if keep:
            self.__dict__["grad"] = G
        return Point(self.objective, theta, beta)

    def grad_mix(self, G, c):
        """`G + c (grad L - G)`, shape (B, 2, d) (`c` of shape (B,)): F-GR's combination, in the pass that
        forms `grad L`, which is not stored (unless already cached)."""
        if "grad" in self.__dict__:
            return _kernels.mix(self.grad.copy(), G, c)
        return self.objective.model.vjp_mix(self.theta, self.g, G, c)

    def fgr_step(self, eps, c, eta, overwrite=False):
        """F-GR's discrete step from this point: the `Point` at `theta - eta [G + c (grad L(theta + eps G) -
        G)]`, `G = grad L` (`eps`, `c`, `eta` of shape (B,)), in two kernel passes around the shifted
        point's matrix products (its `beta`; then the step and its `beta`), neither `G`, the shifted state
        nor the direction stored; bit for bit `step(-eps)`, `grad_mix`, then `descend`. `overwrite` as
        in `step`."""
        model = self.objective.model
        g = self.g
        gs = Point(self.objective, None, model.shifted_beta(self.theta, g, -eps)).g
        return Point(self.objective, *model.fgr_step(self.theta, g, gs, -eps, c, eta, overwrite=overwrite))

    def gr_direction(self, gamma):
        """GR's direction `G + gamma H G` (`G = grad L`, `gamma` (B,)), shape (B, 2, d): where the objective is
        `fused` and `grad L` not yet formed, in one kernel call that caches `g` and `grad`; else
        `Objective.hvp`. Bit for bit the same."""
        obj = self.objective
        if obj.fused and "grad" not in self.__dict__:
            p = obj.problem
            g, G, D = obj.model.gr_direction(self.theta, self.residual, p.X_transposed, p.Xn[0], gamma)
            self.__dict__.update(g=g, grad=G)
            return D
        return obj.hvp(self.theta, self.grad, self.g, gamma)

    def steps(self, eta, m, band, ascent=None, c=None):
        """Up to `m` discrete steps of GD from this point, or of F-GR with `ascent = -eps` (the shifted point
        `theta - ascent G`, `eps` signed as `fgr_step` takes it) and `c = gamma / eps` (B,), in one kernel call
        (`Objective.fused`): returns
        `(point, taken)`, stopped after the first step whose loss leaves `band = (lo, hi)` (B,) for some run,
        the point's residual and loss formed on the way. Each step is bit for bit `step` (`fgr_step`); the
        state is written over this point's `theta`, which the caller then drops (`overwrite`)."""
        obj = self.objective
        p = obj.problem
        beta, r, loss = self.beta.copy(), self.residual.copy(), self.loss.copy()
        taken = obj.model.steps(self.theta, beta, r, loss, p.X_transposed, p.Xn[0], p.y, eta, m, band[0], band[1],
                                ascent, c)
        new = Point(obj, self.theta, beta)
        new.__dict__.update(residual=r, loss=loss)
        return new, taken

    def where(self, mask, other):
        """Row by row, this point where `mask` (B,) holds, else `other` (same objective); parts cached
        in both are merged, not recomputed."""
        pick = lambda a, b: np.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
        p = Point(self.objective, pick(self.theta, other.theta))
        for k in self.__dict__.keys() & other.__dict__.keys():
            p.__dict__[k] = pick(self.__dict__[k], other.__dict__[k])
        return p

    def take(self, idx):
        """The point of runs `idx` (cached parts sliced, not recomputed)."""
        p = Point(self.objective.take(idx), self.theta[idx])
        for k, v in self.__dict__.items():
            p.__dict__[k] = v[idx]
        return p


@dataclass(frozen=True)
class Objective:
    """`L(theta)` for `model` on `problem`: what an algorithm's `update` evaluates."""

    problem: Problem
    model: object

    def at(self, theta):
        """The `Point` at `theta` of shape (B, 2, d)."""
        return Point(self, theta)

    @property
    def fused(self):
        """Whether `Point.steps` and `Point.gr_direction` take their one-call kernels: one problem of its own
        (`Problem`, P = 1; not a stochastic algorithm's view of the rows) and a model that has them (`Depth`)."""
        return isinstance(self.problem, Problem) and self.problem.P == 1 and hasattr(self.model, "steps")

    def vjp(self, theta, g):
        """`J^T g`, shape (B, 2, d), for `g` of shape (B, d) (`J = d beta / d theta`)."""
        return self.model.vjp(theta, g)

    def descend(self, theta, D, eta, overwrite=True):
        """The `Point` at `theta - eta D` (`eta` of shape (B,)), its `beta` formed in the same pass;
        `D` is the caller's own array, which it may overwrite (the stepper's contract with `update`)
        unless not `overwrite` (`D` is another point's cached part)."""
        return Point(self, *self.model.descend(theta, D, eta, overwrite))

    def grad(self, theta):
        """`Gradient(L, J^T g, g)` at `theta` of shape (B, 2, d)."""
        p = self.at(theta)
        return Gradient(p.loss, p.grad, p.g)

    def hvp(self, theta, w, g=None, gamma=None):
        """Hessian-vector product in theta.

        `H w = J^T (X^T X / n) J w + sum_i g_i (d^2 beta_i / d theta^2) w`,
        with `g` recomputed unless given (from `grad(theta).beta`); with `gamma`
        of shape (B,), `w + gamma H w` (GR's direction at `w = grad L`), in the
        pass that forms `H w`.
        """
        if g is None:
            g = self.at(theta).g
        q = self.problem.XT(self.problem.apply(self.model.jvp(theta, w)))
        return self.model.hvp(theta, g, w, q, gamma)

    def loss(self, theta, test=False):
        """Training (or test) loss, shape (B,)."""
        return self.problem.loss(self.model.beta(theta), test)

    def take(self, idx):
        """The objective of runs `idx`."""
        p = self.problem.take(idx)
        return self if p is self.problem else Objective(p, self.model)
