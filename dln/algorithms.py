"""Update directions `D(theta)` of the gradient-regularization family.

A flow is `theta' = -D(theta)`; a discrete run is `theta <- theta - eta D(theta)`.
Each algorithm is a small frozen object with one method,
`direction(theta, objective) -> (D, L(theta))`; it evaluates gradients itself
(at perturbed points where it needs them). Hyperparameters are scalars or
arrays of shape (B,), one value per run.
"""
from dataclasses import dataclass, fields

import numpy as np

from ._checks import InputError, nonzero, positive


def per_run(x, like):
    """Reshape a per-run hyperparameter of shape () or (B,) to broadcast against `like` (B, ...)."""
    x = np.asarray(x)
    return x.reshape(x.shape + (1,) * (like.ndim - x.ndim))


def _hyper(obj, name, value, check):
    """Validate hyperparameter `name` (a scalar or a 1-D array over runs) and store it."""
    a = check(value, name)
    if a.ndim > 1:
        raise InputError(f"`{name}` must be a scalar or a 1-D array with one value per run; got shape {a.shape}")
    object.__setattr__(obj, name, float(a) if a.ndim == 0 else a)


def _nonneg(x, name):
    return positive(x, name, allow_zero=True)


@dataclass(frozen=True, eq=False)
class GR:
    """Exact gradient regularization, as double backpropagation computes it.

    `D = grad [L + (gamma/2) ||grad_theta L||^2] = grad L + gamma H grad L`,
    `H` the Hessian of `L` in theta (analytic). With `gamma = 0` it is
    gradient descent and evaluates one gradient.
    """

    gamma: float = 0.0

    def __post_init__(self):
        _hyper(self, "gamma", self.gamma, _nonneg)

    @property
    def grad_evals(self):
        """Gradient evaluations per direction (a Hessian-vector product counts as one)."""
        return 2 if np.any(self.gamma) else 1

    def evals_per_run(self):
        """Gradient evaluations per direction for each run: 1 where `gamma = 0` (GD needs no HVP)."""
        return np.where(np.asarray(self.gamma) != 0, 2, 1)

    @property
    def penalty_gamma(self):
        """`gamma` of the penalty `(gamma/2) ||grad L||^2`: the flow's stiffness model uses it."""
        return self.gamma

    def direction(self, theta, objective):
        G = objective.grad(theta)
        if not np.any(self.gamma):
            return G.theta, G.loss
        HG = objective.hvp(theta, G.theta, G.beta)
        return G.theta + per_run(self.gamma, theta) * HG, G.loss


def GD():
    """Gradient descent / gradient flow, `D = grad L`: `GR(gamma=0)`."""
    return GR(0.0)


def IGR(eta):
    """The modified flow of gradient descent with step `eta` (Barrett & Dherin 2021).

    `L + (eta/4) ||grad L||^2`, i.e. `GR(gamma=eta/2)`.
    """
    return GR(gamma=np.asarray(positive(eta, "eta")) / 2)


@dataclass(frozen=True, eq=False)
class FGR:
    """Finite-difference gradient regularization with ascent step `eps`.

    `D = grad L(theta) + (gamma/eps) [grad L(theta + eps p) - grad L(theta)]`,
    with `p = grad L(theta)` (the penalty `(gamma/2) ||grad L||^2`), or with
    `normalized=True`, `p = grad L / ||grad L||` (`p = 0` where the gradient
    is zero), the penalty `gamma ||grad L||` on the non-squared norm
    (Zhao et al. 2022). `eps > 0` is the forward difference (F-GR), `eps < 0`
    the backward one (B-GR).
    """

    gamma: float = 0.0
    eps: float = 0.1
    normalized: bool = False

    grad_evals = 2

    @property
    def penalty_gamma(self):
        """`gamma` of the squared-norm penalty the difference approximates (0 for the
        non-squared norm, whose curvature is not of that form): the flow's stiffness model uses it."""
        return 0.0 if self.normalized else self.gamma

    def __post_init__(self):
        _hyper(self, "gamma", self.gamma, _nonneg)
        _hyper(self, "eps", self.eps, nonzero)
        if not isinstance(self.normalized, (bool, np.bool_)):
            raise InputError(f"`normalized` must be True or False; got {self.normalized!r}")

    def direction(self, theta, objective):
        G = objective.grad(theta)
        p = G.theta
        if self.normalized:
            norm = np.sqrt(np.einsum("bkd,bkd->b", p, p))
            p = p / per_run(np.where(norm > 0, norm, 1.0), p)
        eps = per_run(self.eps, theta)
        shifted = eps * p
        shifted += theta
        D = objective.grad(shifted).theta  # a new array: form the direction in it
        D -= G.theta
        D *= per_run(self.gamma, theta) / eps
        D += G.theta
        return D, G.loss


