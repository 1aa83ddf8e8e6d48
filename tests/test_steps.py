"""Discrete runs `theta <- theta - eta D(theta)`: against a hand-written loop, the batch contract,
divergence, caps and save times on `t = eta k`."""
import re

import numpy as np
import pytest

import dln
from conftest import EPS

# ---- an independent reference: dense matrices, one run at a time, written from docs/theory.md ----


def _parts(param, theta, X, y):
    """Loss, gradient in theta (2d,), dense Jacobian J (d, 2d) and curvature diag for `param`."""
    u, v = theta
    n = len(y)
    if param == "squares":
        beta, J, c = u * u - v * v, np.hstack([np.diag(2 * u), np.diag(-2 * v)]), np.r_[2 * np.ones_like(u), -2 * np.ones_like(v)]
    else:  # product
        beta, J, c = u * v, np.hstack([np.diag(v), np.diag(u)]), None
    r = X @ beta - y
    g = X.T @ r / n
    A = X.T @ X / n
    H = J.T @ A @ J
    d = len(u)
    if c is not None:  # sum_i g_i d^2 beta_i / d theta^2 is diagonal for squares
        H += np.diag(c * np.r_[g, g])
    else:  # d^2 (u_i v_i) / du_i dv_i = 1
        H[np.arange(d), d + np.arange(d)] += g
        H[d + np.arange(d), np.arange(d)] += g
    return r @ r / (2 * n), J.T @ g, H


def _grad(param, flat, X, y):
    return _parts(param, flat.reshape(2, -1), X, y)[1]


REFERENCE = {  # docs/theory.md's directions, from the dense gradient and Hessian
    "gd": lambda P, th, X, y, h: _grad(P, th, X, y),
    "gr": lambda P, th, X, y, h: (lambda L, G, H: G + h["gamma"] * H @ G)(*_parts(P, th.reshape(2, -1), X, y)),
    "fgr": lambda P, th, X, y, h: (lambda G: G + h["gamma"] / h["eps"] * (_grad(P, th + h["eps"] * G, X, y) - G))(
        _grad(P, th, X, y)),
    "sam": lambda P, th, X, y, h: (lambda G: _grad(P, th + h["rho"] * G / np.linalg.norm(G), X, y))(_grad(P, th, X, y)),
    "flood": lambda P, th, X, y, h: np.sign(_parts(P, th.reshape(2, -1), X, y)[0] - h["b"]) * _grad(P, th, X, y),
}
FACTORY = {"gd": lambda h: dln.GD(), "gr": lambda h: dln.GR(h["gamma"]), "fgr": lambda h: dln.FGR(h["gamma"], h["eps"]),
           "sam": lambda h: dln.SAM(h["rho"]), "flood": lambda h: dln.Flooding(h["b"])}
HYPER = {"gd": {}, "gr": dict(gamma=0.5), "fgr": dict(gamma=0.5, eps=-0.05), "sam": dict(rho=0.05),
         "flood": dict(b=0.02)}


def _reference_run(param, name, theta0, X, y, eta, K):
    th = theta0.reshape(-1).copy()
    states = [th.copy()]
    for _ in range(K):
        th = th - eta * REFERENCE[name](param, th, X, y, HYPER[name])
        states.append(th.copy())
    return np.array(states).reshape(K + 1, 2, -1)


