"""`dln bench` still runs (smallest size) and its comparisons compare like with like.

No timing is asserted: speed goals are reported by the benchmark, not tested.
"""
import json

import numpy as np
import pytest

import dln
from benchmarks import bench
from dln.cli import main

GOALS = {"steps <= 1.2x the faster of JAX and numba", "single flows: dln time <= LSODA's",
         "single flows at LSODA's path accuracy: dln time <= LSODA's",
         "single flows: dln grad evals <= LSODA's", "flow batch >= 10x a loop of LSODA runs",
         "every comparison at equal accuracy"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    rc = main(["bench", "--size", "smoke", "--json", str(path)])
    assert rc == 0
    return json.loads(path.read_text())


def test_json_has_every_row_the_goals_and_the_machine(smoke):
    assert set(smoke["goals"]) == GOALS
    m = smoke["machine"]
    assert m["cpu_count"] >= 1 and m["load_avg"] is not None
    # every OpenBLAS found in the process was pinned to one thread (read back from the library)
    assert all(v == 1 for v in m["blas_threads"].values())
    shapes = {(B, n, d) for B, n, d, _ in bench.SIZES["smoke"].shapes}
    assert {(r["B"], r["n"], r["d"], r["algorithm"]) for r in smoke["steps"]} == {
        s + (a,) for s in shapes for a in ("GD", "F-GR")}
    runs = [(r["run"], r["alpha"]) for r in smoke["flows"]["rows"]]
    size = bench.SIZES["smoke"]
    assert runs == [("GF", a) for a in size.gf_alphas] + [("GR(0.1)", a) for a in size.gr_alphas]


def test_steps_peers_compute_the_same_runs(smoke):
    # K = 10 steps of the same map; only the summation order of the matrix products and (JAX) the
    # fusion differ: round-off, ~1e-15 of max |beta|
    for row in smoke["steps"]:
        for peer in ("loop", "numba", "jax"):
            if peer in row["us_per_run_step"]:
                assert row["beta_max_rel_diff"][peer] < 1e-12, (peer, row)
            else:
                assert row["skipped"][peer] == f"skipped: {peer} not installed"


def test_flows_are_compared_at_equal_accuracy(smoke):
    # each solver (dln's flow, LSODA and BDF at rtol 1e-8) stops at 1e-14 L(0), where beta is within
    # ~1e-7 of the limit: all within LIMIT_TOL = 1e-6 of solve_dual's and of each other
    for row in smoke["flows"]["rows"]:
        assert all(row["stopped"].values()), row
        assert max(row["err"].values()) < bench.LIMIT_TOL, row
        assert row["dln_vs_lsoda"] < 2 * bench.LIMIT_TOL, row
        assert row["equal_accuracy"]
    assert smoke["flows"]["batch"]["equal_accuracy"], smoke["flows"]["batch"]


def test_paths_are_compared_against_a_tighter_reference(smoke):
    # along the path each solver at rtol 1e-8 is within a multiple of it of Radau at rtol 1e-12: the local
    # errors of a few hundred steps, amplified by the growth of the learned coordinates (seen: 3e-8 to
    # 7e-7 here); 1e-5 (1000 rtol) bounds that, while a mismatch of runs or of times is of order 1e-1
    for row in smoke["flows"]["rows"]:
        assert set(row["trajectory_err"]) == {"dln", "LSODA", "BDF"}
        assert all(0 <= v < 1e-5 for v in row["trajectory_err"].values()), row


def test_matched_timing_is_at_lsoda_s_path_accuracy_or_better(smoke):
    # the second timing runs dln at a rung of the ladder whose path error (measured, not assumed) is at
    # most LSODA's, and that run still converges to solve_dual's limit; the rung is the loosest such
    # one (the next looser rung, if any, was measured less accurate than LSODA)
    for row in smoke["flows"]["rows"]:
        m = row["matched"]
        assert m is not None, row
        assert m["rtol"] in bench.MATCH_RTOLS
        assert m["path_err"] <= row["trajectory_err"]["LSODA"], row
        assert m["converged"] and m["limit_err"] < bench.LIMIT_TOL, row
        assert m["time_vs_lsoda"] == bench.paired(m["seconds_per_repeat"]["dln"], m["seconds_per_repeat"]["LSODA"])
        lo, hi = m["time_vs_lsoda_quartiles"]
        assert lo <= m["time_vs_lsoda"] <= hi


def test_saving_at_chosen_times_keeps_memory_flat(smoke):
    # 3x more steps, the same 10 saves: the peak is set by the batch, not the run length
    # (allow 10% for allocator noise in tracemalloc's peak)
    assert smoke["memory"]["growth"] < 1.1


@pytest.mark.parametrize("gamma", [0.0, 0.1])
def test_scipy_peer_is_dln_s_flow_in_log_coordinates(gamma):
    """The peer's field is `-D(theta) / theta` of dln's GR direction (independent code), and its
    Jacobian matches central differences of its field."""
    p = dln.make_problem(n=6, d=10, s=2, seed=2, n_test=0)
    flow = bench.LogFlow(p, gamma)
    rng = np.random.default_rng(0)
    z = np.log(0.3) + 0.5 * rng.standard_normal(20)
    theta = np.exp(z).reshape(1, 2, 10)
    D = dln.algorithms.direction(dln.GR(gamma=gamma), dln.objective.Objective(p, dln.Squares()), theta)
    # a few matrix products of O(1) entries: round-off ~1e-15 of the largest component
    f = flow.rhs(0, z)
    np.testing.assert_allclose(f, (-D / theta).ravel(), rtol=0, atol=1e-13 * np.abs(f).max())
    h = 1e-6
    fd = np.stack([(flow.rhs(0, z + h * e) - flow.rhs(0, z - h * e)) / (2 * h) for e in np.eye(20)], axis=1)
    J = flow.jac(0, z)
    # central differences: truncation h^2 |f'''| ~ 1e-12 and round-off eps |f| / h ~ 1e-10, of |J| ~ 1
    np.testing.assert_allclose(J, fd, rtol=0, atol=1e-7 * np.abs(J).max())


def test_missing_peers_are_reported_as_skipped(monkeypatch):
    monkeypatch.setattr(bench, "numba", None)
    monkeypatch.setattr(bench, "_installed", lambda name: False)
    size = bench.Size(((4, 3, 5, 2),), 1, 1, (3, 5), (), (), 1, 1, (), 1.0, ())
    for row in bench.bench_steps(size):
        assert row["skipped"] == {"numba": "skipped: numba not installed", "jax": "skipped: jax not installed"}
        assert row["dln_vs_best_fused"] is None and set(row["us_per_run_step"]) == {"dln", "loop", "floor"}


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


def test_ratios_pair_the_contenders_within_a_repeat():
    # the third repeat falls in a slow phase of the machine, which doubles or triples both times: the
    # ratio within each repeat (0.5, 1.5, 0.5) has the median 0.5, while the ratio of the medians, 3 / 2,
    # mixes the slow repeat of one contender with a fast one of the other
    a, b = [1.0, 3.0, 3.0], [2.0, 2.0, 6.0]
    assert bench.paired(a, b) == 0.5
    assert np.median(a) / np.median(b) == 1.5
    # the table shows how far single repeats fall from that median: quartiles of (0.5, 1.5, 0.5), linearly
    # interpolated, 0.5 and (0.5 + 1.5) / 2
    assert bench.spread(a, b) == [0.5, 1.0]
