"""Property-based tests (hypothesis) of the invariants every run keeps, on small random problems,
algorithms, hyperparameters and integrators:

- the status is one of the documented `dln.STATUSES`;
- `converged` means the loss is below its tolerance and `beta` is finite;
- a batched run equals the loop of single runs (to round-off for steps, to the solver's tolerance
  for flows);
- discrete steps taken many per call equal steps taken one per call, bit for bit;
- gradient flow ends at the dual solution `argmin Q_alpha`, within the bound its stopping residual sets;
- no warning (overflow, invalid value, ...) escapes to the user: every test runs with warnings as errors.

Examples are drawn deterministically (`derandomize=True`) and bounded in number, so CI is
reproducible and fast; `deadline=None` because a flow's first call compiles nothing but its time
depends on the problem drawn.
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dln
from test_bias import _batch_tol, _check_limit

FAST = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


problems = st.builds(lambda n, extra, seed: dln.make_problem(n=n, d=n + extra, s=1, seed=seed, n_test=0),
                     st.integers(1, 5), st.integers(1, 8), st.integers(0, 1000))
log_alpha = st.floats(-2, 1)


@st.composite
def algorithms(draw):
    """An algorithm of the GR family or SAM with a drawn hyperparameter, usable as a flow and as steps."""
    kind = draw(st.sampled_from(["gd", "gr", "fgr", "bgr", "sam", "usam"]))
    g = draw(st.floats(0.0, 0.3))
    e = draw(st.floats(0.01, 0.3))
    r = draw(st.floats(0.005, 0.1))
    return {"gd": lambda: dln.GD(), "gr": lambda: dln.GR(g), "fgr": lambda: dln.FGR(g, e),
            "bgr": lambda: dln.BGR(g, e), "sam": lambda: dln.SAM(r), "usam": lambda: dln.USAM(r)}[kind]()


integrators = st.one_of(
    st.builds(lambda eta, k: dln.Steps(eta, max_steps=k), st.floats(1e-3, 2.0), st.integers(1, 300)),
    st.builds(lambda k: dln.Flow(rtol=1e-6, max_steps=k), st.integers(1, 150)))


@FAST
@given(problems, algorithms(), integrators, log_alpha, st.floats(1e-12, 1e-2))
def test_status_is_documented_and_converged_means_below_tolerance(problem, algorithm, integrator, la, loss_tol):
    """Large steps diverge, small caps stop runs early: whatever happens, the status is documented, and
    a converged run's loss is at most `loss_tol L(theta0)` with a finite `beta`."""
    res = dln.run(problem, algorithm, integrator, alpha=10.0**la, loss_tol=loss_tol)
    assert set(res.status) <= set(dln.STATUSES)
    L0 = problem.loss(np.zeros((1, problem.d)))[0]  # beta(theta0) = 0: u = v = alpha
    for b in np.flatnonzero(res.status == "converged"):
        assert np.all(np.isfinite(res.final.beta[b]))
        assert res.final.train_loss[b] <= loss_tol * L0


@FAST
@given(problems, st.sampled_from(["gd", "fgr", "bgr", "usam"]), st.lists(st.floats(1e-3, 3.0), min_size=1, max_size=3),
       st.integers(1, 200), st.one_of(st.just(np.inf), st.floats(0.01, 20.0)),
       st.lists(st.floats(0.0, 20.0), max_size=4, unique=True), st.floats(1e-10, 1e-3), st.data())
def test_steps_taken_many_per_call_equal_one_per_call(problem, kind, eta, max_steps, max_time, save_at, loss_tol,
                                                      data):
    """The driver hands GD and F-GR up to 32 steps per call (`Steps.room`), which stop where a loss leaves
    the band of no work; whatever the step sizes (per run), caps and save times drawn, every state, save,
    status and counter equals, bit for bit, the run taken one step per call."""
    alg = {"gd": dln.GD(), "fgr": dln.FGR(0.1, 0.1), "bgr": dln.BGR(0.05, 0.2), "usam": dln.USAM(0.05)}[kind]
    alpha = 10.0 ** np.array(data.draw(st.lists(log_alpha, min_size=len(eta), max_size=len(eta))))
    kw = dict(alpha=alpha, save_at=sorted(save_at), loss_tol=loss_tol)
    steps = dln.Steps(np.array(eta), max_steps=max_steps, max_time=max_time)
    many = dln.run(problem, alg, steps, **kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dln.integrate.Steps, "room", lambda self, *a: 1)
        one = dln.run(problem, alg, steps, **kw)
    for f in ("status", "message", "steps", "t_final", "grad_evals", "theta", "t"):
        np.testing.assert_array_equal(getattr(many, f), getattr(one, f), err_msg=f)
    if save_at:
        np.testing.assert_array_equal(many.saved.beta, one.saved.beta)


