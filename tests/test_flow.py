"""The stiff flow (`dln.Flow`): accuracy measured against an independent solver, the order of its
methods measured from step counts, and robust stopping on inputs that once looped or raised."""
import json

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import dln

RTOLS = np.array([1e-5, 1e-6, 1e-7, 1e-8])


def _reference(problem, alpha, gamma, times):
    """beta(t) of GF / GR(gamma) from u = v = alpha by scipy's Radau in (log u, log v) at rtol 1e-12:
    written from the equations (penalty (gamma/2)||grad L||^2), sharing no code with dln.Flow."""
    X, y = problem.X[0], problem.y[0]
    n, d = X.shape
    A, Xty = X.T @ X / n, X.T @ y / n

    def f(t, Y):
        u2, v2 = np.exp(2 * Y[:d]), np.exp(2 * Y[d:])
        g = A @ (u2 - v2) - Xty
        q = A @ ((u2 + v2) * g)  # d/du_j of (gamma/2)||grad L||^2 is 4 gamma u_j (g_j^2 + 2 q_j)
        return np.concatenate([-2 * g - 4 * gamma * (g * g + 2 * q), 2 * g - 4 * gamma * (g * g - 2 * q)])

    sol = solve_ivp(f, (0, times[-1]), np.full(2 * d, np.log(alpha)), method="Radau", rtol=1e-12, atol=1e-13,
                    t_eval=times)
    return (np.exp(2 * sol.y[:d]) - np.exp(2 * sol.y[d:])).T


@pytest.fixture(scope="module")
def sweeps():
    """GF (in nu, exact Jacobian) and GR(0.1) (in (nu, m), Gauss-Newton Jacobian) across RTOLS,
    beta saved at 12 times through the incremental-learning transitions, with the Radau reference."""
    p = dln.make_problem(n=10, d=30, s=2, seed=1, n_test=0)
    alpha, times = 1e-2, np.linspace(2.0, 60.0, 12)
    out = {}
    for gamma in (0.0, 0.1):
        ref = _reference(p, alpha, gamma, times)
        alg = dln.GD() if gamma == 0 else dln.GR(gamma)
        runs = [dln.run(p, alg, dln.Flow(rtol=r, max_time=times[-1]), alpha=alpha, save_at=times, loss_tol=0)
                for r in RTOLS]
        err = np.array([np.abs(r.saved.beta[0] - ref).max() / np.abs(ref).max() for r in runs])
        out[gamma] = err, np.array([r.steps[0] for r in runs]), runs
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.1])
def test_flow_global_error_is_proportional_to_rtol(sweeps, gamma):
    """Error control is honest: the error of the saved beta (dense output included) against Radau at
    rtol 1e-12 falls with rtol as the method's error control predicts and stays within a small multiple
    of it. The NDF keeps each step's local error within the tolerance (error per step, no local
    extrapolation), so at order k the global error is about rtol times the number of steps, which grows
    like rtol^(-1/(k+1)): the regression slope of log error on log rtol is k/(k+1), 2/3 to 6/7 for
    orders 2 to 6, and 1 would mean error per unit step. Measured 0.80 (GF) and 0.97 (GR), errors
    0.2-1.0 rtol (0.94 and 0.90, 0.3-1.5 rtol with the order capped at 5); the band (0.6, 1.1) and the
    bound 3 rtol leave room for other problems. The reference's own error (~1e-11) is below the
    smallest rtol's budget (1e-8)."""
    err, _, runs = sweeps[gamma]
    assert all(r.status[0] == "max_time" for r in runs)
    slope = np.polyfit(np.log(RTOLS), np.log(err), 1)[0]
    assert 0.6 < slope < 1.1, (slope, err)
    assert np.all(err <= 3 * RTOLS), err


@pytest.mark.parametrize("gamma", [0.0, 0.1])
def test_flow_step_counts_show_a_high_order(sweeps, gamma):
    """The variable-order NDF raises its order to 6 where the solution is smooth: a method of fixed order
    q + 1 with an order-q error estimate needs steps growing like rtol^(-1/(q+1)); the regression slope of
    log steps on log rtol must be flatter than that of an order-3 method (-1/4 with its order-3 error
    estimate: the Rosenbrock method the NDF replaced for gradient flow; -1/3 for the W-method it replaced
    for GR).
    Order 6 gives -1/7 asymptotically; the start-up steps at low order, whose number does not depend
    on rtol, flatten it further (measured -0.09 (GF) and -0.10 (GR); -0.12 with the order capped at 5).
    A method stuck at order 1 or 2 gives -1/2 or -1/3."""
    _, steps, _ = sweeps[gamma]
    slope = np.polyfit(np.log(RTOLS), np.log(steps), 1)[0]
    assert -1 / 4 < slope < 0, (slope, steps)


