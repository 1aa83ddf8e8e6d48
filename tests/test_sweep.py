"""Sweeps (`dln.sweep`, `dln sweep`): the grid, bad specs, storage, resume after a kill, a Dask cluster;
and the pieces beside them: `Result.to_xarray`, `Problem.save`, `dln make-data`, `dln --version`."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version

import numpy as np
import pytest
import xarray as xr

import dln
from dln.integrate import BLOWUP
from dln.sweep import MAX_CHUNK, MAX_POINTS, MAX_WORKERS, Plan, _compute, _local, status, sweep

#: a small problem, so that a task takes a fraction of a second
PROBLEM = {"n": 8, "d": 20, "s": 3, "n_test": 50}


def spec(**sections):
    """A small flow sweep: F-GR and GD over alpha and gamma on two problem seeds, stopped at 1e-6 L(0)."""
    base = {"problem": {**PROBLEM, "seed": [0, 1]},
            "algorithm": {"name": ["gd", "fgr"], "gamma": [0.1, 0.5], "eps": 0.1},
            "init": {"alpha": {"logspace": [-1, 0, 3]}},
            "integrator": {"rtol": 1e-6, "loss_tol": 1e-6}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return base


def same(a, b):
    """Every variable and coordinate equal, bit for bit (the attributes hold start and end times)."""
    return a.drop_attrs().identical(b.drop_attrs())


def test_grid_labels_repeats_and_single_runs():
    ds = sweep(spec(integrator={"save_at": [0.5, 2.0]}), workers=1, progress=False)
    assert dict(ds.sizes) == {"seed": 2, "algorithm": 2, "gamma": 2, "alpha": 3, "coord": 20, "time": 2}
    assert list(ds.algorithm.values) == ["gd", "fgr"]
    np.testing.assert_allclose(ds.alpha, np.logspace(-1, 0, 3), rtol=0)
    assert json.loads(ds.attrs["spec"])["algorithm"]["eps"] == 0.1 and ds.attrs["dln_version"] == version("dln")
    # gradient descent takes no gamma: its run is computed once and repeated along the gamma axis
    gd = ds.sel(algorithm="gd")
    assert same(gd.isel(gamma=0).drop_vars("gamma"), gd.isel(gamma=1).drop_vars("gamma"))
    # a grid point against the single run with its values, computed independently here. The batch a run
    # is in changes its products' last bits, and the adaptive flow may then take other steps: the two
    # agree to the flow's local tolerance (rtol = 1e-6) times the size of beta, not bit for bit
    p = dln.make_problem(**PROBLEM, seed=1)
    one = dln.run(p, dln.FGR(0.5, 0.1), dln.Flow(rtol=1e-6), alpha=ds.alpha.values[2], loss_tol=1e-6,
                  save_at=[0.5, 2.0])
    pt = ds.sel(seed=1, algorithm="fgr", gamma=0.5).isel(alpha=2)
    scale = np.abs(one.final.beta).max()
    np.testing.assert_allclose(pt.beta, one.final.beta[0], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(pt.saved_beta, one.saved.beta[0], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(pt.test_loss, one.final.test_loss[0], rtol=1e-5)
    assert pt.status.item() == "converged" and (ds.status == "converged").all()


def test_failed_runs_appear_with_their_status():
    # discrete GD with a step far above 2 / lambda_max diverges; the stable one converges; both are rows
    s = {"problem": {**PROBLEM, "seed": 0}, "algorithm": {"name": "gd"}, "init": {"alpha": 1.0},
         "integrator": {"kind": "steps", "eta": [0.05, 50.0], "max_steps": 20000, "loss_tol": 1e-6}}
    ds = sweep(s, workers=1, progress=False)
    assert list(ds.status.values) == ["converged", "diverged"]
    # u = v at initialization: beta = 0 and L(0) = ||y||^2 / (2n)
    y = dln.make_problem(**PROBLEM, seed=0).y[0]
    assert ds.train_loss.values[1] > BLOWUP * (y @ y) / (2 * y.size) and "`eta` = 50 is too large" in ds.message.values[1]


@pytest.mark.parametrize("change, words", [
    ({"algorithm": {"name": "nope"}}, "`algorithm.name` must be one of"),
    ({"algorithm": {"name": "gd", "gamma": 0.1, "eps": 0.1}}, "algorithm.eps is not a hyperparameter of gd"),
    ({"algorithm": {"rho": 0.1}}, "algorithm.rho is not a hyperparameter of gd or fgr"),
    ({"algorithm": {"colour": 1}}, "unknown key algorithm.colour"),
    ({"problem": {"m": 3}}, "unknown key problem.m"),
    ({"runs": {"x": 1}}, "unknown section [runs]"),
    ({"algorithm": {"gamma": []}}, "axis `algorithm.gamma` is empty"),
    ({"algorithm": {"gamma": [0.1, -1.0]}}, "`gamma` must satisfy gamma >= 0; got -1.0"),
    ({"init": {"alpha": {"logspace": [-1, 0, 0]}}}, "needs an integer count 1 <= k"),
    ({"init": {"alpha": [1.0, 0.0]}}, "`alpha` must satisfy 1e-100 <= alpha <= 1e+50; got 0.0"),
    # `run`'s range, checked up front
    ({"init": {"alpha": 1e300}}, "`alpha` must satisfy 1e-100 <= alpha <= 1e+50; got 1e+300"),
    ({"init": {"alpha": [0.1, "a"]}}, "`alpha` must be a real number (1e-100 <= alpha <= 1e+50)"),
    # bounded before the values are formed
    ({"init": {"alpha": {"logspace": [-2, 0, 10**12]}}}, f"`init.alpha` logspace = [a, b, k] needs an integer "
                                                         f"count 1 <= k <= {MAX_POINTS}"),
    ({"algorithm": {"gamma": {"linspace": [0, 1, 1000]}}, "init": {"alpha": {"logspace": [-1, 0, 1000]}}},
     f"the grid must have at most {MAX_POINTS} points; got `seed` 2 x `algorithm` 2 x `gamma` 1000 x "
     "`alpha` 1000 = 4000000"),
    ({"problem": 3}, "spec: [problem] must be a table of keys; got 3"),
    # integers as make_problem takes them: the floats of a linspace axis are refused there, so here too
    ({"problem": {"seed": {"linspace": [0, 39, 40]}}}, "`problem.seed` must be an integer (seed >= 0"),
    ({"problem": {"n_test": -1}}, "`n_test` must satisfy n_test >= 0"),
    ({"problem": {"n_test": 10**12}}, "(and `n_test` = 1000000000000) needs about"),  # memory, before the store
    ({"model": {"param": "depth", "depth": 10**24}}, "spec: `depth` must be an integer with 2 <= depth"),
    ({"integrator": {"rtol": 2.0}}, "`rtol` must satisfy 0 < rtol < 1"),
    ({"integrator": {"eta": 0.1}}, "unknown key integrator.eta"),
    ({"integrator": {"kind": "euler"}}, "`integrator.kind` must be one of"),
    ({"problem": {"s": 50}}, "`s` must satisfy 1 <= s <= d = 20"),
    ({"problem": {"seed": [0, -1]}}, "`seed` must satisfy seed >= 0"),
    ({"algorithm": {"name": "flood", "b": 0.1, "gamma": 0.1, "eps": 0.1}}, "algorithm.eps is not a hyperparameter of flood (it takes b)"),
    ({"algorithm": {"name": "flood", "b": 0.1}, "integrator": {"rtol": 1e-6}}, "defined for discrete steps only"),
])
def test_bad_spec_is_one_line_naming_it_and_nothing_runs(cli, tmp_path, change, words):
    s = spec()
    if change.get("algorithm", {}).get("name") in ("gd", "flood"):
        s["algorithm"] = {}
    for k, v in change.items():
        s[k] = {**s.get(k, {}), **v} if isinstance(v, dict) else v
    with pytest.raises(dln.InputError) as e:
        Plan(s)
    assert words in str(e.value) and "\n" not in str(e.value)
    path = tmp_path / "spec.toml"
    path.write_text(_toml(s))
    code, out, err = cli("sweep", path, "--out", tmp_path / "r.zarr", "--workers", 1)
    assert code == 2 and words in err and err.count("\n") == 1 and out == ""
    assert not (tmp_path / "r.zarr").exists()


def _toml(spec):
    """A spec dict as TOML text (tables of scalars, lists and one-key inline tables; a section that is
    not a table as a top-level key, before the tables)."""
    def value(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)
    return ("".join(f"{s} = {value(t)}\n" for s, t in spec.items() if not isinstance(t, dict)) +
            "".join(f"[{s}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in t.items())
                    for s, t in spec.items() if isinstance(t, dict)))


def test_a_spec_without_axes_is_one_run_stored_and_resumed(cli, tmp_path):
    one = {"problem": {**PROBLEM, "seed": 0}, "algorithm": {"name": "gd"}, "integrator": {"loss_tol": 1e-6}}
    out = tmp_path / "one.zarr"
    ds = sweep(one, out, workers=1, progress=False)
    assert dict(ds.sizes) == {"coord": 20} and ds.status.item() == "converged"
    # the run of a grid of one point, without its dimension
    axis = sweep({**one, "init": {"alpha": [1.0]}}, workers=1, progress=False)
    assert same(ds, axis.isel(alpha=0, drop=True))
    assert same(xr.open_zarr(out, consolidated=False).load(), ds)
    assert status(out)["complete"] and same(sweep(one, out, workers=1, progress=False), ds)
    (tmp_path / "empty.toml").write_text("")  # every default: one run of make_problem()
    code, text, err = cli("sweep", tmp_path / "empty.toml", "--out", tmp_path / "empty.zarr", "--workers", 1)
    assert code == 0 and "1 grid points (1 tasks)" in text and "1 converged" in text
    assert xr.open_zarr(tmp_path / "empty.zarr", consolidated=False).status.item() == "converged"


@pytest.mark.parametrize("option, words", [
    (["--chunk", 10**30], f"argument --chunk: must be an integer >= 1 and <= {MAX_CHUNK}"),
    (["--workers", 10**30], f"argument --workers: must be an integer >= 1 and <= {MAX_WORKERS}"),
    (["--out", "nodir/r.zarr"], "`--out` must be a path in an existing directory"),
    (["--scheduler", "notanaddress"], "`--scheduler` 'notanaddress': no Dask scheduler answered"),
    (["--scheduler", ""], "`--scheduler` '': no Dask scheduler answered"),
])
def test_bad_option_is_one_line_and_no_store_is_made(cli, tmp_path, monkeypatch, option, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.toml").write_text(_toml(spec()))
    code, out, err = cli("sweep", "spec.toml", "--out", "r.zarr", *option)
    assert code == 2 and words in err and err.count("\n") == 1 and out == ""
    assert os.listdir(tmp_path) == ["spec.toml"]


def test_workers_are_bounded_and_never_outnumber_the_tasks(monkeypatch):
    with pytest.raises(dln.InputError, match=f"`workers` must be an integer with 1 <= workers <= {MAX_WORKERS}"):
        sweep(spec(), workers=MAX_WORKERS + 1, progress=False)
    with pytest.raises(dln.InputError, match=f"`chunk` must be an integer with 1 <= chunk <= {MAX_CHUNK}"):
        sweep(spec(), chunk=10**30, progress=False)
    started = []

    def local(workers):  # records the cluster's size instead of starting it
        started.append(workers)
        raise LookupError("not started")
    monkeypatch.setattr(sys.modules["dln.sweep"], "_local", local)
    two = {"problem": {**PROBLEM, "seed": [0, 1]}, "algorithm": {"name": "gd"}, "integrator": {"loss_tol": 1e-6}}
    with pytest.raises(LookupError, match="not started"):
        sweep(two, workers=MAX_WORKERS, progress=False)  # one task per problem
    assert started == [2]
    sweep({**two, "problem": {**PROBLEM, "seed": 0}}, workers=MAX_WORKERS, progress=False)  # one task: here
    assert started == [2]


def test_an_input_error_in_a_local_worker_is_raised_without_dask_tracebacks(capfd):
    # a value the plan refuses, put into a task by hand: the worker's run refuses it again
    task = {**Plan(spec()).tasks[0], "alpha": [1e300]}
    with _local(1) as client:
        with pytest.raises(dln.InputError, match="`alpha` must satisfy 1e-100 <= alpha <= 1e.50; got 1e.300"):
            client.submit(_compute, task).result()
    err = capfd.readouterr().err
    assert "Compute Failed" not in err and "Traceback" not in err, err


def test_store_resume_refusals_and_status(cli, tmp_path):
    out = tmp_path / "r.zarr"
    ds = sweep(spec(), out, chunk=4, workers=1, progress=False)
    assert same(xr.open_zarr(out, consolidated=False).load(), ds)
    assert status(out) | {"start_time": 0, "end_time": 0} == {
        "tasks": 6, "tasks_done": 6, "runs": 18, "runs_done": 18, "complete": True, "start_time": 0, "end_time": 0}
    # a finished store is read back, not recomputed
    assert same(sweep(spec(), out, progress=False), ds)
    code, text, err = cli("sweep", "--status", out)
    assert code == 0 and "6 of 6 tasks done (18 of 18 runs), complete" in text
    code, text, err = cli("sweep", "--status", tmp_path / "nope.zarr")
    assert code == 2 and "`--status`" in err and "does not exist" in err
    with pytest.raises(dln.InputError, match=r"different spec: `algorithm.eps` is 0.1 there and 0.2 here"):
        sweep(spec(algorithm={"eps": 0.2}), out, progress=False)
    with pytest.raises(dln.InputError, match="chunk = 4 runs; got chunk = 8"):
        sweep(spec(), out, chunk=8, progress=False)
    (tmp_path / "other").mkdir()
    with pytest.raises(dln.InputError, match="is not a dln sweep store"):
        sweep(spec(), tmp_path / "other", progress=False)


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    s = spec(init={"alpha": {"logspace": [-1, 0, 6]}})
    path = tmp_path / "spec.toml"
    path.write_text(_toml(s))
    whole = sweep(s, tmp_path / "whole.zarr", chunk=3, workers=1, progress=False)
    out = tmp_path / "killed.zarr"
    argv = [sys.executable, "-m", "dln.cli", "sweep", str(path), "--out", str(out), "--chunk", "3", "--workers", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "DLN_NO_PROGRESS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and status(out)["tasks_done"] >= 1:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    st = status(out)
    assert 1 <= st["tasks_done"] < st["tasks"] and not st["complete"], st  # killed part-way
    resumed = sweep(s, out, workers=1, progress=False)
    assert same(resumed, whole)
    assert same(xr.open_zarr(out, consolidated=False).load(), xr.open_zarr(tmp_path / "whole.zarr",
                                                                          consolidated=False).load())


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dask_clusters_give_the_same_dataset(tmp_path):
    from distributed import Client
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": tmp_path}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              **quiet)]
    try:
        procs += [subprocess.Popen([dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                    "--no-dashboard"], **quiet) for _ in range(2)]
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        s = spec()
        here = sweep(s, workers=1, chunk=4, progress=False)
        there = sweep(s, tmp_path / "r.zarr", chunk=4, scheduler=address, progress=False)
        assert same(there, here)
        assert same(sweep(s, chunk=4, workers=2, progress=False), here)  # a LocalCluster of two processes
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def test_to_xarray_labels_runs_with_their_hyperparameters(small):
    gamma = np.array([0.0, 0.1, 0.3])
    res = dln.run(small, dln.FGR(gamma, 0.1), dln.Flow(rtol=1e-6), alpha=np.array([0.5, 1.0, 2.0]),
                  loss_tol=1e-6, save_at=[0.1, 1.0], sample_seed=np.array([3, 4, 5]))
    ds = res.to_xarray()
    assert dict(ds.sizes) == {"run": 3, "coord": 20, "time": 2}
    np.testing.assert_array_equal(ds.gamma, gamma)
    np.testing.assert_array_equal(ds.alpha, [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(ds.sample_seed, [3, 4, 5])
    assert ds.eps.item() == 0.1 and ds.rtol.item() == 1e-6 and ds.attrs == {"algorithm": "FGR", "integrator": "Flow"}
    np.testing.assert_array_equal(ds.beta, res.final.beta)
    np.testing.assert_array_equal(ds.saved_alpha_eff, res.saved.alpha_eff)
    np.testing.assert_array_equal(ds.steps, res.steps)
    assert list(ds.status.values) == list(res.status)


def test_problem_save_and_make_data(cli, tmp_path):
    p = dln.make_problem(n=8, d=20, s=3, seed=4, n_test=5)
    p.save(tmp_path / "p.data")  # any name: written as given, no `.npz` appended
    q = dln.load_problem(tmp_path / "p.data")
    for k in ("X", "y", "X_test", "y_test", "beta_star"):
        np.testing.assert_array_equal(getattr(q, k), getattr(p, k))
    code, out, err = cli("make-data", "--n", 8, "--d", 20, "--s", 3, "--seed", 4, "--n-test", 5,
                         "--out", tmp_path / "m.npz")
    assert code == 0 and "n = 8, d = 20" in out
    with np.load(tmp_path / "m.npz") as f:
        assert sorted(f.files) == ["X", "X_test", "beta_star", "y", "y_test"]
        np.testing.assert_array_equal(f["X"], p.X[0])
        np.testing.assert_array_equal(f["y_test"], p.y_test[0])
    code, out, err = cli("make-data", "--d", 2, "--s", 3, "--out", tmp_path / "bad.npz")
    assert code == 2 and "`--s`" in err and not (tmp_path / "bad.npz").exists()


def test_data_file_spec(tmp_path):
    dln.make_problem(**PROBLEM, seed=2).save(tmp_path / "p.npz")
    (tmp_path / "spec.toml").write_text(_toml({"problem": {"data": "p.npz"}, "algorithm": {"name": "gd"},
                                                "init": {"alpha": [0.5, 1.0]}, "integrator": {"loss_tol": 1e-6}}))
    gen = sweep({"problem": {**PROBLEM, "seed": 2}, "algorithm": {"name": "gd"}, "init": {"alpha": [0.5, 1.0]},
                 "integrator": {"loss_tol": 1e-6}}, workers=1, progress=False)
    ds = sweep(tmp_path / "spec.toml", workers=1, progress=False)  # `data` relative to the spec file
    np.testing.assert_array_equal(ds.beta, gen.beta)


def test_data_file_errors_name_the_spec_key_and_the_file(cli, tmp_path):
    X = dln.make_problem(**PROBLEM).X[0]
    X[0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.ones(len(X)))
    (tmp_path / "spec.toml").write_text(_toml({"problem": {"data": "nan.npz"}}))
    code, out, err = cli("sweep", tmp_path / "spec.toml", "--out", tmp_path / "r.zarr", "--workers", 1)
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "r.zarr").exists()
    assert f"`problem.data` file {str(tmp_path / 'nan.npz')!r}: `X` must be finite" in err


def test_version(cli):
    code, out, err = cli("--version")
    assert code == 0 and out == f"dln {version('dln')}\n" and dln.__version__ == version("dln")


def test_a_refused_scheduler_leaves_the_process_dask_settings_alone(tmp_path):
    """A Client that fails to connect was left as the process's default, its dask `scheduler` setting
    pointing at nothing: a later `xarray.open_zarr(...).load()` raised "no Client active"."""
    import dask
    before = dask.config.get("scheduler", None)
    with pytest.raises(dln.InputError, match="no Dask scheduler answered"):
        sweep(spec(), tmp_path / "s.zarr", scheduler="notanaddress", progress=False)
    assert dask.config.get("scheduler", None) == before
    ds = sweep(spec(), tmp_path / "t.zarr", chunk=4, workers=1, progress=False)
    assert same(xr.open_zarr(tmp_path / "t.zarr", consolidated=False).load(), ds)
