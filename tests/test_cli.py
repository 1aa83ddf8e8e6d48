"""`dln simulate` and `dln solve`: the JSON contract, and that the CLI computes what the library does.

The CLI is a front end: each check builds the same objects by hand, calls
`dln.run` / `dln.solve_dual`, and expects the same numbers (the computation
is deterministic, so equal to round-off of the JSON float repr, i.e. exactly).
Then the command-line contract: output paths checked before any work, and Ctrl-C.
"""
import importlib
import json
import os
import signal
import stat
import subprocess
import sys
import types
import weakref

import numpy as np
import pytest

import dln
from dln._io import atomic_path

TINY = ["--n", 4, "--d", 10, "--s", 1, "--n-test", 5, "--seed", 3]
KEYS = {"beta", "alpha_eff", "train_loss", "test_loss", "status", "t_final", "steps", "grad_evals", "message",
        "algorithm", "hyperparameters", "integrator", "eta", "param", "depth", "alpha", "grad_norm", "loss_tol",
        "relative_loss_tol", "n", "d"}


def _strict(text):
    """Parse JSON, refusing NaN/Infinity (not JSON): the CLI must write null instead."""
    def bad(c):
        raise ValueError(f"non-JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def _tiny():
    return dln.make_problem(n=4, d=10, s=1, n_test=5, seed=3)


def test_simulate_flow_json_matches_the_library(cli):
    code, out, err = cli("simulate", *TINY, "--alpha", 0.5, "--max-time", 0.5, "--loss-tol", 0, "--json")
    assert code == 0 and err == ""
    assert out.count("\n") == 1  # one JSON object on one line
    o = _strict(out)
    assert KEYS <= set(o)
    res = dln.run(_tiny(), dln.GD(), dln.Flow(max_time=0.5), alpha=0.5, loss_tol=0)
    assert o["status"] == "max_time" == res.status[0]
    np.testing.assert_array_equal(o["beta"], res.final.beta[0])
    np.testing.assert_array_equal(o["alpha_eff"], res.final.alpha_eff[0])
    assert o["train_loss"] == res.final.train_loss[0] and o["test_loss"] == res.final.test_loss[0]
    assert (o["t_final"], o["steps"], o["grad_evals"]) == (0.5, res.steps[0], res.grad_evals[0])
    assert (o["integrator"], o["eta"], o["algorithm"], o["param"], o["alpha"]) == ("flow", None, "gd", "squares", 0.5)


def test_simulate_steps_from_a_data_file(cli, npz):
    p = _tiny()
    path = npz(X=p.X[0], y=p.y[0])  # no test set: test_loss is null
    code, out, err = cli("simulate", "--data", path, "--algorithm", "sam", "--rho", 0.05, "--steps", "--eta", 0.02,
                         "--max-steps", 300, "--json")
    assert code == 0, err
    o = _strict(out)
    res = dln.run(dln.load_problem(path), dln.SAM(0.05), dln.Steps(0.02, 300), alpha=1.0)
    np.testing.assert_array_equal(o["beta"], res.final.beta[0])
    assert o["test_loss"] is None and o["status"] == res.status[0] and o["steps"] == res.steps[0]
    assert o["hyperparameters"] == {"rho": 0.05} and o["eta"] == 0.02


def test_every_registered_algorithm_runs(cli):
    """Each registry name with its declared example hyperparameters, as flags; the JSON names the algorithm
    and reports exactly its declared hyperparameters."""
    for name, cls in dln.algorithms.ALGORITHMS.items():
        f = [x for h in cls.hyper if h.example is not None and h.kind not in ("bool", "algorithm")
             for x in (h.cli, h.example)]
        # eta = 0.002: below 2 / lambda_max of every update's Jacobian here (GR's is 0.0053)
        code, out, err = cli("simulate", *TINY, "--algorithm", name, *f, "--steps", "--eta", 0.002,
                             "--max-steps", 50, "--json")
        assert code == 0 and err == "", (name, err)
        o = _strict(out)
        assert o["algorithm"] == name
        # a nested algorithm (label-noise's `base`) reports its own hyperparameters, not itself
        assert set(o["hyperparameters"]) == {h.name for h, _ in dln.algorithms.example(cls).items()
                                             if h.kind != "algorithm"}


def test_per_coordinate_alpha_from_npy(cli, tmp_path):
    a = np.linspace(0.2, 1.0, 10)
    np.save(tmp_path / "alpha.npy", a)
    code, out, err = cli("simulate", *TINY, "--alpha", tmp_path / "alpha.npy", "--steps", "--eta", 0.01,
                         "--max-steps", 1, "--loss-tol", 0, "--json")
    assert code == 0, err
    o = _strict(out)
    res = dln.run(_tiny(), dln.GD(), dln.Steps(0.01, 1), alpha=a[None], loss_tol=0)
    np.testing.assert_array_equal(o["alpha_eff"], res.final.alpha_eff[0])
    assert o["alpha"] == a.tolist()


def test_product_with_u0_v0_and_depth(cli):
    code, out, _ = cli("simulate", *TINY, "--param", "product", "--u0", 0.3, "--v0", 0.1, "--steps", "--eta", 0.05,
                       "--max-steps", 100, "--json")
    o = _strict(out)
    theta0 = np.array([np.full(10, 0.3), np.full(10, 0.1)])
    res = dln.run(_tiny(), dln.GD(), dln.Steps(0.05, 100), model=dln.Product(), theta0=theta0)
    assert code == 0 and o["alpha_eff"] is None and o["param"] == "product" and o["depth"] is None
    np.testing.assert_array_equal(o["beta"], res.final.beta[0])
    # product default: u0 = alpha, v0 = 0, i.e. Product().init(alpha)
    code, out, _ = cli("simulate", *TINY, "--param", "product", "--alpha", 0.5, "--steps", "--max-steps", 10,
                       "--loss-tol", 0, "--json")
    res = dln.run(_tiny(), dln.GD(), dln.Steps(0.01, 10), model=dln.Product(), alpha=0.5, loss_tol=0)
    assert code == 0
    np.testing.assert_array_equal(_strict(out)["beta"], res.final.beta[0])
    code, out, _ = cli("simulate", *TINY, "--param", "depth", "--depth", 3, "--alpha", 0.5, "--steps", "--eta", 0.05,
                       "--max-steps", 100, "--json")
    res = dln.run(_tiny(), dln.GD(), dln.Steps(0.05, 100), model=dln.Depth(3), alpha=0.5)
    o = _strict(out)
    assert code == 0 and o["depth"] == 3
    np.testing.assert_array_equal(o["beta"], res.final.beta[0])


def test_loss_tolerance_relative_absolute_and_time_caps(cli):
    L0 = _tiny().loss(np.zeros((1, 10)))[0]
    base = ("simulate", *TINY, "--steps", "--eta", 0.05, "--json")
    rel = _strict(cli(*base, "--loss-tol", 1e-3)[1])
    ab = _strict(cli(*base, "--loss-tol", 1e-3, "--absolute-loss-tol")[1])
    assert rel["status"] == ab["status"] == "converged"
    assert rel["train_loss"] <= 1e-3 * L0 and ab["train_loss"] <= 1e-3 and rel["relative_loss_tol"]
    assert not ab["relative_loss_tol"] and ab["steps"] != rel["steps"]
    # with steps, --max-time T caps the steps at T / eta (t = eta k), with status max_time; a T below
    # eta takes no step at all
    capped = _strict(cli(*base, "--loss-tol", 0, "--max-time", 0.5)[1])
    assert capped["steps"] == 10 and capped["status"] == "max_time" and capped["t_final"] == pytest.approx(0.5)
    tiny = _strict(cli(*base, "--max-time", 1e-9)[1])
    assert tiny["steps"] == 0 and tiny["status"] == "max_time" and tiny["t_final"] == 0
    # the max_steps message has the loss and what to change, in flags
    short = _strict(cli(*base, "--max-steps", 3)[1])
    assert short["status"] == "max_steps" and "with loss" in short["message"] and "`--max-steps`" in short["message"]


def test_save_at(cli):
    code, out, err = cli("simulate", *TINY, "--steps", "--eta", 0.01, "--save-at", "0,0.03,0.1", "--loss-tol", 0,
                         "--max-steps", 20, "--json")
    assert code == 0, err
    o = _strict(out)
    assert o["saved"]["t"] == pytest.approx([0.0, 0.03, 0.1])
    assert np.array(o["saved"]["beta"]).shape == (3, 10) and o["saved"]["beta"][0] == [0.0] * 10


def test_no_effect_flags_warn_on_one_line(cli):
    code, out, err = cli("simulate", *TINY, "--algorithm", "gd", "--rho", 0.1, "--eta", 0.1, "--max-time", 0.1,
                         "--loss-tol", 0, "--json")
    assert code == 0 and _strict(out)["status"] == "max_time"
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "--rho" in lines[0] and "gd" in lines[0] and "--eta" in lines[1]
    assert all(line.startswith("dln simulate: warning:") for line in lines)


def test_human_summary(cli):
    code, out, err = cli("simulate", *TINY, "--steps", "--eta", 0.05)
    assert code == 0 and err == ""
    assert "converged" in out and "train loss" in out and "alpha_eff" in out and "{" not in out


@pytest.mark.parametrize("objective", ["q", "l1", "l2"])
def test_solve(cli, npz, objective):
    p = dln.make_problem(n=6, d=15, s=2, seed=8, n_test=0)
    path = npz(X=p.X[0], y=p.y[0])
    code, out, err = cli("solve", "--data", path, "--alpha", 0.1, "--objective", objective, "--json")
    assert code == 0
    o = _strict(out)
    assert o["residual"] <= 1e-10 and o["objective"] == objective
    want = {"q": lambda: dln.solve_dual(p, 0.1).beta[0], "l1": lambda: dln.min_l1(p)[0],
            "l2": lambda: dln.min_l2(p)[0]}[objective]()
    np.testing.assert_array_equal(o["beta"], want)
    # --alpha only matters for q: elsewhere it draws the no-effect warning
    assert (err == "") == (objective == "q")


@pytest.mark.parametrize("objective", ["q", "l1", "l2"])
def test_solve_says_when_no_interpolator_exists(cli, npz, objective):
    """n = 12 > d = 4 with generic labels: X beta = y has no solution. Exit 1, `status` says so in
    JSON and in text; for l2 `beta` is the least-squares solution of minimum norm, whose residual is
    orthogonal to the columns of X (the normal equations, to round-off of the 12 x 4 products)."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((12, 4)), rng.standard_normal(12)
    path = npz(X=X, y=y)
    code, out, err = cli("solve", "--data", path, "--alpha", 0.1, "--objective", objective, "--json")
    o = _strict(out)
    assert code == 1 and o["status"] == "no_interpolator" and "no solution" in o["message"]
    if objective == "l2":
        r = X @ np.array(o["beta"]) - y
        assert np.abs(X.T @ r).max() <= 100 * np.finfo(float).eps * np.abs(X).max() * np.abs(y).sum()
        assert o["residual"] == pytest.approx(np.abs(r).max(), rel=1e-12)
    else:
        assert o["beta"] is None
    code, out, _ = cli("solve", "--data", path, "--alpha", 0.1, "--objective", objective)
    assert code == 1 and "no solution" in out


def test_solve_generated_problem_summary(cli):
    code, out, err = cli("solve", *TINY, "--alpha", 1.0)
    assert code == 0 and "max |X beta - y|" in out


def test_console_script_runs():
    """The installed entry point, in a fresh process (what other tools call)."""
    r = subprocess.run([sys.executable, "-m", "dln.cli", "solve", *map(str, TINY), "--alpha", "0.5", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _strict(r.stdout)["residual"] <= 1e-10


def _one_line(err, *words):
    """`err` is one line, no traceback, holding each of `words`."""
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    assert all(w in err for w in words), err


def _is_fifo(path):
    return stat.S_ISFIFO(os.stat(path).st_mode)


@pytest.mark.parametrize("out, says", [("dir", "not a directory"), ("", "not a directory"),
                                       ("absent/x.npz", "existing directory"), ("fifo", "regular file")])
def test_make_data_checks_out_before_writing(cli, tmp_path, monkeypatch, out, says):
    """`--out` an existing directory, empty, in a missing directory, or a FIFO (as a device node such as
    /dev/null would be): one line and exit 2, and the FIFO is still a FIFO, not replaced by a file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    os.mkfifo("fifo")
    code, stdout, err = cli("make-data", *TINY, "--out", out)
    assert (code, stdout) == (2, "")
    _one_line(err, "dln make-data: error: `--out`", says)
    assert _is_fifo("fifo") and sorted(os.listdir()) == ["dir", "fifo"]


def test_atomic_path_does_not_replace_a_special_file(tmp_path):
    """Defence in depth, for library callers (`Problem.save`) that skip `writable_file`."""
    fifo = tmp_path / "p.npz"
    os.mkfifo(fifo)
    with pytest.raises(dln.InputError, match="FIFO"), atomic_path(fifo) as tmp:
        open(tmp, "w").write("data")
    assert _is_fifo(fifo) and list(tmp_path.iterdir()) == [fifo]


@pytest.mark.parametrize("json_path, says", [("absent/b.json", "existing directory"), (".", "not a directory"),
                                             ("fifo", "regular file")])
def test_bench_checks_json_before_running(cli, tmp_path, monkeypatch, json_path, says):
    monkeypatch.chdir(tmp_path)
    os.mkfifo("fifo")
    monkeypatch.setattr("benchmarks.bench.collect", _raise_that("the benchmark ran"))
    code, out, err = cli("bench", "--size", "smoke", "--json", json_path)
    assert (code, out) == (2, "")
    _one_line(err, "dln bench: error: `--json`", says)
    assert _is_fifo("fifo")


def _raise_that(message):
    def fail(*args, **kwargs):
        raise AssertionError(message)
    return fail


def _swallowed_ctrl_c():
    """Ctrl-C landing in a weakref callback, where Python can only print it ("Exception ignored in")
    and goes on: what `timeout -s INT 44 dln figures` hit in a matplotlib callback."""
    thing = set()  # any object a weak reference can point to
    ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGINT))  # the handler runs inside it
    del thing
    assert ref() is None