def test_gradient_flow_keeps_alpha_eff_exactly_and_reaches_the_dual_limit():
    """GF in nu never changes log alpha_eff (m' = 0 by `drift_free`), and its limit is argmin Q_alpha
    (solve_dual, an independent Newton solve) up to the stop at loss 1e-14 L0: |beta - beta*| is then
    about sqrt(2 L / lambda_min) ~ 1e-7 relative on this problem; 1e-6 bounds it."""
    p = dln.make_problem(n=10, d=30, s=2, seed=1, n_test=0)
    res = dln.run(p, dln.GD(), dln.Flow(), alpha=1e-3)
    assert res.status[0] == "converged"
    np.testing.assert_allclose(res.final.alpha_eff[0], 1e-3, rtol=1e-13)
    ref = dln.solve_dual(p, 1e-3).beta[0]
    assert np.abs(res.final.beta[0] - ref).max() <= 1e-6 * np.abs(ref).max()


def test_fgr_with_an_overflowing_ascent_step_stops_as_diverged(cli):
    code, out, err = cli("simulate", "--n", 10, "--d", 30, "--algorithm", "fgr", "--gamma", 0.1, "--eps", 1e300,
                         "--json")
    rec = json.loads(out)
    assert rec["status"] == "diverged"
    assert rec["message"].startswith("FGR:") and "not finite" in rec["message"]


@pytest.mark.parametrize("algorithm, integrator, names", [
    (dln.GR(gamma=1e6), dln.Flow(), "`gamma`"),
    (dln.USAM(rho=5.0), dln.Steps(0.01), "`rho`"),
    (dln.Momentum(dln.USAM(rho=5.0), momentum=0.5), dln.Steps(0.01), "`rho` or `momentum`")])
def test_a_collapse_names_the_algorithm_and_its_own_hyperparameters(algorithm, integrator, names):
    """A penalty far too strong for alpha = 0.1 drives u, v to 0 before the data are fitted; the message
    names the algorithm and what to lower among its own hyperparameters (not another's: a GR run was
    once told about an ascent step `rho, eps` it does not have)."""
    p = dln.make_problem(n=10, d=30, s=2, seed=1, n_test=0)
    res = dln.run(p, algorithm, integrator, alpha=0.1)
    assert res.status[0] == "collapsed", res.message[0]
    assert res.message[0].startswith(type(algorithm).__name__ + ":")
    assert res.message[0].endswith(f"lower {names}, or raise `alpha`")


def test_product_model_at_the_origin_is_at_rest(cli):
    """u = v = 0 is a stationary point of beta = u v: the flow stops at once instead of stepping forever."""
    code, out, err = cli("simulate", "--n", 10, "--d", 30, "--param", "product", "--u0", 0, "--v0", 0, "--json")
    rec = json.loads(out)
    assert rec["status"] == "stalled" and rec["message"].startswith("GD:") and "at rest" in rec["message"]


def test_huge_alpha_is_refused_or_capped(cli):
    """alpha = 1e155 is refused at the boundary (exit 2, one line); alpha = 1e50 (allowed) respects
    max_steps, and without it stops as stalled once theta no longer changes in floating point (the lazy
    regime's changes of z ~ 1/alpha^2 are below the round-off of log alpha)."""
    code, out, err = cli("simulate", "--n", 10, "--d", 30, "--alpha", 1e155, "--max-steps", 10)
    assert code == 2 and "alpha" in err
    p = dln.make_problem(n=10, d=30, n_test=0)
    res = dln.run(p, dln.GD(), dln.Flow(max_steps=10), alpha=1e50)
    assert res.status[0] == "max_steps" and res.steps[0] == 10
    res = dln.run(p, dln.GD(), dln.Flow(), alpha=1e50)
    assert res.status[0] == "stalled" and "floating point" in res.message[0] and res.steps[0] < 1000


def test_all_zero_data_are_refused_before_any_run():
    """With X = 0 no beta changes the loss (a flow once looped forever on it): a Problem, however built,
    refuses such data."""
    with pytest.raises(dln.InputError, match="`X` must not be all zeros"):
        dln.Problem(np.zeros((1, 5, 8)), np.ones((1, 5)))


def test_overdetermined_data_reach_the_least_squares_floor():
    """X of shape (2, 1), inconsistent: the flow settles at the floor min_b ||x b - y||^2 / 4 with
    b = x.y / x.x (computed here by hand), with status no_interpolator."""
    x, y = np.array([1.0, 2.0]), np.array([1.0, 3.0])
    b = x @ y / (x @ x)
    floor = np.sum((x * b - y) ** 2) / 4
    res = dln.run(dln.Problem(x[:, None], y), dln.GD(), dln.Flow(), alpha=0.5)
    assert res.status[0] == "no_interpolator"
    np.testing.assert_allclose(res.final.train_loss[0], floor, rtol=1e-8)  # the driver stops within 1e-9 L*
    np.testing.assert_allclose(res.final.beta[0, 0], b, rtol=1e-4)  # L - L* = (x.x/4) db^2: db ~ 1e-5 b


