"""Algorithms: update directions `D(theta)` with explicit state, in the manner of optax.

A flow is `theta' = -D(theta)`; a discrete run is `theta <- theta - eta D(theta)`.

The protocol (`Algorithm`):

- `hyper`: the hyperparameters, declared once (`dln._hyper.Hyper`: name,
  range, per-run or not, help). The constructor, validation, batching, the
  CLI flags, the JSON `hyperparameters` and the explorer follow from it.
- `init(at, seed) -> state`: the initial state, a dict of arrays with a
  leading batch axis (`{}` for a stateless algorithm). `at` is the starting
  `Point`, `seed` the per-run sample seeds, shape (B,).
- `update(at, state, step) -> (D, state)`: the direction at the point `at`
  (`objective.at(theta)`, whose residual, loss and gradient are computed once
  and shared with the driver) and the new state; `step` is the step index.
  `update` never mutates `state`; the driver slices state arrays when runs stop.
- `apply(at, state, step, eta) -> (point, state)`: the discrete step, the `Point`
  at `theta - eta D`; by default `update`, then `objective.descend`. Gradient
  descent overrides it to form `theta - eta grad L` in the pass that forms
  `grad L`, which is then never stored; F-GR to form the step in two passes
  (the shifted point's `beta`, then the step) that store neither `grad L`, the
  shifted state nor the direction.
- capabilities, declared: `flow` (deterministic and continuous, so usable as a
  `Flow`), `grad_evals()` (gradient evaluations per update, per run),
  `stiffness(at)` (the `gamma` of the curvature model the stiff solver's matrix
  uses at the point `at`), `mirror` (on the squares model, `log(u/v) - log(u0/v0)` stays in the
  row span of `X` along the flow) and `drift_free()` (per run: `log(u v)` is
  constant along the flow).

Aliases are subclasses that declare their own hyperparameters and map them
to the equation's (`USAM(rho)` is `FGR` with `gamma = eps = rho`), so they keep
their name in `repr`, JSON and `isinstance`. Every concrete algorithm with a
`name` joins the registry `ALGORITHMS` (CLI name -> class) by being defined.
"""
import numpy as np

from . import _kernels
from ._checks import InputError, batch_size, seed_array
from .objective import Objective
from ._hyper import Declared, Hyper

#: CLI name -> algorithm class; filled by `Algorithm.__init_subclass__`
ALGORITHMS = {}

GAMMA = Hyper("gamma", "GR strength: penalty (gamma/2) ||grad L||^2", lo=0, example=0.1)
EPS = Hyper("eps", "finite-difference ascent step (negative: backward difference)", nonzero=True, example=0.1)
EPS_POS = Hyper("eps", "finite-difference ascent step", lo=0, lo_open=True, example=0.1)
RHO = Hyper("rho", "SAM radius", lo=0, lo_open=True, example=0.05)


def per_run_vector(x, B):
    """A per-run hyperparameter of shape () or (B,) as a float array of shape (B,)."""
    x = np.asarray(x, dtype=float)
    return np.full(B, x) if x.ndim == 0 else x


def per_run(x, like):
    """Reshape a per-run hyperparameter of shape () or (B,) to broadcast against `like` (B, ...)."""
    x = np.asarray(x)
    return x.reshape(x.shape + (1,) * (like.ndim - x.ndim))


