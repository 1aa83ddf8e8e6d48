"""`dln` against references nobody here wrote.

1. Discrete runs against published printed numbers. The notebook
   `diagonal_linear_nets/diag_nets_sam.ipynb` of tml-epfl/understanding-sam
   (commit f5cb0d2, Andriushchenko & Flammarion 2022) trains `beta = u * v`
   from `u0 = alpha, v0 = 0` by GD and by "n-SAM" (whose perturbation
   `rho * grad L` is not normalized: our USAM) and prints the final test loss
   with 16-17 significant digits. We regenerate its data with the legacy
   NumPy RNG, rerun the printed settings with `dln.run(..., Steps(eta))` and
   compare to 1e-10 relative. The squares model is checked on the same
   printed numbers through an exact change of variables (see
   `test_published_runs_squares_model`). The printed numbers and their
   provenance are in `tests/reference/understanding_sam_printed.json`;
   `tests/reference/README.md` cites the cells.
2. Flows against an independent gradient-flow reference: `_PlainFlow` below
   writes each algorithm's direction by hand from docs/theory.md in plain
   coordinates `theta = (u, v)` (sharing no code with `dln`) and integrates
   `theta' = -D(theta)` with `scipy.integrate.solve_ivp` (DOP853,
   rtol = 1e-12), on the notebook's data. `beta(inf)` and
   `alpha_eff(inf) = sqrt(u v)` must agree to 1e-6 relative (issue 2).
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import dln
from conftest import FULL

HERE = Path(__file__).parent / "reference"
PUBLISHED = json.loads((HERE / "understanding_sam_printed.json").read_text())


def rel(a, b):
    """`||a - b|| / ||b||` (Euclidean norms over all entries)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def understanding_sam_data(n=20, d=30, r=3, n_test=1000, seed=0):
    """The notebook's data (cell 1), regenerated draw for draw with the legacy RNG.

    Its alternative sizes, noted in the same cell, are `n = 40, d = 100, r = 5`.
    """
    rs = np.random.RandomState(seed)
    X = rs.multivariate_normal(np.zeros(d), np.eye(d), n)
    X_test = rs.multivariate_normal(np.zeros(d), np.eye(d), n_test)
    beta_star = rs.randn(d)
    beta_star[r:] = 0
    beta_star = np.abs(beta_star) / np.linalg.norm(beta_star)
    return X, X @ beta_star, X_test, X_test @ beta_star


@pytest.fixture(scope="module")
def notebook_problem():
    X, y, X_test, y_test = understanding_sam_data(**{k: PUBLISHED["data"][k] for k in ("n", "d", "r", "n_test", "seed")})
    return dln.Problem(X, y, X_test, y_test)


# ---------------------------------------------------------------------------
# 1. Discrete runs against the published printed test losses
# ---------------------------------------------------------------------------

#: printed with Python's repr (16-17 significant digits), so the printed precision is
#: ~1e-16 relative; the remaining budget is the floating-point drift of two
#: implementations of the same 10^4 updates (measured: <= 2e-14).
PRINTED_RTOL = 1e-10


def _published_batches(model):
    """Group the printed runs into batched `dln.run` calls: a list of (runs, algorithm, Steps, alpha).

    The 10001-step runs (GD and n-SAM alike) are one call of `FGR(gamma, eps)`
    with one row per run: `USAM(rho)`'s own `(gamma, eps)` for the n-SAM rows,
    and `gamma = 0` for the GD rows, whose direction `grad L + 0 * (...)` is
    then exactly `grad L` (one loop over steps instead of three: the test
    budget). The 20002-step GD run is a call of `GD()` itself, in the product
    model; in the squares model only with DLN_FULL=1 (2 s). Squares model:
    `eta / 2`, `rho / 2`, `alpha / 2` (see `test_published_runs_squares_model`).
    """
    d = PUBLISHED["data"]["d"]
    scale = 0.5 if model == "squares" else 1.0
    out = []
    for steps in sorted({r["steps"] for r in PUBLISHED["runs"]}):
        rows = [r for r in PUBLISHED["runs"] if r["steps"] == steps]
        eta = np.array([r["eta_times_d"] / d for r in rows]) * scale  # the notebook's `gamma = k / d`
        alpha = np.array([r["alpha"] for r in rows]) * scale
        if steps == 10001:
            usam = [dln.USAM(r["rho"] * scale) if r["algorithm"] == "usam" else None for r in rows]
            algorithm = dln.FGR(np.array([0.0 if u is None else u.gamma for u in usam]),
                                np.array([1.0 if u is None else u.eps for u in usam]))
        elif model == "product" or FULL:
            assert {r["algorithm"] for r in rows} == {"gd"}
            algorithm = dln.GD()
        else:
            continue
        out.append((rows, algorithm, dln.Steps(eta, max_steps=steps), alpha))
    return out


