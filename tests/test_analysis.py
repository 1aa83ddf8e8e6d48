"""Tests of `analysis`: every symbolic identity is exactly 0, the lambdified results agree with
`dln`'s NumPy forms, and a reduced `dln validate` runs and its claims hold.

Heavier checks are marked slow and run reduced unless DLN_FULL=1.
"""
import json

import numpy as np
import pytest
import sympy as sp

from analysis import derive as dv
from analysis import validate as va
from conftest import FULL

# the symbolic network: n = 1, d = 2 keeps the whole set under a few seconds; DLN_FULL uses n = 2, d = 3
NET = (2, 3) if FULL else (1, 2)


def _assert_zero(D):
    res = D.check()
    assert res, D.name
    bad = {k: r for k, r in res.items() if r != 0}
    assert not bad, f"{D.name}: nonzero residuals {bad}"


@pytest.mark.parametrize("fn", [dv.potential, dv.kernel_correction, dv.rich_correction, dv.igr, dv.flooding,
                                dv.discrete_gd, lambda: dv.depth(3), lambda: dv.depth(4)])
def test_derivation_identities_are_zero(fn):
    _assert_zero(fn())


@pytest.mark.parametrize("alg", sorted(dv.THEORY_DRIFT))
def test_mirror_split_matches_theory(alg):
    _assert_zero(dv.mirror_split(alg, *NET))


def test_fd_expansion():
    _assert_zero(dv.fd_expansion(*NET))


def test_identities_can_fail():
    """A wrong drift is caught: the check is not vacuous."""
    old = dv.THEORY_DRIFT["GR"]
    try:
        dv.THEORY_DRIFT["GR"] = 4 * dv.gamma * dv.g**2 * (1 + dv.gamma)
        assert not dv.mirror_split("GR", 1, 2).holds()
    finally:
        dv.THEORY_DRIFT["GR"] = old


def test_potential_results():
    P = dv.potential()
    z = dv.z
    assert sp.simplify(P.results["q"] - (2 - sp.sqrt(4 + z**2) + z * sp.asinh(z / 2))) == 0
    assert sp.simplify(P.results["series_0"].coeff(z, 2) - sp.Rational(1, 4)) == 0
    assert sp.simplify(P.results["series_0"].coeff(z, 4) + sp.Rational(1, 192)) == 0
    # printable as LaTeX and plain text
    assert "asinh" in P.text()["q"] or "asinh" in P.latex()["q"] or "sinh" in P.latex()["q"]


def test_lambdified_results_agree_with_dln():
    """q, Q_alpha, every algorithm's direction, alpha_eff: SymPy (lambdified) vs dln's NumPy, on random points."""
    rows = va.lambdify_rows(va.Config(sizes=[(6, 14)], seeds=[0], quick=True), np.random.default_rng(0))
    assert len(rows) >= 10
    for r in rows:
        assert r["verdict"] == "holds", r


def _tiny():
    if FULL:
        return va.Config.make(quick=True)
    return va.Config(sizes=[(6, 12)], seeds=[0, 1], alpha_min=1e-2, alpha_max=10.0, n_alpha=3, quick=True, rtol=1e-8,
                     loss_tol=1e-16, epss=[0.05, 0.2], n_save=600, igr_T=0.25, discrete_etas=[0.01, 0.02, 0.04],
                     depth_alphas=[1.0])


@pytest.mark.slow
@pytest.mark.parametrize("group", ["gf", "drift", "igr", "discrete", "flooding", "depth", "stochastic"])
def test_reduced_validation_holds(group):
    """A reduced validation run: every claim of the group holds (the continuous ones to 1e-6)."""
    cfg = _tiny()
    if group == "drift" and not FULL:
        # one seed, one ascent step: the drift integral and the argmin are the same check per run
        cfg.seeds, cfg.epss = [0], [0.1]
    rows = va.validate(cfg, only=[group])
    assert rows
    for r in rows:
        assert {"claim", "predicted", "simulated", "error", "verdict"} <= r.keys()
        assert r["verdict"] in ("holds", "partial", "fails")
        assert r["verdict"] == "holds", r


def test_cli_writes_reports(tmp_path, capsys):
    from dln.cli import main

    js, md = tmp_path / "v.json", tmp_path / "v.md"
    assert main(["validate", "--quick", "--only", "flooding", "--json", str(js), "--report", str(md)]) == 0
    rows = json.loads(js.read_text())
    assert rows and all({"claim", "predicted", "simulated", "error", "verdict"} <= r.keys() for r in rows)
    assert md.read_text().startswith("# dln validate")
    out = capsys.readouterr().out
    assert "verdict" in out and "flooding" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.md"], "a temporary file was left behind"


@pytest.mark.parametrize("argv", [["--alpha-min", "0"], ["--alpha-min", "10", "--alpha-max", "1"],
                                  ["--json", "/nonexistent-dir/x.json"]])
def test_cli_bad_input(argv, capsys):
    from dln.cli import main

    assert main(["validate", *argv]) == 2
    err = capsys.readouterr().err
    assert "`--" in err