class Algorithm(Declared):
    """Base of every algorithm (see the module doc for the protocol)."""

    #: CLI and registry name; None for abstract bases
    name = None
    #: usable as a flow `theta' = -D(theta)`
    flow = True
    #: on the squares model, log(u/v) - log(u0/v0) stays in the row span of X along the flow
    mirror = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            ALGORITHMS[cls.name] = cls

    def grad_evals(self):
        """Gradient evaluations per update (a Hessian-vector product counts as one), scalar or (B,)."""
        return 1

    def stiffness(self, at):
        """`gamma` of the penalty `(gamma/2) ||grad L||^2` whose curvature the stiff flow's matrix
        models at the point `at`, scalar or (B,); 0 for gradient flow."""
        return 0.0

    def drift_free(self):
        """Whether `log(u v)` is constant along the flow (no drift `c`), scalar or (B,)."""
        return False

    def init(self, at, seed):
        """Initial state at the point `at`; `seed` (B,) are the runs' sample seeds."""
        return {}

    def update(self, at, state, step):
        """`(D, state)` at the point `at`."""
        raise NotImplementedError

    def apply(self, at, state, step, eta):
        """`(point, state)`: the `Point` at `theta - eta D` (`eta` of shape (B,)), `D` from `update`. The
        stepper hands over its own state: the new one may be written over `at.theta` (GD's and F-GR's
        fused steps do so), and `at` is not used after."""
        D, state = self.update(at, state, step)
        return at.objective.descend(at.theta, D, eta), state

    def apply_many(self, at, state, step, eta, m, band):
        """`(point, state, taken)`: up to `m` steps `apply` from `at` (steps `step, step + 1, ...`), stopped
        after the first whose loss leaves `band = (lo, hi)` (B,) for some run (the driver's stop rules then
        apply), `1 <= taken <= m`; the new states as `apply` writes them. Here one step: algorithms with a
        multi-step kernel (GD, F-GR) take more."""
        at, state = self.apply(at, state, step, eta)
        return at, state, 1


def _many(stepped, state):
    """`apply_many`'s `(point, state, taken)` of `Point.steps`' `(point, taken)`."""
    point, taken = stepped
    return point, state, taken


class GR(Algorithm):
    """Exact gradient regularization, as double backpropagation computes it.

    `D = grad [L + (gamma/2) ||grad_theta L||^2] = grad L + gamma H grad L`,
    `H` the Hessian of `L` in theta (analytic). Where `gamma = 0` it is
    gradient descent and evaluates one gradient.
    """

    name = "gr"
    hyper = (GAMMA,)
    mirror = True

    def grad_evals(self):
        return np.where(np.asarray(self.gamma) != 0, 2, 1)

    def stiffness(self, at):
        return self.gamma

    def drift_free(self):
        return np.asarray(self.gamma) == 0

    def _descent(self):
        """Whether every run's `gamma` is 0: gradient descent."""
        gamma = self.gamma
        return not (gamma if isinstance(gamma, float) else np.any(gamma))  # (np.any on a float: ~2 us a step)

    def update(self, at, state, step):
        if self._descent():
            return at.grad, state
        return at.gr_direction(per_run_vector(self.gamma, at.theta.shape[0])), state

    def apply(self, at, state, step, eta):
        """Gradient descent's step `theta - eta grad L` and its `beta` in one pass that stores no `grad L`."""
        if self._descent():
            return at.step(eta, keep=False, overwrite=True), state
        return super().apply(at, state, step, eta)

    def apply_many(self, at, state, step, eta, m, band):
        """Gradient descent's steps in one kernel call where the objective has one (`Point.steps`)."""
        if self._descent() and at.objective.fused:
            return _many(at.steps(eta, m, band), state)
        return super().apply_many(at, state, step, eta, m, band)


class GD(GR):
    """Gradient descent / gradient flow, `D = grad L`: `GR` with `gamma = 0`."""

    name = "gd"
    hyper = ()
    gamma = 0.0


class IGR(GR):
    """The modified flow of gradient descent with step `eta` (Barrett & Dherin 2021):
    `L + (eta/4) ||grad L||^2`, i.e. `GR` with `gamma = eta/2`."""

    name = "igr"
    hyper = (Hyper("eta", "step size of the gradient descent whose modified flow this is", lo=0, lo_open=True,
                   flag="--igr-eta", example=0.01),)

    @property
    def gamma(self):
        return np.asarray(self.eta) / 2 if isinstance(self.eta, np.ndarray) else self.eta / 2