def _check_printed(problem, model, batches):
    errors = []
    for runs, algorithm, steps, alpha in batches:
        res = dln.run(problem, algorithm, steps, model=model, alpha=alpha, loss_tol=0)
        assert list(res.status) == ["max_steps"] * len(runs), res.message
        assert np.all(res.steps == steps.max_steps)
        printed = np.array([float(r["printed"]) for r in runs])
        err = np.abs(res.final.test_loss - printed) / printed
        errors.extend(err)
        for r, e, got in zip(runs, err, res.final.test_loss):
            assert e <= PRINTED_RTOL, f"cell {r['cell']}: {r['line']!r}; dln gives {got!r} (rel. error {e:.2e})"
    return max(errors)


def test_published_runs_product_model(notebook_problem):
    """GD and USAM on `beta = u v` (u0 = alpha, v0 = 0) reproduce the 18 printed test losses."""
    worst = _check_printed(notebook_problem, dln.Product(), _published_batches("product"))
    print(f"product model: max relative error against the printed test losses {worst:.1e}")


def test_published_runs_squares_model(notebook_problem):
    """The same printed numbers through the squares model.

    With `a = (u + v)/2`, `b = (u - v)/2` (per coordinate), `a^2 - b^2 = u v`
    and `(a, b) = S (u, v)` with `S = [[1, 1], [1, -1]] / 2`, `S^{-1} = 2 S`,
    `S = S^T`. Hence `grad_(a,b) L = 2 S grad_(u,v) L`, and a GD step `eta/2`
    in `(a, b)` maps to `(u, v) - eta grad L`; the USAM ascent point
    `(a, b) + (rho/2) grad_(a,b) L` maps to `(u, v) + rho grad_(u,v) L`. The
    notebook's runs are therefore squares-model runs with `eta/2`, `rho/2` and
    `u = v = alpha/2`; only the rounding differs. No published printed run of
    the squares model itself was found (tests/reference/README.md).
    """
    worst = _check_printed(notebook_problem, dln.Squares(), _published_batches("squares"))
    print(f"squares model (mapped): max relative error against the printed test losses {worst:.1e}")


def test_printed_table_is_what_the_notebook_prints():
    """Guard the transcription: each stored number ends its printed line, and the
    step size shown there (3 decimals) is the stored `eta_times_d / d`."""
    d = PUBLISHED["data"]["d"]
    assert len(PUBLISHED["runs"]) == 18
    for run in PUBLISHED["runs"]:
        assert run["line"].endswith(" " + run["printed"]), run
        if "gamma=" in run["line"]:
            shown = float(run["line"].split("gamma=")[1].split(")")[0].split(",")[0])
            assert abs(shown - run["eta_times_d"] / d) <= 5e-4, run


# ---------------------------------------------------------------------------
# 2. Flows against an independent reference ODE
# ---------------------------------------------------------------------------