@pytest.mark.parametrize("param", ["squares", "product"])
@pytest.mark.parametrize("name", list(REFERENCE))
def test_steps_match_a_hand_written_loop(param, name):
    p = dln.make_problem(n=6, d=10, s=2, seed=5)
    model = {"squares": dln.Squares(), "product": dln.Product()}[param]
    alpha, eta, K = 0.7, 0.02, 40
    theta0 = model.init(np.array([alpha]), p.d)[0]
    ref = _reference_run(param, name, theta0, p.X[0], p.y[0], eta, K)
    # round-off alone: the same reference with the coordinates in reverse order (equal in exact
    # arithmetic, every product summed in another order). Most runs differ by ~1e-16; SAM's normalized
    # ascent `G / ||G||` amplifies it where `||G||` is small (squares: ~1e-13 at step 25), so dln, whose
    # BLAS sums in yet another order, is held to 10x the reference's own spread above a 1e-14 floor
    rev = np.arange(p.d)[::-1]
    other = _reference_run(param, name, theta0[:, rev], p.X[0][:, rev], p.y[0], eta, K)[:, :, rev]
    saves = [0, 10, 25, 40]
    times = np.array(saves, float) * eta
    res = dln.run(p, FACTORY[name](HYPER[name]), dln.Steps(eta, max_steps=K), model=model, alpha=alpha,
                  save_at=times, loss_tol=0)
    assert res.status[0] == "max_steps" and res.steps[0] == K
    np.testing.assert_allclose(res.theta[0], ref[-1], rtol=1e-12, atol=1e-14 + 10 * np.abs(other[-1] - ref[-1]).max())
    np.testing.assert_allclose(res.t[0], times, rtol=1e-15)
    beta_ref = model.beta(ref[saves])
    spread = np.abs(model.beta(other[saves]) - beta_ref).max()
    np.testing.assert_allclose(res.saved.beta[0], beta_ref, rtol=1e-12, atol=1e-14 + 10 * spread)
    assert res.grad_evals[0] == K * FACTORY[name](HYPER[name]).grad_evals() + 1


def test_gd_shrinks_uv_by_exactly_1_minus_4_eta2_g2_per_step(small):
    """docs/theory.md: for GD on u*u - v*v, u v is multiplied by (1 - 4 eta^2 g^2) at each step."""
    eta, alpha = 0.03, 0.8
    res = dln.run(small, dln.GD(), dln.Steps(eta, max_steps=1), alpha=alpha, save_at=[eta], loss_tol=0)
    g0 = -small.X[0].T @ small.y[0] / small.n  # g at beta = 0
    np.testing.assert_allclose(res.saved.alpha_eff[0, 0] ** 2, alpha**2 * (1 - 4 * eta**2 * g0**2), rtol=1e-14)


def _same_row(batched, b, single, problem):
    for name in ("status", "steps", "grad_evals"):
        np.testing.assert_array_equal(getattr(batched, name)[b], getattr(single, name)[0], err_msg=name)
    # t = eta k with the same k: the same product, to one rounding
    np.testing.assert_allclose(batched.t_final[b], single.t_final[0], rtol=2 * EPS)
    # batched and single runs differ only in the BLAS order of the matrix products. Each product's
    # round-off is ~ eps times the sum of its terms, which the largest coordinate sets, so the bound is
    # relative to max|theta| (resp. max|beta|), not to each coordinate: K <= 400 steps of a few eps
    # each (~1e-12), 10 x margin
    scale = np.abs(single.theta[0]).max()
    tol = 1e-11 * scale
    np.testing.assert_allclose(batched.theta[b], single.theta[0], rtol=0, atol=tol)
    np.testing.assert_allclose(batched.saved.beta[b], single.saved.beta[0], rtol=0, atol=2 * scale * tol)
    # L = |r|^2 / (2n): a change dbeta moves it by at most sqrt(2 L / n) ||X||_2 ||dbeta||_2
    L = single.saved.train_loss[0]
    dbeta = np.sqrt(problem.d) * 2 * scale * tol  # ||dbeta||_2 from the max-norm bound above
    dL = np.sqrt(2 * L / problem.n) * np.linalg.norm(problem.X[0], 2) * dbeta
    finite = np.isfinite(L)  # a diverged row's losses are not compared
    np.testing.assert_array_less(np.abs(batched.saved.train_loss[b] - L)[finite], dL[finite] + 1e-300)