@FAST
@given(problems, st.lists(st.tuples(log_alpha, st.floats(0.0, 0.3), st.floats(1e-3, 0.05)), min_size=2, max_size=3))
def test_batched_steps_equal_single_steps(problem, rows):
    """Discrete F-GR steps with per-run alpha, gamma and eta: row b is the single run, to the round-off
    of at most 200 steps relative to max|theta| (the bound of tests/test_steps.py)."""
    la, gamma, eta = (np.array(c) for c in zip(*rows))
    run = lambda a, g, h: dln.run(problem, dln.FGR(g, 0.1), dln.Steps(h, max_steps=200), alpha=a,  # noqa: E731
                                  loss_tol=1e-10)
    batched = run(10.0**la, gamma, eta)
    for b in range(len(rows)):
        one = run(10.0 ** la[b], gamma[b], eta[b])
        assert batched.status[b] == one.status[0] and batched.steps[b] == one.steps[0]
        scale = np.abs(one.theta[0]).max()
        np.testing.assert_allclose(batched.theta[b], one.theta[0], rtol=0, atol=1e-11 * scale)


@settings(FAST, max_examples=4)
@given(problems, st.lists(log_alpha, min_size=2, max_size=3))
def test_batched_gr_flows_equal_single_flows(problem, la):
    """GR flows with per-run alpha: row b is the single run to the solver's tolerance (`_batch_tol`)."""
    alpha, gamma = 10.0 ** np.array(la), np.linspace(0, 0.2, len(la))
    batched = dln.run(problem, dln.GR(gamma), dln.Flow(rtol=1e-6), alpha=alpha, loss_tol=1e-8)
    for b in range(len(la)):
        one = dln.run(problem, dln.GR(gamma[b]), dln.Flow(rtol=1e-6), alpha=alpha[b], loss_tol=1e-8)
        assert batched.status[b] == one.status[0]
        if one.status[0] == "converged":
            tol = _batch_tol(1e-6, np.abs(one.final.beta[0]).max())
            np.testing.assert_allclose(batched.final.beta[b], one.final.beta[0], rtol=0, atol=tol)


@settings(FAST, max_examples=10)
@given(problems, log_alpha)
def test_gradient_flow_ends_at_the_dual_solution(problem, la):
    """The gradient-flow limit is `argmin Q_alpha` s.t. `X beta = y`, computed independently by the dual
    Newton solve; the flow stops at loss <= 1e-14 L0, and `_check_limit` bounds the gap by the tail that
    stopping residual leaves (first order) plus its square and round-off."""
    alpha = 10.0**la
    res = dln.run(problem, dln.GD(), dln.Flow(rtol=1e-6), alpha=alpha)
    assert res.status[0] == "converged"
    _check_limit(problem, res, 0, np.full(problem.d, alpha))



special = st.sampled_from([0.0, 1e-300, 1e-7, 1e-6, 1.0, 3.5, np.inf, np.nan])


@FAST
@given(st.integers(1, 4), st.integers(1, 6), st.data())
def test_the_collapse_kernel_is_numpys_expression(B, d, data):
    """`_kernels.any_below(a, ref, c)` is the driver's former `np.any(a / ref < c, axis=1)` (NaN and
    0/0 compare false in both) on states with zeros, infinities, NaN and values around the threshold;
    references are scales, positive and above the range where `c ref` underflows."""
    from dln import _kernels
    a = np.array(data.draw(st.lists(special, min_size=B * d, max_size=B * d))).reshape(B, d)
    ref = np.array(data.draw(st.lists(st.sampled_from([1e-60, 1.0, 7.0, np.inf]), min_size=B * d,
                                      max_size=B * d))).reshape(B, d)
    with np.errstate(all="ignore"):
        expected = np.any(a / ref < 1e-6, axis=1)
    np.testing.assert_array_equal(_kernels.any_below(a, ref, 1e-6), expected)