def BGR(gamma, eps):
    """Backward finite-difference GR, `eps > 0`:
    `D = grad L + (gamma/eps) [grad L(theta) - grad L(theta - eps grad L)]`,
    which is `FGR(gamma, -eps)`."""
    return FGR(gamma, -positive(eps, "eps"))


def USAM(rho):
    """Unnormalized SAM, `D = grad L(theta + rho grad L)`: `FGR(gamma=rho, eps=rho)`."""
    rho = positive(rho, "rho")
    return FGR(rho, rho)


def SAM(rho):
    """SAM (Foret et al. 2021), `D = grad L(theta + rho grad L / ||grad L||)`:
    `FGR(gamma=rho, eps=rho, normalized=True)`; at a zero gradient the perturbation is zero."""
    rho = positive(rho, "rho")
    return FGR(rho, rho, normalized=True)


def NormGR(gamma, eps):
    """Penalty on the non-squared norm, `gamma ||grad L||`, by a normalized forward difference:
    `FGR(gamma, eps, normalized=True)`, `eps > 0`."""
    return FGR(gamma, positive(eps, "eps"), normalized=True)


@dataclass(frozen=True, eq=False)
class Flooding:
    """Flooding with flood level `b` (Ishida et al. 2020), discrete:
    `D = sign(L(theta) - b) grad L(theta)`."""

    b: float = 0.0

    grad_evals = 1
    #: the direction jumps at `L = b`, so there is no flow
    discrete_only = True

    def __post_init__(self):
        _hyper(self, "b", self.b, _nonneg)

    def direction(self, theta, objective):
        G = objective.grad(theta)
        return per_run(np.sign(G.loss - self.b), theta) * G.theta, G.loss


def evals_per_run(algorithm, B):
    """Gradient evaluations per direction of each of `B` runs, shape (B,): what the single run
    with that row's hyperparameters counts (`algorithm.evals_per_run()` where defined, else
    `algorithm.grad_evals`)."""
    f = getattr(algorithm, "evals_per_run", None)
    return np.broadcast_to(np.asarray(f() if f else algorithm.grad_evals, np.int64), (B,))


def hyperparameters(algorithm):
    """The per-run hyperparameters of an algorithm, `name -> array`."""
    return {f.name: np.asarray(getattr(algorithm, f.name)) for f in fields(algorithm)
            if f.type is float or f.type == "float"}


def take(algorithm, idx, B):
    """The algorithm restricted to runs `idx` of a batch of `B` runs."""
    changes = {k: np.broadcast_to(v, (B,))[idx] for k, v in hyperparameters(algorithm).items() if v.ndim}
    return type(algorithm)(**{**{f.name: getattr(algorithm, f.name) for f in fields(algorithm)}, **changes}) \
        if changes else algorithm


ALGORITHMS = {
    "gd": GD, "gr": GR, "fgr": FGR, "bgr": BGR, "sam": SAM, "usam": USAM,
    "flood": Flooding, "fgr-norm": NormGR,
}
