"""Stochastic and stateful algorithms (`dln.stochastic`, `dln.random`) against hand-written single-run loops
written from docs/theory.md, the identities b = n (GD) and m = n (USAM/SAM), the batch contract with
staggered stops, and statistical checks of the counter-based streams.

The reference loops take their random draws from `dln.random` (whose statistics are tested here) but form
the mini-batches, noisy labels, groups and momentum themselves, one run at a time, with dense gradients.
"""
import numpy as np
import pytest
from scipy import stats

import dln
from dln import random as R
from dln.algorithms import ALGORITHMS, example, hyperparameters

# ---- counter-based streams --------------------------------------------------------------------

N_STAT = 200_000


def test_uniforms_are_uniform_and_independent():
    """Fixed seeds, so no flake; the bounds are ~4-5 standard errors of each statistic at this sample size."""
    U = R.uniform(np.arange(100), 7, 3, N_STAT // 100).ravel()
    N = U.size
    assert U.min() > 0 and U.max() < 1
    assert abs(U.mean() - 0.5) < 5 * np.sqrt(1 / 12 / N)
    assert abs(U.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / N)      # var(U^2 - ...) : sd of the sample variance
    # Kolmogorov-Smirnov: P(D > 1.95 / sqrt(N)) = 0.001 under uniformity
    assert stats.kstest(U, "uniform").statistic < 1.95 / np.sqrt(N)
    # lag-1 and cross-stream/step/seed correlations: sd 1/sqrt(N) each
    for other in (U[1:], R.uniform(np.arange(100), 7, 4, N // 100).ravel(), R.uniform(np.arange(100), 8, 3, N // 100).ravel(),
                  R.uniform(np.arange(1, 101), 7, 3, N // 100).ravel()):
        k = min(U.size, other.size)
        assert abs(np.corrcoef(U[:k], other[:k])[0, 1]) < 5 / np.sqrt(k)


def test_normals_are_standard_normal():
    Z = R.normal(np.arange(50), 11, 2, N_STAT // 50).ravel()
    N = Z.size
    assert abs(Z.mean()) < 5 / np.sqrt(N)
    assert abs(Z.var() - 1) < 5 * np.sqrt(2 / N)
    assert stats.kstest(Z, "norm").statistic < 1.95 / np.sqrt(N)
    assert abs(np.corrcoef(Z[:-1], Z[1:])[0, 1]) < 5 / np.sqrt(N)


def test_a_row_depends_on_its_own_seed_only():
    seeds = np.array([5, 0, 2**40, 7])
    U = R.uniform(seeds, 3, 1, 9)
    for b, s in enumerate(seeds):
        np.testing.assert_array_equal(U[b], R.uniform(np.array([s]), 3, 1, 9)[0])
    P = R.permutation(seeds, 2, 1, 11)
    assert all(sorted(p) == list(range(11)) for p in P)
    assert not np.array_equal(P[0], R.permutation(seeds, 3, 1, 11)[0]), "a new epoch reshuffles"


# ---- independent single-run references (squares model, dense) ---------------------------------

def _grad(th, X, y):
    """docs/theory.md: loss ||X beta - y||^2/(2n) on the rows given, its gradient (2u g, -2v g) and g."""
    u, v = th
    r = X @ (u * u - v * v) - y
    g = X.T @ r / len(y)
    return r @ r / (2 * len(y)), np.array([2 * u * g, -2 * v * g]), g


def _hess_vec(th, X, y, w):
    """H w = J^T (X^T X / n) J w + g * (2 w_u, -2 w_v) for the squares model."""
    u, v = th
    _, _, g = _grad(th, X, y)
    Jw = 2 * u * w[0] - 2 * v * w[1]
    A = X.T @ (X @ Jw) / len(y)
    return np.array([2 * u * A + 2 * g * w[0], -2 * v * A - 2 * g * w[1]])


def _dir_gd(th, X, y, h):
    return _grad(th, X, y)[1]


def _dir_gr(th, X, y, h):
    G = _grad(th, X, y)[1]
    return G + h["gamma"] * _hess_vec(th, X, y, G)


def _dir_fgr(th, X, y, h):
    G = _grad(th, X, y)[1]
    return G + h["gamma"] / h["eps"] * (_grad(th + h["eps"] * G, X, y)[1] - G)


def _dir_sam(th, X, y, h):
    G = _grad(th, X, y)[1]
    nrm = np.linalg.norm(G)
    return _grad(th + h["rho"] * (G / nrm if nrm > 0 else 0 * G), X, y)[1]


def _dir_usam(th, X, y, h):
    G = _grad(th, X, y)[1]
    return _grad(th + h["rho"] * G, X, y)[1]


def _dir_flood(th, X, y, h):
    L, G, _ = _grad(th, X, y)
    return np.sign(L - h["b"]) * G


BASES = {  # name -> (library object, docs/theory.md direction, hyperparameters)
    "gd": (lambda h: dln.GD(), _dir_gd, {}),
    "gr": (lambda h: dln.GR(h["gamma"]), _dir_gr, dict(gamma=0.05)),
    "fgr": (lambda h: dln.FGR(h["gamma"], h["eps"]), _dir_fgr, dict(gamma=0.05, eps=-0.05)),
    "sam": (lambda h: dln.SAM(h["rho"]), _dir_sam, dict(rho=0.05)),
    "usam": (lambda h: dln.USAM(h["rho"]), _dir_usam, dict(rho=0.05)),
    "flood": (lambda h: dln.Flooding(h["b"]), _dir_flood, dict(b=0.02)),
}


def _reference(kind, base, th0, X, y, eta, K, seed, b=None, sigma=None, m=None, momentum=None, nesterov=False):
    """K steps of one run, written from docs/theory.md's conventions."""
    n = len(y)
    direction, h = BASES[base][1], BASES[base][2]
    th = th0.copy()
    mom = np.zeros_like(th)
    for k in range(K):
        at = th - eta * momentum * mom if nesterov else th
        if kind == "minibatch":
            perm = R.permutation(np.array([seed]), k // (n // b), R.STREAMS["batch"], n)[0]
            rows = perm[(k % (n // b)) * b:(k % (n // b) + 1) * b]
            D = direction(at, X[rows], y[rows], h)
        elif kind == "label_noise":
            xi = R.normal(np.array([seed]), k, R.STREAMS["label_noise"], n)[0]
            D = direction(at, X, y + sigma * xi, h)
        elif kind == "msharp":
            D = sum(direction(at, X[G:G + m], y[G:G + m], h) for G in range(0, n, m)) * (m / n)
        else:
            D = direction(at, X, y, h)
        if momentum is not None:
            mom = momentum * mom + D
            D = mom
        th = th - eta * D
    return th


@pytest.fixture(scope="module")
def prob():
    return dln.make_problem(n=8, d=12, s=2, seed=3, n_test=0)


CASES = {  # id -> (library algorithm, reference kwargs)
    "sgd b=2": (dln.SGD(2), dict(kind="minibatch", base="gd", b=2)),
    "sgd b=1": (dln.SGD(1), dict(kind="minibatch", base="gd", b=1)),
    "minibatch gr b=4": (dln.MiniBatch(dln.GR(0.05), 4), dict(kind="minibatch", base="gr", b=4)),
    "minibatch fgr b=4": (dln.MiniBatch(dln.FGR(0.05, -0.05), 4), dict(kind="minibatch", base="fgr", b=4)),
    "minibatch sam b=2": (dln.MiniBatch(dln.SAM(0.05), 2), dict(kind="minibatch", base="sam", b=2)),
    "minibatch flood b=4": (dln.MiniBatch(dln.Flooding(0.02), 4), dict(kind="minibatch", base="flood", b=4)),
    "label noise": (dln.LabelNoise(0.3), dict(kind="label_noise", base="gd", sigma=0.3)),
    "1-sam": (dln.MSharpness(dln.SAM(0.05), 1), dict(kind="msharp", base="sam", m=1)),
    "1-usam": (dln.MSharpness(dln.USAM(0.05), 1), dict(kind="msharp", base="usam", m=1)),
    "1-fgr": (dln.MSharpness(dln.FGR(0.05, -0.05), 1), dict(kind="msharp", base="fgr", m=1, eta=0.005)),
    "2-usam": (dln.MSharpness(dln.USAM(0.05), 2), dict(kind="msharp", base="usam", m=2)),
    "4-fgr": (dln.MSharpness(dln.FGR(0.05, -0.05), 4), dict(kind="msharp", base="fgr", m=4)),
    "heavy ball gd": (dln.Momentum(dln.GD(), 0.9), dict(kind="full", base="gd", momentum=0.9)),
    "nesterov gr": (dln.Momentum(dln.GR(0.05), 0.8, True), dict(kind="full", base="gr", momentum=0.8, nesterov=True)),
    "nesterov sgd": (dln.Momentum(dln.SGD(2), 0.5, True), dict(kind="minibatch", base="gd", b=2, momentum=0.5,
                                                                 nesterov=True)),
    "heavy ball 1-sam": (dln.Momentum(dln.MSharpness(dln.SAM(0.05), 1), 0.7),
                         dict(kind="msharp", base="sam", m=1, momentum=0.7)),
}

#: max |theta_lib - theta_ref| / max |theta_ref| per case, printed for the report
MAX_DIFF = {}


@pytest.mark.parametrize("case", list(CASES))
def test_each_algorithm_matches_its_hand_written_loop(prob, case):
    alg, kw = CASES[case][0], dict(CASES[case][1])
    # per-example B-GR is stable only below eta ~ 0.01 here (its one-row Hessians are large)
    eta, K, alpha, seed = kw.pop("eta", 0.02), 60, 0.7, 17
    th0 = np.full((2, prob.d), alpha)
    ref = _reference(th0=th0, X=prob.X[0], y=prob.y[0], eta=eta, K=K, seed=seed, **kw)
    res = dln.run(prob, alg, dln.Steps(eta, max_steps=K), alpha=alpha, loss_tol=0, sample_seed=seed)
    assert res.steps[0] == K and res.status[0] == "max_steps"
    err = np.abs(res.theta[0] - ref).max() / np.abs(ref).max()
    MAX_DIFF[case] = err
    print(f"{case}: max relative difference {err:.2e}")
    # 60 steps of a map with Lipschitz constant ~1 + eta lambda: round-off (a few ulps per step, different
    # summation orders) accumulates to ~K * 10 eps
    assert err <= 60 * 10 * np.finfo(float).eps


@pytest.mark.parametrize("base", list(BASES))
def test_full_batch_is_the_base_algorithm_bit_for_bit(prob, base):
    """b = n: every row has weight sqrt(n/b) = 1, and multiplying by 1.0 changes no bit."""
    alg = BASES[base][0](BASES[base][2])
    kw = dict(alpha=np.array([0.7, 0.3]), loss_tol=0, sample_seed=[3, 4])
    full = dln.run(prob, dln.MiniBatch(alg, prob.n), dln.Steps(0.02, max_steps=50), **kw)
    plain = dln.run(prob, alg, dln.Steps(0.02, max_steps=50), **kw)
    np.testing.assert_array_equal(full.theta, plain.theta)
    if base == "gd":
        np.testing.assert_array_equal(dln.run(prob, dln.SGD(prob.n), dln.Steps(0.02, max_steps=50), **kw).theta,
                                      plain.theta)


@pytest.mark.parametrize("base", ["usam", "sam", "fgr"])
def test_m_equal_n_is_the_base_algorithm_to_round_off(prob, base, rng):
    alg = BASES[base][0](BASES[base][2])
    obj = dln.Objective(prob, dln.Squares())
    theta = rng.uniform(0.2, 1.0, (3, 2, prob.d))
    D1 = dln.direction(dln.MSharpness(alg, prob.n), obj, theta)
    D0 = dln.direction(alg, obj, theta)
    # the same sums in another order (einsum over groups vs matrix products): a few ulps of |grad|
    assert np.abs(D1 - D0).max() <= 64 * np.finfo(float).eps * np.abs(D0).max()
    # 30 steps, before SAM's bouncing phase (once ||grad L|| << rho it amplifies round-off chaotically,
    # tests/test_steps.py): round-off per step, accumulated
    r1 = dln.run(prob, dln.MSharpness(alg, prob.n), dln.Steps(0.02, max_steps=30), alpha=0.5, loss_tol=0)
    r0 = dln.run(prob, alg, dln.Steps(0.02, max_steps=30), alpha=0.5, loss_tol=0)
    np.testing.assert_allclose(r1.theta, r0.theta, rtol=30 * 64 * np.finfo(float).eps)


@pytest.mark.parametrize("model", [dln.Squares(), dln.Product(), dln.Depth(3)])
@pytest.mark.parametrize("make", [dln.SAM, dln.USAM])
def test_per_example_sharpness_is_the_mean_of_one_row_problems(model, make, rng):
    """m = 1 (closed form by matrix products on quadratic models, groups of one on the others) against its
    definition: the mean over k of the base's direction on the one-row problem (X[k], y[k]), whose loss is
    l_k = r_k^2 / 2."""
    p = dln.make_problem(n=6, d=9, s=2, seed=4, n_test=0)
    theta = rng.uniform(0.2, 1.0, (3, 2, p.d))
    D = dln.direction(dln.MSharpness(make(0.1), 1), dln.Objective(p, model), theta)
    ref = np.mean([dln.direction(make(0.1), dln.Objective(dln.Problem(p.X[0, k:k + 1], p.y[0, k:k + 1]),
                                                           model), theta) for k in range(p.n)], axis=0)
    # the same terms summed in another order: a few ulps of the largest term
    assert np.abs(D - ref).max() <= 64 * np.finfo(float).eps * p.n * np.abs(ref).max()


def test_m_sharpness_is_a_flow(prob):
    res = dln.run(prob, dln.MSharpness(dln.USAM(0.05), 2), dln.Flow(max_time=5.0), alpha=0.5, loss_tol=0)
    assert res.status[0] == "max_time" and np.isfinite(res.final.train_loss[0])
    with pytest.raises(dln.InputError, match="discrete steps only"):
        dln.run(prob, dln.SGD(2), dln.Flow())


BATCHED = {
    "sgd": lambda: dln.SGD(2),
    "minibatch gr": lambda: dln.MiniBatch(dln.GR(0.2), 4),
    "label noise": lambda: dln.LabelNoise(0.05),
    "1-sam": lambda: dln.MSharpness(dln.SAM(0.02), 1),
    "nesterov sgd": lambda: dln.Momentum(dln.SGD(4), 0.5, True),
    "heavy ball gd": lambda: dln.Momentum(dln.GD(), 0.9),
}


@pytest.mark.parametrize("name", list(BATCHED))
def test_batched_runs_equal_single_runs_with_staggered_stops(small, name):
    """Row b equals the single run with the b-th eta, alpha and sample seed. The runs stop at different
    steps (eta = 0.5 diverges at once, the others converge at different steps), so the
    driver slices the live runs' state (seeds, momentum) several times."""
    eta = np.array([0.01, 0.03, 0.5, 0.02])
    alpha = np.array([0.5, 0.3, 1.0, 0.1])
    seeds = np.array([11, 0, 5, 2**33])
    kw = dict(save_at=[0.0, 0.05, 0.5, 3.0], loss_tol=1e-2)
    batched = dln.run(small, BATCHED[name](), dln.Steps(eta, 600), alpha=alpha, sample_seed=seeds, **kw)
    assert "diverged" in batched.status and len(set(batched.steps.tolist())) == 4
    for b in range(4):
        single = dln.run(small, BATCHED[name](), dln.Steps(eta[b], 600), alpha=alpha[b], sample_seed=seeds[b], **kw)
        for f in ("status", "steps", "grad_evals"):
            np.testing.assert_array_equal(getattr(batched, f)[b], getattr(single, f)[0], err_msg=f)
        # the draws are identical; the arithmetic differs only in the BLAS order of the products: round-off
        np.testing.assert_allclose(batched.theta[b], single.theta[0], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(batched.saved.beta[b], single.saved.beta[0], rtol=1e-11, atol=1e-14)


def test_a_stopped_run_does_not_disturb_the_others_momentum(small):
    """Momentum kept in the state: the runs that stop first (converged at steps 116 and 129 of 400) leave
    the others' trajectories as when run alone (the issue's 803-vs-802-step failure)."""
    alg = dln.Momentum(dln.SGD(4), 0.9)
    alpha = np.array([1.0, 0.3, 0.1])
    tol = dict(loss_tol=1e-4)
    both = dln.run(small, alg, dln.Steps(0.01, 400), alpha=alpha, sample_seed=[1, 2, 3], **tol)
    assert len(set(both.steps.tolist())) == 3, "the three runs stop at different steps"
    for b in range(3):
        one = dln.run(small, alg, dln.Steps(0.01, 400), alpha=alpha[b], sample_seed=b + 1, **tol)
        assert both.steps[b] == one.steps[0]
        np.testing.assert_allclose(both.theta[b], one.theta[0], rtol=1e-11, atol=1e-14)


def test_label_noise_reports_the_clean_loss(small):
    res = dln.run(small, dln.LabelNoise(0.5), dln.Steps(0.01, 50), alpha=0.5, loss_tol=0, save_at=[0.5])
    clean = small.loss(res.final.beta)
    np.testing.assert_allclose(res.final.train_loss, clean, rtol=1e-14)


def test_wrappers_refuse_what_they_cannot_wrap():
    with pytest.raises(dln.InputError, match="`base`"):
        dln.MSharpness(dln.GD(), 1)
    with pytest.raises(dln.InputError, match="`base`"):
        dln.MiniBatch(dln.MSharpness(dln.SAM(0.1), 1), 2)
    with pytest.raises(dln.InputError, match="`momentum`"):
        dln.Momentum(dln.GD(), 1.0)


def test_divisors_of_n_are_checked_by_run_also_when_nested(small):
    for alg, name in ((dln.SGD(3), "batch_size"), (dln.Momentum(dln.MSharpness(dln.SAM(0.1), 3), 0.5), "m")):
        with pytest.raises(dln.InputError, match=f"`{name}` must divide n = 8"):
            dln.run(small, alg, dln.Steps(0.01, 5))


def test_json_hyperparameters_use_the_algorithms_own_names():
    alg = dln.Momentum(dln.MSharpness(dln.SAM(0.05), 1), 0.9, True)
    assert hyperparameters(alg) == {"rho": 0.05, "m": 1, "momentum": 0.9, "nesterov": True}
    assert repr(alg) == "Momentum(base=MSharpness(base=SAM(rho=0.05), m=1), momentum=0.9, nesterov=True)"


# ---- the registry ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_registered_algorithm_runs_in_steps_and_as_a_flow_where_declared(small, name):
    """Built from its declared examples, each algorithm runs a few steps (and, where `flow`, a short flow)
    and wraps in every wrapper that accepts it; no branch on names."""
    alg = example(ALGORITHMS[name])
    res = dln.run(small, alg, dln.Steps(0.01, 20), alpha=0.5, loss_tol=0, sample_seed=[0, 1])
    assert np.all(res.status == "max_steps") and np.all(np.isfinite(res.theta))
    assert set(hyperparameters(alg)) == {h.name for h, _ in alg.items() if h.kind != "algorithm"}
    if alg.flow:
        fl = dln.run(small, alg, dln.Flow(max_time=0.5), alpha=0.5, loss_tol=0)
        assert fl.status[0] == "max_time"
    mom = dln.run(small, dln.Momentum(alg, 0.5), dln.Steps(0.01, 20), alpha=0.5, loss_tol=0)
    assert np.all(np.isfinite(mom.theta))


# ---- the CLI ------------------------------------------------------------------------------------

def test_cli_per_example_usam_on_the_product_model(cli):
    import json
    base = ["simulate", "--algorithm", "usam", "--m", "1", "--rho", "0.05", "--param", "product", "--u0", "0.5",
            "--v0", "0", "--steps", "--max-steps", "200", "--loss-tol", "0", "--json"]
    code, out, err = cli(*base, "--eta", "0.05")
    assert code == 0, err
    o = json.loads(out)
    assert o["status"] == "max_steps" and o["steps"] == 200 and o["hyperparameters"] == {"rho": 0.05, "m": 1}
    code, out, err = cli(*base, "--eta", "5")
    assert code == 2 and "diverged" in err and "`--eta`" in err and err.count("\n") == 1


def test_cli_wrappers_follow_their_flags(cli):
    import json
    code, out, err = cli("simulate", "--algorithm", "sam", "--rho", "0.05", "--m", "5", "--momentum", "0.9",
                         "--nesterov", "--steps", "--eta", "0.01", "--max-steps", "20", "--json")
    assert code == 0, err
    assert json.loads(out)["hyperparameters"] == {"rho": 0.05, "m": 5, "momentum": 0.9, "nesterov": True}
    code, out, err = cli("simulate", "--algorithm", "gd", "--batch-size", "4", "--sample-seed", "7", "--steps",
                         "--eta", "0.01", "--max-steps", "20", "--json")
    o = json.loads(out)
    assert code == 0 and o["hyperparameters"] == {"batch_size": 4} and o["sample_seed"] == 7
    for argv, flag in ((["--algorithm", "sgd", "--batch-size", "3"], "`--batch-size`"),
                       (["--algorithm", "gd", "--nesterov"], "`--momentum`"),
                       (["--algorithm", "gd", "--m", "2"], "MSharpness")):
        code, out, err = cli("simulate", *argv, "--steps", "--max-steps", "5")
        assert code == 2 and flag in err and err.count("\n") == 1, err


def test_readme_holds_exactly_the_generated_hyperparameter_table():
    from pathlib import Path
    from dln.stochastic import hyperparameter_table
    text = (Path(__file__).parents[1] / "README.md").read_text()
    begin, end = "<!-- hyperparameter table: begin -->\n", "\n<!-- hyperparameter table: end -->"
    assert text[text.index(begin) + len(begin):text.index(end)] == hyperparameter_table()