class _PlainFlow:
    """Reference directions `D(theta)` for `beta = u*u - v*v`, written from docs/theory.md.

    `theta` is one flat vector `(u, v)` of length `2d`. `L = ||X beta - y||^2 / (2n)`,
    `g = X^T (X beta - y) / n`, `grad L = (2 u g, -2 v g)`.
    """

    def __init__(self, X, y):
        self.X, self.y, self.n, self.d = X, y, X.shape[0], X.shape[1]
        self.K = X.T @ X / self.n

    def beta(self, th):
        u, v = th[: self.d], th[self.d:]
        return u * u - v * v

    def alpha_eff(self, th):
        return np.sqrt(th[: self.d] * th[self.d:])

    def loss(self, th):
        r = self.X @ self.beta(th) - self.y
        return r @ r / (2 * self.n)

    def _g(self, th):
        return self.X.T @ (self.X @ self.beta(th) - self.y) / self.n

    def grad(self, th):
        u, v, g = th[: self.d], th[self.d:], self._g(th)
        return np.concatenate([2 * u * g, -2 * v * g])

    def gr(self, th, gamma):
        """Exact GR: the gradient of `L + (gamma/2) ||grad L||^2`, differentiated by hand.

        `||grad L||^2 = 4 sum_i g_i^2 (u_i^2 + v_i^2)` and `dg_i/du_k = 2 K_ik u_k`,
        `dg_i/dv_k = -2 K_ik v_k` (`K = X^T X / n`), so its gradient is
        `(8 g^2 u + 16 u K (g s), 8 g^2 v - 16 v K (g s))` with `s = u^2 + v^2`.
        (A different route from `dln`'s `grad L + gamma H grad L`.)
        """
        u, v, g = th[: self.d], th[self.d:], self._g(th)
        w = self.K @ (g * (u * u + v * v))
        penalty = np.concatenate([8 * g * g * u + 16 * u * w, 8 * g * g * v - 16 * v * w])
        return self.grad(th) + gamma / 2 * penalty

    def fgr(self, th, gamma, eps):
        """F-GR: `grad L + (gamma/eps) [grad L(theta + eps grad L) - grad L]`."""
        G = self.grad(th)
        return G + gamma / eps * (self.grad(th + eps * G) - G)

    def bgr(self, th, gamma, eps):
        """B-GR: `grad L + (gamma/eps) [grad L - grad L(theta - eps grad L)]`."""
        G = self.grad(th)
        return G + gamma / eps * (G - self.grad(th - eps * G))

    def usam(self, th, rho):
        """USAM: `grad L(theta + rho grad L)`."""
        return self.grad(th + rho * self.grad(th))

    def sam(self, th, rho):
        """SAM: `grad L(theta + rho grad L / ||grad L||)` (zero perturbation at a zero gradient)."""
        G = self.grad(th)
        norm = np.linalg.norm(G)
        return self.grad(th + rho * G / norm) if norm > 0 else G

    def solve(self, direction, alpha, losses=(), t_end=1e4):
        """Integrate `theta' = -D(theta)` from `u = v = alpha` by DOP853 (rtol 1e-12,
        atol 1e-15) until the loss falls to `min(losses)` or to `t_end`.

        Returns the states where the loss first falls to each of `losses` (events
        located to round-off), in the order given, and the final state and time.
        """
        th0 = np.full(2 * self.d, float(alpha))
        events = []
        for level in losses:
            def event(t, th, level=level):
                return self.loss(th) - level
            event.terminal, event.direction = level == min(losses), -1
            events.append(event)
        sol = solve_ivp(lambda t, th: -direction(th), (0.0, t_end), th0, method="DOP853",
                        rtol=1e-12, atol=1e-15, events=events or None)
        assert sol.success, sol.message
        at = []
        for level, ys in zip(losses, sol.y_events or []):
            assert len(ys), f"reference did not reach loss {level:.1e} by t = {t_end}"
            at.append(ys[0])
        return at, sol.y[:, -1], sol.t[-1]


#: alpha between the kernel and rich regimes: flows converge in t ~ 300 and GR,
#: F-GR, B-GR, USAM and SAM move alpha_eff down to 0.84-0.94 alpha on some coordinates
ALPHA = 0.3
#: the flows, as batched dln calls: (names, dln algorithm with one row per flow,
#: reference directions). GD is GR(0) and rides with GR (its row's direction is
#: grad L + 0 * H grad L = grad L); B-GR and USAM are F-GR rows built by their own
#: factories (`ascent()` is the signed step: B-GR's is `-eps`). Each row of a batch keeps its own adaptive step size.
GAMMA, EPS, RHO = 0.5, 0.3, 0.3
_FD = [dln.FGR(GAMMA, EPS), dln.BGR(GAMMA, EPS), dln.USAM(RHO)]
FLOW_BATCHES = [
    (["GD", "GR"], dln.GR(np.array([dln.GD().gamma, GAMMA])),
     lambda ref: [ref.grad, lambda th: ref.gr(th, GAMMA)]),
    (["F-GR", "B-GR", "USAM"], dln.FGR(np.array([a.gamma for a in _FD]), np.array([a.ascent() for a in _FD])),
     lambda ref: [lambda th: ref.fgr(th, GAMMA, EPS), lambda th: ref.bgr(th, GAMMA, EPS),
                  lambda th: ref.usam(th, RHO)]),
]
#: dln stops at its default loss_tol, loss <= 1e-14 L(theta0): beta is then within
#: ~4e-7 of beta(inf) on this problem (the reference's beta moves by 3.8e-7 relative
#: between losses 1e-14 L0 and 1e-22 L0), so the 1e-6 check of beta(inf) holds with
#: a margin that is a property of the problem, not of luck
DLN_LOSS_TOL = 1e-14
#: converging runs take ~1100 accepted steps; a cap turns a stall into a failure, not a hang
DLN_FLOW = dln.Flow(max_steps=5000)
#: the reference stands in for t = inf at loss 1e-22 L(theta0) (beta within ~4e-11)
REF_LOSS_TOL = 1e-22
#: the issue's requirement for beta(inf) and alpha_eff(inf)
LIMIT_RTOL = 1e-6
#: same stopping loss for both: what is left is integration error, ~1e3 accepted
#: steps of local error rtol = 1e-10 at most (measured: ~2e-10)
MATCHED_RTOL = 1e-7