class FGR(Algorithm):
    """Finite-difference gradient regularization with ascent step `eps`.

    `D = grad L(theta) + (gamma/eps) [grad L(theta + eps p) - grad L(theta)]`,
    with `p = grad L(theta)` (the penalty `(gamma/2) ||grad L||^2`), or with
    `normalized=True`, `p = grad L / ||grad L||` (`p = 0` where the gradient
    is zero), the penalty `gamma ||grad L||` on the non-squared norm
    (Zhao et al. 2022). `eps > 0` is the forward difference (F-GR), `eps < 0`
    the backward one (B-GR).
    """

    name = "fgr"
    hyper = (GAMMA, EPS, Hyper("normalized", "perturb along grad L / ||grad L||", kind="bool", per_run=False,
                               default=False))
    mirror = True

    def grad_evals(self):
        return 2

    def ascent(self):
        """The signed ascent step of the difference (`eps`; `-eps` for B-GR)."""
        return self.eps

    def stiffness(self, at):
        """`gamma` of the squared-norm penalty; for the non-squared norm `gamma ||grad L||`, whose
        direction is `G + gamma H G / ||G|| + O(eps)`, the `gamma / ||grad L||` of the squared-norm
        penalty with the same first-order direction at `at` (0 where the gradient is 0): near a zero of
        the loss it grows without bound, and a matrix without it leaves the stiff solver's Newton
        iteration barely contracting."""
        if not self.normalized:
            return self.gamma
        norm = np.sqrt(np.einsum("bkd,bkd->b", at.grad, at.grad))
        return np.where(norm > 0, self.gamma / np.where(norm > 0, norm, 1.0), 0.0)

    def update(self, at, state, step):
        B = at.theta.shape[0]
        eps = per_run_vector(self.ascent(), B)
        # theta + eps p as `theta - (-eps) p` (the same rounding), with its beta in one pass
        if self.normalized:
            G = at.grad
            norm = np.sqrt(np.einsum("bkd,bkd->b", G, G))
            p = G / per_run(np.where(norm > 0, norm, 1.0), G)
            shifted = at.objective.descend(at.theta, p, -eps, overwrite=False)
        else:
            shifted = at.step(-eps)  # forms and caches G = grad L in the same pass
            G = at.grad
        # G + (gamma/eps) (grad L(shifted) - G), in the pass that forms grad L(shifted)
        return shifted.grad_mix(G, per_run_vector(self.gamma, B) / eps), state

    def apply(self, at, state, step, eta):
        """The discrete step in two fused passes (`Point.fgr_step`), bit for bit `update` then `descend`;
        normalized (SAM) by `update`."""
        if self.normalized:
            return super().apply(at, state, step, eta)
        B = at.theta.shape[0]
        eps = per_run_vector(self.ascent(), B)
        return at.fgr_step(eps, per_run_vector(self.gamma, B) / eps, eta, overwrite=True), state

    def apply_many(self, at, state, step, eta, m, band):
        """F-GR's steps in one kernel call where the objective has one (`Point.steps`); normalized (SAM) as
        `apply`."""
        if self.normalized or not at.objective.fused:
            return super().apply_many(at, state, step, eta, m, band)
        B = at.theta.shape[0]
        eps = per_run_vector(self.ascent(), B)
        return _many(at.steps(eta, m, band, -eps, per_run_vector(self.gamma, B) / eps), state)


class BGR(FGR):
    """Backward finite-difference GR, `eps > 0`:
    `D = grad L + (gamma/eps) [grad L(theta) - grad L(theta - eps grad L)]`, which is `FGR(gamma, -eps)`."""

    name = "bgr"
    hyper = (GAMMA, EPS_POS)
    normalized = False

    def ascent(self):
        return -np.asarray(self.eps) if isinstance(self.eps, np.ndarray) else -self.eps


class USAM(FGR):
    """Unnormalized SAM, `D = grad L(theta + rho grad L)`: `FGR` with `gamma = eps = rho`."""

    name = "usam"
    hyper = (RHO,)
    normalized = False
    gamma = property(lambda self: self.rho)
    eps = property(lambda self: self.rho)


class SAM(FGR):
    """SAM (Foret et al. 2021), `D = grad L(theta + rho grad L / ||grad L||)`: `FGR` with
    `gamma = eps = rho`, normalized; at a zero gradient the perturbation is zero."""

    name = "sam"
    hyper = (RHO,)
    normalized = True
    gamma = property(lambda self: self.rho)
    eps = property(lambda self: self.rho)