def test_noisy_overdetermined_problem_settles_in_few_steps():
    """60 x 20 with noise has no interpolator; the flow reaches the least-squares floor in a few
    thousand steps (it once ran to max_steps = 200,000), for GF and GR alike."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 20))
    y = X @ rng.standard_normal(20) + 0.5 * rng.standard_normal(60)
    p = dln.Problem(X, y)
    res = dln.run(p, dln.GR(np.array([0.0, 0.1])), dln.Flow(max_steps=20_000), alpha=0.5)
    assert list(res.status) == ["no_interpolator"] * 2, res.message
    assert np.all(res.steps < 20_000)


def test_gradient_flow_at_alpha_1e_minus_60_reaches_the_min_l1_interpolator():
    """At alpha = 1e-60 (z must travel ~ log(1/alpha^2) = 276 before a coordinate grows) the flow in nu
    still converges, to min_l1 (HiGHS LP) up to the dual's own distance alpha^(2(1 - kappa)) (tiny here;
    solve_dual, Newton, measures it) plus the stop at loss 1e-14 L0 (beta within ~1e-7 relative, measured
    6e-8): bound 1e-6 max|beta_l1| on top of the dual's distance."""
    p = dln.make_problem(n=5, d=12, s=6, seed=2, n_test=0)
    res = dln.run(p, dln.GD(), dln.Flow(rtol=1e-6), alpha=1e-60)
    assert res.status[0] == "converged"
    l1 = dln.min_l1(p)[0]
    dual = dln.solve_dual(p, 1e-60).beta[0]
    assert np.abs(res.final.beta[0] - l1).max() <= np.abs(dual - l1).max() + 1e-6 * np.abs(l1).max()


@pytest.mark.parametrize("stacked", [False, True])
def test_the_fused_newton_correction_solves_the_dense_system(stacked):
    """The dual coordinates' Newton correction (one kernel: the rate, the NDF residual, the solve
    through the eigendecomposition and the error norm) against the same equations written densely
    with NumPy: `f = c y'(theta) - psi - d`, `y' = ((X X^T)^{-1} X z', m')`, `z' = D_v/v - D_u/u`,
    `m' = -(D_u/u + D_v/v)/2`, `dy = (I - c J)^{-1} f` with `J = -(K + gamma K^2)` on `nu`, `K = X diag(4
    (u^2 + v^2)) X^T / n`, identity on `m`, solved by `np.linalg.solve`, and its norm
    `max(|X^T dnu| wz, |dm| wm)`. GR drifts `m`, so both parts are exercised; `stacked`: one problem
    per run. The two differ by round-off amplified by the condition number of `I - c J` (c is chosen
    so that it is about 1e3): 1e-10 of the largest entry is ~1e3 times that."""
    from dln import flow as F
    from dln.objective import Objective

    rng = np.random.default_rng(3)
    B, n, d, gamma = 3, 6, 15, 0.2
    X = rng.standard_normal((B if stacked else 1, n, d))
    problem = dln.Problem(X, rng.standard_normal((X.shape[0], n)))
    obj = Objective(problem, dln.models.Depth(2))
    theta = np.exp(rng.normal(-1, 0.5, (B, 2, d)))
    alg = dln.GR(gamma=gamma)
    cs = F._coordinates(obj, alg, theta)
    assert isinstance(cs, F._Dual) and cs.drift
    jac = cs.jacobian(theta, np.full(B, gamma))
    N = n + d
    c = 1e3 / jac["mu"].max(axis=1)
    psi, dsum = rng.standard_normal((B, N)), rng.standard_normal((B, N))
    w = (rng.uniform(1, 2, (B, d)), rng.uniform(1, 2, (B, d)))
    D = rng.standard_normal((B, 2, d))
    dy, norm = cs.corrector(jac, c, psi, w)(theta, D, dsum)
    for b in range(B):
        Xb = X[b if stacked else 0]
        u, v = theta[b]
        zr, mr = D[b, 1] / v - D[b, 0] / u, -(D[b, 0] / u + D[b, 1] / v) / 2
        f = c[b] * np.concatenate([np.linalg.solve(Xb @ Xb.T, Xb @ zr), mr]) - psi[b] - dsum[b]
        K = (Xb * (4 * (u ** 2 + v ** 2))) @ Xb.T / n
        M = np.eye(N)
        M[:n, :n] += c[b] * (K + gamma * K @ K)
        want = np.linalg.solve(M, f)
        np.testing.assert_allclose(dy[b], want, rtol=0, atol=1e-10 * np.abs(want).max())
        want_norm = max(np.abs((want[:n] @ Xb) * w[0][b]).max(), np.abs(want[n:] * w[1][b]).max())
        np.testing.assert_allclose(norm[b], want_norm, rtol=1e-10)