def _problems():
    """(label, X, y, T_sam): the notebook's data, and in full runs also its alternative
    sizes. `T_sam` is a time before the SAM flow's zero-loss time t* (see below)."""
    out = [("n20_d30", *understanding_sam_data()[:2], 8.0)]  # t* = 10.2
    if FULL:
        out.append(("n40_d100", *understanding_sam_data(n=40, d=100, r=5)[:2], 2.8))  # t* = 3.56
    return out


@pytest.fixture(scope="module", params=_problems(), ids=lambda p: p[0])
def flow_case(request):
    label, X, y, T_sam = request.param
    return label, _PlainFlow(X, y), dln.Problem(X, y), T_sam


def test_reference_directions_are_gradients_where_they_should_be():
    """Check the reference itself: `gr` is the central-difference gradient of
    `L + (gamma/2)||grad L||^2`, and `usam` equals `fgr` with `gamma = eps = rho`."""
    X, y = understanding_sam_data()[:2]
    ref = _PlainFlow(X, y)
    rng = np.random.default_rng(1)
    th = 0.3 + 0.2 * rng.random(2 * ref.d)
    f = lambda t: ref.loss(t) + 0.25 * np.sum(ref.grad(t) ** 2)  # noqa: E731  (gamma = 0.5)
    h = 1e-5
    fd = np.array([(f(th + h * e) - f(th - h * e)) / (2 * h) for e in np.eye(2 * ref.d)])
    # central differences: truncation ~h^2 * |f'''| ~ 1e-9, round-off ~1e-16 |f| / h ~ 1e-11
    np.testing.assert_allclose(ref.gr(th, 0.5), fd, rtol=0, atol=1e-8 * np.abs(fd).max())
    fdl = np.array([(ref.loss(th + h * e) - ref.loss(th - h * e)) / (2 * h) for e in np.eye(2 * ref.d)])
    np.testing.assert_allclose(ref.grad(th), fdl, rtol=0, atol=1e-8 * np.abs(fdl).max())
    np.testing.assert_allclose(ref.usam(th, 0.2), ref.fgr(th, 0.2, 0.2), rtol=1e-12, atol=1e-15)


def _compare_limit(name, ref, res_beta, res_aeff, res_loss, direction, L0):
    """beta and alpha_eff against the reference at t = inf and at dln's own stopping loss."""
    (th_same, th_inf), _, _ = ref.solve(direction, ALPHA, (res_loss, REF_LOSS_TOL * L0))
    errs = {
        "beta(inf)": rel(res_beta, ref.beta(th_inf)),
        "alpha_eff(inf)": rel(res_aeff, ref.alpha_eff(th_inf)),
        "beta (same loss)": rel(res_beta, ref.beta(th_same)),
        "alpha_eff (same loss)": rel(res_aeff, ref.alpha_eff(th_same)),
    }
    print(f"{name}: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items())
          + f"; alpha_eff/alpha in [{ref.alpha_eff(th_inf).min() / ALPHA:.3f}, 1]")
    assert errs["beta(inf)"] <= LIMIT_RTOL and errs["alpha_eff(inf)"] <= LIMIT_RTOL, (name, errs)
    assert errs["beta (same loss)"] <= MATCHED_RTOL and errs["alpha_eff (same loss)"] <= MATCHED_RTOL, (name, errs)


def test_flow_limits_match_reference(flow_case):
    """GD, GR, F-GR, B-GR and USAM flows: beta(inf), alpha_eff(inf) within 1e-6 of the reference."""
    label, ref, problem, _ = flow_case
    L0 = ref.loss(np.full(2 * ref.d, ALPHA))
    for names, algorithm, directions in FLOW_BATCHES:
        res = dln.run(problem, algorithm, DLN_FLOW, alpha=ALPHA, loss_tol=DLN_LOSS_TOL)
        for b, (name, direction) in enumerate(zip(names, directions(ref))):
            assert res.status[b] == "converged", (name, res.message[b])
            _compare_limit(f"{label} {name}", ref, res.final.beta[b], res.final.alpha_eff[b],
                           float(res.final.train_loss[b]), direction, L0)