class NormGR(FGR):
    """Penalty on the non-squared norm, `gamma ||grad L||`, by a normalized forward difference:
    `FGR(gamma, eps, normalized=True)`, `eps > 0`."""

    name = "fgr-norm"
    hyper = (GAMMA, EPS_POS)
    normalized = True


class Flooding(Algorithm):
    """Flooding with flood level `b` (Ishida et al. 2020), discrete:
    `D = sign(L(theta) - b) grad L(theta)`."""

    name = "flood"
    hyper = (Hyper("b", "flood level", lo=0, flag="--flood", example=0.01),)
    #: the direction jumps at `L = b`, so there is no flow
    flow = False

    def update(self, at, state, step):
        return per_run(np.sign(at.loss - self.b), at.theta) * at.grad, state


def evals_per_run(algorithm, B):
    """Gradient evaluations per update of each of `B` runs, shape (B,)."""
    return np.broadcast_to(np.asarray(algorithm.grad_evals(), np.int64), (B,))


def hyperparameters(algorithm):
    """The algorithm's hyperparameters as JSON-ready values, `name -> float | int | bool | list`, under
    their own names (a SAM run reports `rho`); a wrapper's and its base's side by side, as the CLI flags
    give them (`{"rho": 0.05, "m": 1, "momentum": 0.9, "nesterov": False}`)."""
    out = {}
    for h, v in algorithm.items():
        if h.kind == "algorithm":
            continue
        if isinstance(v, np.ndarray):
            out[h.name] = v.tolist()
        else:
            out[h.name] = v
    return out


def knobs(algorithm, first=()):
    """`first` and the names of the algorithm's real-valued hyperparameters (a wrapper's base's
    included), in backticks as every message names arguments (the CLI shows its flags), as one
    phrase for a message that says what to lower: "`alpha`, `rho` or `momentum`"."""
    names = [f"`{n}`" for n in list(first) + [h.name for h, _ in algorithm.items() if h.kind == "float"]]
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


def collapse_hint(algorithm):
    """What to change when `algorithm` drives `u, v` to 0 without fitting the data."""
    k = knobs(algorithm)
    return f"lower {k}, or raise `alpha`" if k else "raise `alpha`"


def example(cls):
    """`cls` built with each declared hyperparameter's example value."""
    return cls(**{h.name: h.example for h in cls.hyper if h.example is not None})


def check_algorithm(algorithm):
    """`algorithm` if it follows the protocol, else `InputError`."""
    if not isinstance(algorithm, Algorithm):
        raise InputError(f"`algorithm` must be an algorithm object such as GD() or FGR(gamma, eps); got {algorithm!r}")
    return algorithm


def direction(algorithm, objective, theta, seed=0):
    """`D(theta)`, shape (B, 2, d): the first update from a fresh state at `theta` (for a stateless
    algorithm, its direction field)."""
    check_algorithm(algorithm)
    if not isinstance(objective, Objective):
        raise InputError(f"`objective` must be a dln.Objective(problem, model); got {type(objective).__name__}")
    theta = np.asarray(theta)
    if theta.dtype.kind not in "iuf":  # (not finiteness: a field evaluated at an overflowing point is NaN)
        raise InputError(f"`theta` must hold real numbers; got {theta.dtype}")
    theta = theta.astype(float, copy=False)
    d = objective.problem.d
    if theta.ndim != 3 or theta.shape[0] < 1 or theta.shape[1:] != (2, d):
        raise InputError(f"`theta` must have shape (B, 2, d) with B >= 1 and d = {d}; got {theta.shape}")
    B = theta.shape[0]
    seeds = seed_array(seed, "seed")
    batch_size({"theta": B, "problem": objective.problem.P, "seed": seeds.size, **algorithm.batch_sizes()})
    at = objective.at(theta)
    return algorithm.update(at, algorithm.init(at, np.broadcast_to(seeds, (B,))), 0)[0]