@pytest.mark.parametrize("make, hyper, K", [
    (dln.GR, dict(gamma=[0.0, 0.2, 0.5, 1.0]), 400),
    (dln.FGR, dict(gamma=[0.2, 0.5, 0.5, 1.0], eps=[0.1, -0.1, 0.01, 0.05]), 400),
    # SAM's perturbation has length rho however small the gradient: once ||grad L|| << rho the
    # iteration bounces chaotically and amplifies a 1e-15 change of the init to 1e-4 within 50
    # steps (measured). That is the dynamics, not the batch, so SAM is compared before that phase.
    (dln.SAM, dict(rho=[0.01, 0.05, 0.1, 0.02]), 150),
    (dln.Flooding, dict(b=[0.0, 0.01, 0.05, 0.1]), 400),
])
def test_batched_steps_equal_a_loop_of_single_runs(small, make, hyper, K):
    """Row b of a batched run equals the single run with the b-th eta, alpha and hyperparameters.
    The batch mixes runs that converge early, hit the cap and diverge (eta = 0.5 is unstable)."""
    # run 2: eta = 0.5 is 10 x 2/lambda_max at alpha = 1
    eta = np.array([0.01, 0.03, 0.5, 0.02])
    alpha = np.array([0.5, 0.3, 1.0, 0.1])
    times = [0.0, 0.05, 0.5, 3.0]
    kw = dict(save_at=times, loss_tol=1e-10)
    batched = dln.run(small, make(**{k: np.array(v) for k, v in hyper.items()}), dln.Steps(eta, K),
                      alpha=alpha, **kw)
    assert "diverged" in batched.status
    for b in range(4):
        single = dln.run(small, make(**{k: v[b] for k, v in hyper.items()}), dln.Steps(eta[b], K),
                         alpha=alpha[b], **kw)
        _same_row(batched, b, single, small)


@pytest.mark.parametrize("alg", [dln.GD(), dln.FGR(0.5, 0.05)], ids=repr)
def test_steps_write_over_their_own_state_never_the_callers(small, rng, alg):
    """GD's and F-GR's fused steps write each state over the last: the run starts from a copy, so the
    caller's `theta0` is left as it was, and the run equals one from a fresh copy of it bit for bit."""
    theta0 = rng.uniform(0.2, 1.0, (2, 2, small.d))
    before = theta0.copy()
    res = dln.run(small, alg, dln.Steps(0.02, 30), theta0=theta0, save_at=[0.1, 0.3], loss_tol=0)
    np.testing.assert_array_equal(theta0, before)
    again = dln.run(small, alg, dln.Steps(0.02, 30), theta0=before.copy(), save_at=[0.1, 0.3], loss_tol=0)
    np.testing.assert_array_equal(res.theta, again.theta)
    np.testing.assert_array_equal(res.saved.beta, again.saved.beta)
    assert not np.array_equal(res.saved.beta[:, 0], res.saved.beta[:, 1])  # saves are not the live state


@pytest.mark.parametrize("alg", [dln.GD(), dln.FGR(np.array([0.05, 0.1, 0.2, 0.4, 3.0]), 0.1),
                                 dln.BGR(0.1, 0.1), dln.USAM(0.05)], ids=repr)