#: Normalized SAM reaches zero loss in finite time t* (10.2 on the notebook's data,
#: 3.56 on its n = 40, d = 100 variant; from the reference), after which its field is
#: discontinuous and "beta(inf)" is not a limit of the ODE. Both flows are stopped at a
#: time T_sam < t*, where the field is smooth (loss 9e-5 L0 at T = 8 on the notebook's
#: data); the states there are compared (1e-6, as for the limits; measured ~2e-9).
SAM_RHO = 0.1


def test_sam_flow_state_before_zero_loss(flow_case):
    label, ref, problem, T = flow_case
    res = dln.run(problem, dln.SAM(SAM_RHO), dln.Flow(max_time=T), alpha=ALPHA, loss_tol=0)
    assert res.status[0] == "max_time" and res.t_final[0] == T, res.message
    _, th, t = ref.solve(lambda th: ref.sam(th, SAM_RHO), ALPHA, t_end=T)
    assert t == T
    L0 = ref.loss(np.full(2 * ref.d, ALPHA))
    assert ref.loss(th) > 1e-8 * L0, "T must come before the loss reaches 0 (field discontinuous there)"
    eb, ea = rel(res.final.beta[0], ref.beta(th)), rel(res.final.alpha_eff[0], ref.alpha_eff(th))
    print(f"{label} SAM at t = {T}: beta {eb:.1e}, alpha_eff {ea:.1e} "
          f"(loss {ref.loss(th) / L0:.1e} L0, alpha_eff/alpha >= {ref.alpha_eff(th).min() / ALPHA:.3f})")
    assert eb <= LIMIT_RTOL and ea <= LIMIT_RTOL


@pytest.mark.slow
def test_sam_flow_at_zero_loss_time():
    """SAM to dln's stopping loss (1e-14 L0, just before t*): the reference stopped at the same loss.

    Reduced form (default run): stop at 1e-9 L0, still within 1e-3 time units of
    t*, where the steps already shrink with the residual; DLN_FULL=1 runs 1e-14 (~45 s).

    Measured: beta 9.2e-7, alpha_eff 7.6e-7 relative (the 1e-6 bound of the issue
    holds, narrowly). Up to t = 10.19 (loss 6e-10 L0) the two flows agree to ~1e-9;
    the gap opens in the last 1e-4 time units, where the normalized direction is
    set by a residual of size ~1e-7: dln reaches the stopping loss at t = 10.19990,
    the reference at 10.19983 (the reference moves by 1e-11 between rtol 1e-10
    and 1e-13, so the deviation is dln's).
    """
    X, y = understanding_sam_data()[:2]
    ref, problem = _PlainFlow(X, y), dln.Problem(X, y)
    res = dln.run(problem, dln.SAM(SAM_RHO), dln.Flow(), alpha=ALPHA, loss_tol=1e-14 if FULL else 1e-9)
    assert res.status[0] == "converged", res.message
    (th,), _, _ = ref.solve(lambda th: ref.sam(th, SAM_RHO), ALPHA, (float(res.final.train_loss[0]),), t_end=100)
    eb, ea = rel(res.final.beta[0], ref.beta(th)), rel(res.final.alpha_eff[0], ref.alpha_eff(th))
    print(f"SAM at its zero-loss time: beta {eb:.1e}, alpha_eff {ea:.1e}")
    assert eb <= LIMIT_RTOL and ea <= LIMIT_RTOL


def _dln_command():
    exe = shutil.which("dln")
    return [exe] if exe else [sys.executable, "-m", "dln.cli"]


def test_cli_flow_matches_reference(tmp_path):
    """`dln simulate --flow --json --data FILE.npz --algorithm gr`: the same check through the CLI."""
    X, y, X_test, y_test = understanding_sam_data()
    path = tmp_path / "understanding_sam.npz"
    np.savez(path, X=X, y=y, X_test=X_test, y_test=y_test)
    gamma = 0.5
    cmd = _dln_command() + ["simulate", "--data", str(path), "--algorithm", "gr", "--gamma", str(gamma),
                            "--alpha", str(ALPHA), "--flow", "--loss-tol", str(DLN_LOSS_TOL),
                            "--max-steps", str(DLN_FLOW.max_steps), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "converged", result
    ref = _PlainFlow(X, y)
    L0 = ref.loss(np.full(2 * ref.d, ALPHA))
    _compare_limit("CLI GR", ref, result["beta"], result["alpha_eff"], float(result["train_loss"]),
                   lambda th: ref.gr(th, gamma), L0)
