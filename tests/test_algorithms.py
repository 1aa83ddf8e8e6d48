"""Update directions of the GR family against docs/theory.md's formulas, computed here independently.

The identities (USAM = F-GR(rho, rho), B-GR = F-GR with -eps, GD = GR(0),
SAM = NormGR(rho, rho)) hold by construction in `dln.algorithms` (aliases), so
each is checked against the formula of docs/theory.md evaluated directly from
`grad L`, not against the alias it is built from. Those agree to round-off: the
only difference is the order of floating-point operations, e.g. F-GR with
`gamma = eps` forms `G + (Gp - G)` where USAM's formula is `Gp`, an error of at
most a few ulps of `|G| + |Gp|`. The tolerance is 8 ulps of that scale.
"""
import numpy as np
import pytest

import dln
from conftest import EPS, check_fd
from dln.objective import Objective

MODELS = {"squares": dln.Squares(), "depth3": dln.Depth(3), "product": dln.Product()}


def _setup(name, rng, B=3):
    model = MODELS[name]
    p = dln.make_problem(n=6, d=9, s=2, seed=4)
    theta = rng.uniform(0.2, 1.0, (B, 2, p.d))
    if not model.positive:
        theta *= rng.choice([-1, 1], theta.shape)
    return Objective(p, model), theta


def _roundoff(*arrays):
    """8 ulps of the largest magnitude that entered the computation."""
    return 8 * EPS * max(np.abs(a).max() for a in arrays)


def _grad(obj, theta):
    return obj.grad(theta).theta


@pytest.mark.parametrize("name", list(MODELS))
def test_usam_is_fgr_with_gamma_eps_rho(name, rng):
    obj, theta = _setup(name, rng)
    rho = np.array([0.01, 0.1, 0.5])
    G = _grad(obj, theta)
    Gp = _grad(obj, theta + rho[:, None, None] * G)  # docs/theory.md: D = grad L(theta + rho grad L)
    for alg in (dln.USAM(rho), dln.FGR(gamma=rho, eps=rho)):
        D = dln.direction(alg, obj, theta)
        assert np.abs(D - Gp).max() <= _roundoff(G, Gp)


@pytest.mark.parametrize("name", list(MODELS))
def test_bgr_is_fgr_with_negative_ascent_step(name, rng):
    obj, theta = _setup(name, rng)
    gamma, eps = np.array([0.3, 1.0, 2.0]), np.array([0.05, 0.1, 0.01])
    G = _grad(obj, theta)
    Gm = _grad(obj, theta - eps[:, None, None] * G)
    ref = G + (gamma / eps)[:, None, None] * (G - Gm)  # docs/theory.md's B-GR formula
    scale = _roundoff(G, (gamma / eps)[:, None, None] * np.abs(G - Gm))
    for alg in (dln.BGR(gamma, eps), dln.FGR(gamma, -eps)):
        assert np.abs(dln.direction(alg, obj, theta) - ref).max() <= scale


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("alg", [dln.GD(), dln.GR(np.zeros(3)), dln.FGR(np.array([0.0, 0.1, 0.5]), 0.1),
                                 dln.BGR(0.3, np.array([0.05, 0.1, 0.01])), dln.USAM(0.05), dln.SAM(0.05),
                                 dln.GR(0.1)], ids=repr)
def test_a_fused_discrete_step_is_update_then_descend_bit_for_bit(name, alg, rng):
    """`apply` (GD's and F-GR's fused passes) against the protocol's definition of a step, `theta - eta D`
    with `D` from `update` at a fresh point: the fused kernels keep every operation's order, so the
    states agree exactly (both the published-number tests and `Steps` results rest on that)."""
    obj, theta = _setup(name, rng)
    eta = np.array([0.01, 0.05, 0.1])
    D, _ = alg.update(obj.at(theta.copy()), alg.init(obj.at(theta), np.arange(3)), 0)
    ref, ref_beta = obj.model.descend(theta, D.copy(), eta)
    at = obj.at(theta.copy())  # a stepper's own state: `apply` may write the new one over it
    new, _ = alg.apply(at, alg.init(at, np.arange(3)), 0, eta)
    np.testing.assert_array_equal(new.theta, ref)
    np.testing.assert_array_equal(new.beta, ref_beta)


@pytest.mark.parametrize("name", list(MODELS))
def test_gr_with_zero_gamma_is_gd(name, rng):
    obj, theta = _setup(name, rng)
    G = _grad(obj, theta)
    for alg in (dln.GD(), dln.GR(0.0), dln.GR(np.zeros(3))):
        np.testing.assert_array_equal(dln.direction(alg, obj, theta), G)  # no arithmetic: exactly the gradient
        assert np.all(alg.grad_evals() == 1)
    assert dln.GR(0.1).grad_evals() == 2 and dln.FGR(0.1, 0.1).grad_evals() == 2


@pytest.mark.parametrize("name", list(MODELS))
def test_sam_is_normgr_with_gamma_eps_rho(name, rng):
    obj, theta = _setup(name, rng)
    rho = np.array([0.01, 0.1, 0.5])
    G = _grad(obj, theta)
    norm = np.sqrt((G**2).sum(axis=(1, 2)))
    Gp = _grad(obj, theta + (rho / norm)[:, None, None] * G)  # docs/theory.md: grad L(theta + rho G/||G||)
    for alg in (dln.SAM(rho), dln.NormGR(rho, rho)):
        assert np.abs(dln.direction(alg, obj, theta) - Gp).max() <= _roundoff(G, Gp)


