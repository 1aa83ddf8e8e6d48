"""Analytic gradients and Hessian-vector products of the three models against finite differences.

A central difference along a direction `w`,
`(F(theta + h w) - F(theta - h w)) / (2h) = dF[w] + h^2 F'''[w,w,w] / 6 + O(h^4)`,
has truncation error of order 2 and round-off of order `eps_mach |F| / h`.
Each check (1) measures the order: the error must fall by 4 when `h` halves
(slope 2), which a wrong analytic derivative cannot do (its error plateaus at
the mistake), and (2) at a small `h0` bounds the error by the measured
`C h0^2` plus the round-off term: the tolerance comes from the FD error model.
"""
import numpy as np
import pytest

import dln
from conftest import check_fd as _check_fd
from dln.objective import Objective

MODELS = {"squares": dln.Squares(), "depth3": dln.Depth(3), "product": dln.Product()}


def _point(model, rng, d):
    """Two states (B = 2): positive for the depth models (where `u**D` is the parametrization's domain)."""
    theta = rng.uniform(0.3, 1.2, (2, 2, d))
    if not model.positive:
        theta *= rng.choice([-1, 1], theta.shape)
    return theta


@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_matches_central_differences(name, rng):
    model = MODELS[name]
    p = dln.make_problem(n=5, d=7, s=2, seed=2)
    obj = Objective(p, model)
    theta = _point(model, rng, p.d)
    w = rng.standard_normal(theta.shape)
    for b in range(2):  # one directional derivative per run, the runs of the batch independent
        exact = np.einsum("kd,kd->", obj.grad(theta).theta[b], w[b])
        rel = _check_fd(lambda th: obj.loss(th)[b], exact, theta, w)
        assert rel < 1e-8, rel


@pytest.mark.parametrize("name", list(MODELS))
def test_hessian_vector_product_matches_central_differences(name, rng):
    model = MODELS[name]
    p = dln.make_problem(n=5, d=7, s=2, seed=2)
    obj = Objective(p, model)
    theta = _point(model, rng, p.d)
    w = rng.standard_normal(theta.shape)
    rel = _check_fd(lambda th: obj.grad(th).theta, obj.hvp(theta, w), theta, w)
    assert rel < 1e-8, rel


@pytest.mark.parametrize("name", ["squares", "depth3"])
def test_gr_direction_in_one_call_is_the_protocol_s_bit_for_bit(name, rng):
    """GR's direction on one problem and a depth model is one kernel call with its products inside
    (`Point.gr_direction`); it must be, bit for bit, the gradient and `Objective.hvp` that the protocol forms
    (checked against central differences above), with `g` and `grad L` cached as the point forms them."""
    model = MODELS[name]
    p = dln.make_problem(n=5, d=7, s=2, seed=2)
    obj = Objective(p, model)
    assert obj.fused
    theta = _point(model, rng, p.d)
    gamma = np.array([0.1, 2.0])
    fused = obj.at(theta)
    D = fused.gr_direction(gamma)
    ref = obj.at(theta)
    np.testing.assert_array_equal(D, obj.hvp(theta, ref.grad, ref.g, gamma))
    np.testing.assert_array_equal(fused.grad, ref.grad)
    np.testing.assert_array_equal(fused.g, ref.g)


@pytest.mark.parametrize("name", list(MODELS))
def test_jacobian_of_beta_matches_central_differences(name, rng):
    model = MODELS[name]
    theta = _point(model, rng, 6)
    w = rng.standard_normal(theta.shape)
    exact = np.einsum("bkd,bkd->bd", model.jac(theta), w)
    _check_fd(model.beta, exact, theta, w)


def test_model_maps_and_inits():
    theta = np.array([[[2.0, 3.0], [1.0, 0.5]]])
    np.testing.assert_array_equal(dln.Squares().beta(theta), [[3.0, 8.75]])
    np.testing.assert_array_equal(dln.Depth(3).beta(theta), [[7.0, 26.875]])
    np.testing.assert_array_equal(dln.Product().beta(theta), [[2.0, 1.5]])
    a = np.array([0.5, 2.0])
    np.testing.assert_array_equal(dln.Squares().init(a, 3)[:, 0], dln.Squares().init(a, 3)[:, 1])
    np.testing.assert_array_equal(dln.Product().init(a, 3)[1], [[2.0] * 3, [0.0] * 3])
    # alpha_eff = sqrt(u v) for the squares model; at the init u = v = alpha it is alpha itself
    np.testing.assert_allclose(dln.Squares().alpha_eff(theta), np.sqrt([[2.0, 1.5]]), rtol=1e-15)
    np.testing.assert_allclose(dln.Depth(3).alpha_eff(dln.Depth(3).init(a, 3)), np.repeat(a[:, None], 3, 1),
                               rtol=1e-15)
    assert dln.Product().alpha_eff(theta) is None


@pytest.mark.parametrize("depth", [1, 0, 2.5, "3"])
def test_bad_depth(depth):
    with pytest.raises(dln.InputError, match="`depth`"):
        dln.Depth(depth)