def test_a_swallowed_ctrl_c_still_ends_the_command(cli, monkeypatch):
    """The command finishes after the swallowed Ctrl-C: exit 130 with one line, not a success; the
    handlers are restored afterwards."""
    def main(args, cmd):
        _swallowed_ctrl_c()
        return 0
    monkeypatch.setattr("dln.cli_simulate.main", main)
    before = signal.getsignal(signal.SIGINT), sys.unraisablehook
    assert cli("simulate", *TINY) == (130, "", "dln simulate: interrupted\n")
    assert (signal.getsignal(signal.SIGINT), sys.unraisablehook) == before


def test_figures_stop_before_the_next_figure_after_a_swallowed_ctrl_c(cli, tmp_path, monkeypatch):
    made = []

    def figure(name):
        def main(out_dir, quick=False, formats=None):
            made.append(name)
            _swallowed_ctrl_c()
            return []
        return types.SimpleNamespace(main=main)
    names = ["fig98_first", "fig99_second"]
    for name in names:
        monkeypatch.setitem(sys.modules, f"figures.{name}", figure(name))
    monkeypatch.setattr("figures.cli.available", lambda: names)
    monkeypatch.setenv("DLN_NO_PROGRESS", "1")
    assert cli("figures", "--out", tmp_path) == (130, "", "dln figures: interrupted\n")
    assert made == ["fig98_first"]


def test_explore_names_a_bad_flag_before_the_missing_display(cli, monkeypatch):
    """Without a display (backend Agg) and without --save, a bad flag is still the error named; the flags are
    checked without building the window (which took ~2 s, only to be thrown away)."""
    import matplotlib
    matplotlib.use("Agg")
    small = ("explore", "--n", 10, "--d", 30, "--s", 2, "--curve-points", 0, "--max-steps", 30)
    code, out, err = cli(*small, "--alpha", 0)
    assert (code, out) == (2, "")
    _one_line(err, "dln explore: error: `--alpha`", "1e-8 <= alpha <= 1e3")
    built = []
    monkeypatch.setattr(importlib.import_module("dln.explore"), "Explorer", lambda *a, **k: built.append(a))
    code, out, err = cli(*small)
    assert (code, out) == (2, "")
    _one_line(err, "dln explore: error: no display")
    assert built == []