def test_sam_perturbation_is_zero_at_a_zero_gradient():
    # product model at u = v = 0: J = (v, u) = 0, so grad L = 0 although the loss is not 0
    p = dln.make_problem(n=4, d=6, s=2, seed=0)
    obj = Objective(p, dln.Product())
    theta = np.zeros((2, 2, 6))
    for alg in (dln.SAM(0.1), dln.NormGR(1.0, 0.1)):
        D = dln.direction(alg, obj, theta)
        assert np.all(np.isfinite(D)) and np.all(D == 0) and np.all(obj.loss(theta) > 0)


@pytest.mark.parametrize("name", list(MODELS))
def test_gr_is_the_gradient_of_the_penalized_loss(name, rng):
    """`D_GR = grad [L + (gamma/2) ||grad L||^2]`, checked by central differences of that scalar."""
    obj, theta = _setup(name, rng, B=1)
    gamma = 0.7
    w = rng.standard_normal(theta.shape)
    D = dln.direction(dln.GR(gamma), obj, theta)

    def penalized(th):
        G = obj.grad(th)
        return G.loss[0] + gamma / 2 * (G.theta**2).sum()

    rel = check_fd(penalized, (D * w).sum(), theta, w)
    assert rel < 1e-7


@pytest.mark.parametrize("name", list(MODELS))
def test_normgr_is_the_gradient_of_the_norm_penalty_as_eps_to_0(name, rng):
    """`NormGR(gamma, eps) -> grad [L + gamma ||grad L||]` with error O(eps) (a forward difference)."""
    obj, theta = _setup(name, rng, B=1)
    gamma = 0.7
    G = _grad(obj, theta)
    norm = np.sqrt((G**2).sum())
    exact = G + gamma * obj.hvp(theta, G / norm)  # grad ||grad L|| = H grad L / ||grad L||
    eps = np.array([4e-3, 2e-3, 1e-3])
    err = [np.abs(dln.direction(dln.NormGR(gamma, e), obj, theta) - exact).max() for e in eps]
    slopes = np.log2(np.divide(err[:-1], err[1:]))
    assert np.all(np.abs(slopes - 1) < 0.1), slopes


@pytest.mark.parametrize("name", list(MODELS))
def test_finite_differences_converge_to_exact_gr(name, rng):
    """F-GR and B-GR are O(eps) from GR; their average (a central difference) is O(eps^2)."""
    obj, theta = _setup(name, rng, B=1)
    gamma = 0.7
    exact = dln.direction(dln.GR(gamma), obj, theta)
    eps = np.array([4e-3, 2e-3, 1e-3])
    F = [dln.direction(dln.FGR(gamma, e), obj, theta) for e in eps]
    Bk = [dln.direction(dln.BGR(gamma, e), obj, theta) for e in eps]
    for dirs, order in ((F, 1), (Bk, 1), ([(f + b) / 2 for f, b in zip(F, Bk)], 2)):
        err = np.array([np.abs(D - exact).max() for D in dirs])
        slopes = np.log2(err[:-1] / err[1:])
        assert np.all(np.abs(slopes - order) < 0.1), (order, slopes, err)


def test_flooding_direction_flips_at_the_flood_level(small, rng):
    obj = Objective(small, dln.Squares())
    theta = rng.uniform(0.5, 1.0, (2, 2, small.d))
    G = _grad(obj, theta)
    L = obj.loss(theta)
    b = np.array([L[0] / 2, 2 * L[1]])  # run 0 above its flood level, run 1 below
    D = dln.direction(dln.Flooding(b), obj, theta)
    np.testing.assert_array_equal(D[0], G[0])
    np.testing.assert_array_equal(D[1], -G[1])
    assert dln.Flooding(0.0).grad_evals() == 1 and not dln.Flooding.flow


@pytest.mark.parametrize("make, name", [
    (lambda: dln.GR(-1.0), "`gamma`"), (lambda: dln.FGR(1.0, 0.0), "`eps`"), (lambda: dln.BGR(1.0, -0.1), "`eps`"),
    (lambda: dln.SAM(0.0), "`rho`"), (lambda: dln.USAM(-1.0), "`rho`"), (lambda: dln.Flooding(-0.1), "`b`"),
    (lambda: dln.NormGR(1.0, 0.0), "`eps`"), (lambda: dln.GR(np.ones((2, 2))), "`gamma`"),
    (lambda: dln.GR(np.nan), "`gamma`"), (lambda: dln.IGR(0.0), "`eta`"),
])
def test_bad_hyperparameters_name_the_argument(make, name):
    with pytest.raises(dln.InputError, match=name):
        make()


def test_registry_builds_every_algorithm():
    """Every registered class builds from its declared examples, keeps its name in `repr`, and is an
    `Algorithm` whose declared flags are unique within it."""
    from dln.algorithms import ALGORITHMS, Algorithm, example
    assert {"gd", "gr", "fgr", "bgr", "sam", "usam", "flood", "fgr-norm"} <= set(ALGORITHMS)
    for name, cls in ALGORITHMS.items():
        alg = example(cls)
        assert isinstance(alg, Algorithm) and alg.name == name
        assert repr(alg).startswith(cls.__name__ + "(")
        flags = [h.cli for h in cls.hyper]
        assert len(flags) == len(set(flags))