"""The training objective `L(theta) = L(beta(theta))` of a model on a problem."""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

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


@dataclass(frozen=True)
class Objective:
    """`L(theta)` for `model` on `problem`: what an algorithm's `direction` evaluates."""

    problem: Problem
    model: object

    def grad(self, theta):
        """`Gradient(L, J^T g, g)` at `theta` of shape (B, 2, d)."""
        g, loss = self.problem.grad(self.model.beta(theta))
        J = self.model.jac(theta)
        # scale in place where `jac` made a new array (not a view of theta, as Product's is)
        J = np.multiply(J, g[:, None, :], out=None if np.may_share_memory(J, theta) else J)
        return Gradient(loss, J, g)

    def hvp(self, theta, w, g=None):
        """Hessian-vector product in theta.

        `H w = J^T (X^T X / n) J w + sum_i g_i (d^2 beta_i / d theta^2) w`,
        with `g` recomputed unless given (from `grad(theta).beta`).
        """
        if g is None:
            g = self.grad(theta).beta
        J = self.model.jac(theta)
        Jw = np.einsum("bkd,bkd->bd", J, w)
        XtXJw = self.problem.XT(self.problem.apply(Jw))
        return J * XtXJw[:, None, :] + self.model.curvature(theta, g, w)

    def loss(self, theta, test=False):
        """Training (or test) loss, shape (B,)."""
        return self.problem.loss(self.model.beta(theta), test)

    def take(self, idx):
        """The objective of runs `idx`."""
        return Objective(self.problem.take(idx), self.model)
