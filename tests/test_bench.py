"""`dln bench` still runs (smallest size) and its comparisons compare like with like.

No timing is asserted: speed goals are reported by the benchmark, not tested.
"""
import json

import numpy as np
import pytest

import dln
from benchmarks import bench
from dln.cli import main

KEYS = ("batched_vs_loop_speedup", "batched_vs_floor_ratio", "flow_vs_gd_grad_eval_ratio",
        "dual_vs_slsqp_speedup_d1000")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    rc = main(["bench", "--size", "smoke", "--json", str(path)])
    assert rc == 0
    return json.loads(path.read_text())


def test_json_has_the_headline_keys_and_the_machine(smoke):
    for k in KEYS:
        assert k in smoke
    for k in KEYS[:3]:
        assert np.isfinite(smoke[k]) and smoke[k] > 0
    assert smoke["dual_vs_slsqp_speedup_d1000"] is None  # the smoke size has no d = 1000
    assert smoke["machine"]["cpu_count"] >= 1
    assert set(smoke["goals"]) == {"batched_vs_loop >= 10x", "batched_vs_floor <= 1.5x",
                                   "flow_vs_gd_grad_evals >= 100x", "dual_vs_slsqp_d1000 >= 100x"}


def test_batched_and_loop_compute_the_same_runs(smoke):
    # 20 steps of the same map, only the BLAS summation order differs: round-off, ~1e-15
    for row in smoke["loop"]:
        assert row["beta_max_rel_diff"] < 1e-12, row
    assert smoke["floor"]["numpy_theta_max_rel_diff"] < 1e-12


def test_saving_at_chosen_times_keeps_memory_flat(smoke):
    # 3x more steps, the same 10 saves: the peak is set by the batch, not the run length
    # (allow 10% for allocator noise in tracemalloc's peak)
    assert smoke["memory"]["growth"] < 1.1


def test_flow_and_f_gr_reach_their_limits(smoke):
    # the flow's rtol = 1e-10 and loss_tol = 1e-14 put beta(inf) far inside 1e-6 of argmin Q
    for row in smoke["limit"]:
        for name in ("GF", "F-GR"):
            assert row[name]["flow"]["status"] == "converged"
            assert row[name]["flow"]["err"] < bench.LIMIT_TOL


def test_the_per_run_loops_match_dln_directly():
    """The notebook-style loops are the same algorithms as dln's GD and F-GR (independent code)."""
    p = dln.make_problem(n=8, d=15, s=2, seed=3, n_test=0)
    alpha, eta, S = 0.6, 0.02, 30
    gd = dln.run(p, dln.GD(), dln.Steps(eta, max_steps=S), alpha=alpha, loss_tol=0).final.beta[0]
    np.testing.assert_allclose(bench.loop_gd(p.X[0], p.y[0], alpha, eta, S), gd, rtol=1e-12, atol=1e-14)
    fgr = dln.run(p, dln.FGR(**bench.FGR_HYPER), dln.Steps(eta, max_steps=S), alpha=alpha,
                  loss_tol=0).final.beta[0]
    np.testing.assert_allclose(bench.loop_fgr(p.X[0], p.y[0], alpha, eta, S, **bench.FGR_HYPER), fgr,
                               rtol=1e-12, atol=1e-14)


def test_slsqp_solves_the_same_problem_as_the_dual():
    p = dln.make_problem(n=5, d=12, s=2, seed=1, n_test=0)
    beta, _, capped, _ = bench.slsqp(p, 0.5, cap=30.0)
    assert not capped
    # SLSQP stops at ftol = 1e-12 on Q: its beta agrees with the dual Newton solve to ~1e-6
    np.testing.assert_allclose(beta, dln.solve_dual(p, 0.5).beta[0], rtol=1e-5, atol=1e-6)


def test_json_into_a_missing_folder_is_an_input_error(tmp_path, capsys):
    rc = main(["bench", "--size", "smoke", "--json", str(tmp_path / "nope" / "b.json")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "`--json`" in err[0]