@pytest.mark.parametrize("model", [dln.Squares(), dln.Depth(3)], ids=repr)
def test_steps_in_one_kernel_call_equal_steps_one_by_one(alg, model, monkeypatch):
    """GD's and F-GR's discrete steps run up to 32 at a time in one kernel call (`Point.steps`), stopped
    where a loss leaves the band in which the driver has nothing to do. Every stop rule, save and cap must
    fall on the same step as with one step per call, and every state be the same bit for bit: the runs
    below run to `max_steps`, reach `max_time` at per-run `eta`, diverge (`eta` 5 and 50; gamma 3 for F-GR),
    most converge, and they save at times between the 32-step blocks."""
    p = dln.make_problem(n=20, d=60, s=3, seed=0, n_test=10)
    eta = np.array([0.01, 5.0, 0.013, 50.0, 0.0071])
    kw = dict(model=model, alpha=np.array([0.01, 0.05, 0.2, 0.5, 1.0]), save_at=[0.0, 0.05, 0.37, 1.0, 2.5, 7.0],
              loss_tol=1e-6)

    def runs():
        return [dln.run(p, alg, dln.Steps(eta, max_steps=1500, max_time=t), **kw) for t in (np.inf, 7.777)]

    blocks = runs()
    assert {"max_steps", "max_time", "diverged"} <= {s for r in blocks for s in r.status}
    assert any(m > 1 for m in _rooms(monkeypatch, runs))
    monkeypatch.setattr(dln.integrate.Steps, "room", lambda self, *a: 1)
    for a, b in zip(blocks, runs()):
        for f in ("status", "message", "steps", "t_final", "grad_evals", "theta", "t"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
        np.testing.assert_array_equal(a.saved.beta, b.saved.beta)
        np.testing.assert_array_equal(a.saved.train_loss, b.saved.train_loss)


def _rooms(monkeypatch, runs):
    """The `m` each `Steps.advance` was given while `runs()` ran."""
    seen, advance = [], dln.integrate.Steps.advance

    def spy(self, objective, algorithm, carry, k, m=1, band=None):
        seen.append(m)
        return advance(self, objective, algorithm, carry, k, m, band)
    with monkeypatch.context() as mp:
        mp.setattr(dln.integrate.Steps, "advance", spy)
        runs()
    return seen


def test_seed_batched_problems_equal_single_problems():
    seeds = [0, 1, 2]
    stacked = dln.make_problem(n=6, d=12, s=2, seed=seeds, n_test=20)
    alpha = np.array([0.5, 1.0, 0.2])
    batched = dln.run(stacked, dln.USAM(0.05), dln.Steps(0.02, 300), alpha=alpha, save_at=[0.1, 1.0])
    for b, sd in enumerate(seeds):
        one = dln.make_problem(n=6, d=12, s=2, seed=sd, n_test=20)
        single = dln.run(one, dln.USAM(0.05), dln.Steps(0.02, 300), alpha=alpha[b], save_at=[0.1, 1.0])
        _same_row(batched, b, single, one)
        np.testing.assert_allclose(batched.final.test_loss[b], single.final.test_loss[0], rtol=1e-10)


def test_per_coordinate_alpha_batch(small, rng):
    alpha = rng.uniform(0.2, 1.0, (2, small.d))
    batched = dln.run(small, dln.GD(), dln.Steps(0.02, 50), alpha=alpha, loss_tol=0)
    for b in range(2):
        single = dln.run(small, dln.GD(), dln.Steps(0.02, 50), alpha=alpha[b:b + 1], loss_tol=0)
        np.testing.assert_allclose(batched.theta[b], single.theta[0], rtol=1e-12)


def test_divergence_is_a_status_with_the_step_and_the_stable_step_size(small):
    """One diverging run does not disturb the others; its message names the step and `eta < 2/lambda_max`,
    with lambda_max computed here from the dense Hessian at initialization."""
    alpha = 1.0
    _, _, H = _parts("squares", np.full((2, small.d), alpha), small.X[0], small.y[0])
    eta_max = 2 / np.linalg.eigvalsh(H).max()
    eta = np.array([0.5 * eta_max, 3 * eta_max])
    res = dln.run(small, dln.GD(), dln.Steps(eta, 5000), alpha=alpha)
    assert list(res.status) == ["converged", "diverged"]
    msg = res.message[1]
    k = int(re.search(r"diverged at step (\d+)", msg).group(1))
    assert k == res.steps[1] and 0 < k < 5000
    stated = float(re.search(r"eta < ([0-9.e+-]+)", msg).group(1))
    assert abs(stated - eta_max) <= 5e-3 * eta_max  # printed to 3 significant digits
    assert "`eta`" in msg
    # the final state of the diverged run is its last finite one, far above the initial loss
    assert res.final.train_loss[1] > 1e12 * small.loss(np.zeros((1, small.d)))[0]
    assert np.all(np.isfinite(res.final.beta[0]))
    np.testing.assert_allclose(res.t_final[1], k * eta[1], rtol=1e-15)


def test_divergence_message_uses_the_update_jacobian_for_gr(small):
    """For GR the update's Jacobian is `H + gamma (H^2 + dH[grad L])`, whose largest eigenvalue (here by
    a dense central-difference Jacobian of the reference direction) bounds eta far below 2/lambda_max(H)."""
    gamma, alpha = 0.1, 1.0
    th0 = np.full((2, small.d), alpha).ravel()
    D = lambda th: REFERENCE["gr"]("squares", th, small.X[0], small.y[0], dict(gamma=gamma))  # noqa: E731
    h = 1e-6
    J = np.array([(D(th0 + h * e) - D(th0 - h * e)) / (2 * h) for e in np.eye(th0.size)]).T
    eta_max = 2 / np.abs(np.linalg.eigvals(J)).max()
    _, _, H = _parts("squares", th0.reshape(2, -1), small.X[0], small.y[0])
    assert eta_max < 0.5 * 2 / np.linalg.eigvalsh(H).max()
    res = dln.run(small, dln.GR(gamma), dln.Steps(3 * eta_max, 5000), alpha=alpha)
    assert res.status[0] == "diverged"
    stated = float(re.search(r"eta < ([0-9.e+-]+)", res.message[0]).group(1))
    assert abs(stated - eta_max) <= 5e-3 * eta_max


def test_saves_lie_on_t_eta_k_and_repeat_the_final_state(small):
    eta = np.array([0.02, 0.03])  # below 2/lambda_max = 0.051 at alpha = 1
    times = np.array([0.0, 0.3, 0.95, 50.0])
    res = dln.run(small, dln.GD(), dln.Steps(eta, 100_000), alpha=1.0, save_at=times, loss_tol=1e-12)
    np.testing.assert_allclose(res.t, np.rint(times / eta[:, None]) * eta[:, None], rtol=1e-15)
    assert np.all(res.status == "converged") and np.all(res.t_final < 50)
    # the last save time lies after convergence: it repeats the final state
    np.testing.assert_array_equal(res.saved.beta[:, -1], res.final.beta)
    # the state saved at t = 0 is the initialization, beta = 0
    np.testing.assert_array_equal(res.saved.beta[:, 0], 0.0)
    assert np.all(res.final.train_loss <= 1e-12 * small.loss(np.zeros((1, small.d))))


def test_absolute_and_relative_loss_tolerance(small):
    L0 = small.loss(np.zeros((1, small.d)))[0]
    rel = dln.run(small, dln.GD(), dln.Steps(0.02, 100_000), alpha=1.0, loss_tol=1e-6)
    ab = dln.run(small, dln.GD(), dln.Steps(0.02, 100_000), alpha=1.0, loss_tol=1e-6, relative=False)
    assert rel.final.train_loss[0] <= 1e-6 * L0 < rel_prev_loss(small, rel)
    assert ab.final.train_loss[0] <= 1e-6 and ab.steps[0] != rel.steps[0]


def rel_prev_loss(problem, res):
    """Loss one step before the run stopped: above the tolerance, or the run would have stopped there."""
    prev = dln.run(problem, dln.GD(), dln.Steps(0.02, int(res.steps[0]) - 1), alpha=1.0, loss_tol=0)
    return prev.final.train_loss[0]


def test_max_steps_cap(small):
    res = dln.run(small, dln.GD(), dln.Steps(0.01, 7), alpha=1.0)
    assert res.status[0] == "max_steps" and res.steps[0] == 7 and res.grad_evals[0] == 8
    np.testing.assert_allclose(res.t_final[0], 0.07, rtol=1e-15)


@pytest.mark.parametrize("kw, name", [(dict(eta=0.0), "`eta`"), (dict(eta=-1.0), "`eta`"),
                                      (dict(eta=0.1, max_steps=0), "`max_steps`")])
def test_bad_steps(kw, name):
    with pytest.raises(dln.InputError, match=name):
        dln.Steps(**kw)


def test_batch_size_mismatch_names_both_arguments(small):
    with pytest.raises(dln.InputError, match="`alpha`.*`gamma`|`gamma`.*`alpha`"):
        dln.run(small, dln.GR(np.array([0.1, 0.2, 0.3])), dln.Steps(0.01), alpha=np.array([1.0, 2.0]))


@pytest.mark.parametrize("kw, name", [
    (dict(problem=None), "`problem`"), (dict(model="depth"), "`model`"), (dict(alpha=[]), "`alpha` is empty"),
    (dict(algorithm=dln.GR(gamma=np.array([0.1, 0.2])), alpha=np.ones(0)), "`alpha` is empty"),
    (dict(theta0=np.full((2, 20), 1e200)), r"`theta0` must satisfy 1e-100 <= theta0 <= 1e\+50"),
    (dict(model=dln.Product(), theta0=np.full((2, 20), -1e60)), r"`theta0` must satisfy \|theta0\| <= 1e\+50"),
    (dict(save_at=np.arange(10**6), alpha=np.ones(1000)), "`save_at`.*GiB")])
def test_run_refuses_what_it_cannot_run(small, kw, name):
    """One `InputError` naming the argument, before any step: not an AttributeError deep inside, an empty
    Result, a LinAlgError from an overflowing start (u0 = 1e200: u0^2 is inf) or a failed allocation."""
    kw = {"problem": small, **kw}
    with pytest.raises(dln.InputError, match=name):
        dln.run(kw.pop("problem"), kw.pop("algorithm", dln.GD()), dln.Flow(), **kw)


@pytest.mark.parametrize("make, words", [
    (lambda: dln.Steps(0.1, max_steps=10**30), "beyond 64-bit"), (lambda: dln.Depth(10**30), "depth <= 100"),
    (lambda: dln.Depth(True), "integer")])
def test_declarations_refuse_values_numpy_cannot_hold(make, words):
    with pytest.raises(dln.InputError, match=words):
        make()


def test_huge_python_numbers_and_an_infinite_cap_are_accepted(small):
    """A float hyperparameter given as a Python int beyond 64 bits is a float (NumPy would hold an object);
    `max_time = inf` is the default cap, so it may also be given."""
    assert dln.GR(gamma=10**30).gamma == 1e30
    assert dln.run(small, dln.GD(), dln.Steps(0.01, 2), alpha=10**30).alpha[0] == 1e30  # once "object values"
    res = dln.run(small, dln.GD(), dln.Steps(0.01, 3, max_time=np.inf), alpha=1.0)
    assert res.status[0] == "max_steps" and res.steps[0] == 3


@pytest.mark.parametrize("model, theta0, eta", [(dln.Product(), np.zeros((2, 20)), 0.01), (None, None, 1e-300)])
def test_a_state_frozen_in_floating_point_stops_as_stalled(small, model, theta0, eta):
    """u = v = 0 is a stationary point of beta = u v (the direction is 0), and a step of 1e-300 is below the
    round-off of u = v = 1: either way no step changes theta, so the run stops as `stalled` after two
    `check_every` intervals (the first finds the loss unchanged and keeps theta, the second finds theta
    unchanged) instead of taking its 100,000 steps."""
    res = dln.run(small, dln.GD(), dln.Steps(eta), model=model, theta0=theta0, alpha=1.0)
    k = dln.Steps.check_every
    assert res.status[0] == "stalled" and res.steps[0] == 3 * k, (res.status[0], res.steps[0])
    assert "has not changed in floating point" in res.message[0] and "`eta`" in res.message[0]
    assert np.isfinite(res.final.train_loss[0])


def test_a_loss_tolerance_below_round_off_is_not_taken_for_no_interpolator(small):
    """The least-squares floor of data that interpolate is round-off (~1e-31 of the loss scale): a loss
    tolerance below it (1e-300) can never be reached, but the data still have an interpolator: the flow
    fits them to round-off and stops at rest, saying so, not as `no_interpolator` (it once did, with a
    negative excess over the floor)."""
    res = dln.run(small, dln.GD(), dln.Flow(), alpha=1.0, loss_tol=1e-300, relative=False)
    assert res.status[0] == "stalled" and "fit to round-off" in res.message[0], res.message[0]
    assert res.final.train_loss[0] < 1e-26  # fitted: the loss at beta = 0 is 0.31 here


def test_a_run_fitted_to_round_off_goes_on_to_its_cap(small):
    """GD at eta 0.02 fits these data to round-off and then repeats one state exactly (without the rule below
    it stopped as `stalled` at step 768); with `loss_tol = 0` the run must still reach its cap, its loss at
    round-off, since a frozen state is `stalled` only above the loss of a round-off fit."""
    res = dln.run(small, dln.GD(), dln.Steps(0.02, 20000), alpha=1.0, loss_tol=0)
    assert res.status[0] == "max_steps" and res.steps[0] == 20000, res.message[0]
    assert res.final.train_loss[0] < 1e-26  # the loss at beta = 0 is 0.31 here


_OBJ = dln.Objective(dln.make_problem(n=8, d=20, s=2, seed=0, n_test=10), dln.Squares())


@pytest.mark.parametrize("call, words", [
    (lambda p: dln.direction(dln.GD(), _OBJ, np.ones((2, 20))), "`theta` must have shape (B, 2, d)"),
    (lambda p: dln.direction(dln.GD(), _OBJ, np.ones((1, 2, 20)) * 1j), "`theta` must hold real numbers"),
    (lambda p: dln.direction(dln.FGR(gamma=np.array([.1, .2]), eps=.1), _OBJ, np.ones((3, 2, 20))), "`gamma` has 2"),
    (lambda p: dln.direction(dln.GD(), p, np.ones((1, 2, 20))), "`objective` must be a dln.Objective"),
    (lambda p: dln.direction(dln.GD(), _OBJ, np.ones((1, 2, 20)), seed=-1), "`seed` must be a non-negative"),
    (lambda p: dln.solve_dual(p, 0.1, tol=np.nan), "`tol` must be finite (0 < tol < 1)"),
    (lambda p: dln.solve_dual(p, 0.1, max_iter=0), "`max_iter` must satisfy max_iter >= 1"),
    (lambda p: dln.Q_alpha(np.ones((3, 20)), np.ones(2)), "`beta` and `alpha` must have one run each"),
    (lambda p: dln.Q_alpha(np.full(20, np.nan), 0.1), "`beta` must be finite"),
    (lambda p: dln.run(p, dln.GD(), dln.Steps(0.01), relative="no"), "`relative` must be True or False"),
    (lambda p: dln.run(p, dln.GD(), dln.Steps(0.01), progress="yes"), "`progress` must be True or False"),
    (lambda p: dln.run(p, dln.GD(), dln.Steps(0.01), max_wall=[1, 2]), "`max_wall` must be a scalar"),
    (lambda p: dln.run(p, dln.GD(), dln.Steps(0.01), loss_tol=True), "`loss_tol` must be a number (loss_tol >= 0), not a bool"),
    (lambda p: dln.run(p, dln.SGD(4), dln.Steps(0.01), sample_seed=np.uint64(2**63 + 5)), "`sample_seed` must be"),
    (lambda p: dln.run(p, dln.GD(), dln.Steps(0.01), save_at=[1.0, 1.0]), "increasing order, each once"),
    (lambda p: dln.run(p, dln.GD(), dln.Steps(0.01), alpha=True), "`alpha` must be a number > 0, not a bool"),
    (lambda p: dln.GR(gamma=True), "`gamma` must be a number (gamma >= 0), not a bool"),
    (lambda p: dln.MiniBatch(dln.GR(0.1), True), "`batch_size` must be a number"),
])
def test_library_calls_refuse_what_they_cannot_use(small, call, words):
    """A second fuzzing pass over the library: each of these was accepted (a bool as 1, a uint64 seed wrapped
    to a negative one, duplicate save times that xarray cannot select, a NaN `tol` that ran every
    iteration) or failed with an IndexError, AttributeError or a broadcast ValueError."""
    with pytest.raises(dln.InputError) as e:
        call(small)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
