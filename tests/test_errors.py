"""Bad input to the real CLI (`dln.cli.main`, in process): exit code 2, one line on stderr naming
the flag and its allowed range, nothing on stdout, never a traceback or a warning before the error.

The table holds one fast case per kind of a campaign of ~440 bad or extreme inputs (numeric flags,
data files, data scale, alpha files, memory, output paths, algorithms, caps); interrupts and broken
pipes are tested below it.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import dln.cli
from dln._io import atomic_path

TINY = ["--n", 4, "--d", 10, "--s", 1, "--n-test", 5]


def _files(tmp_path):
    """The bad data files the cases below refer to, by name."""
    X, y = np.random.default_rng(0).standard_normal((4, 10)), np.ones(4)
    np.savez(tmp_path / "nan.npz", X=np.where(np.eye(4, 10) > 0, np.nan, X), y=y)
    np.savez(tmp_path / "shape.npz", X=X, y=np.ones(5))
    np.savez(tmp_path / "extra.npz", X=X, y=y, beta=np.ones(10))
    np.savez(tmp_path / "nokey.npz", X=X)
    np.savez(tmp_path / "object.npz", X=np.array([None, 1], dtype=object), y=y)
    np.savez(tmp_path / "good.npz", X=X, y=y)
    (tmp_path / "garbage.npz").write_bytes(b"not\nan npz\nfile")
    np.save(tmp_path / "alpha_short.npy", np.ones(7))
    np.save(tmp_path / "alpha_neg.npy", -np.ones(10))
    np.save(tmp_path / "alpha_complex.npy", np.ones(10) * (1 + 1j))
    np.savez(tmp_path / "complex.npz", X=X + 1j, y=y)
    np.savez(tmp_path / "string.npz", X=X, y=np.array(["a", "b", "c", "d"]))
    np.savez(tmp_path / "datetime.npz", X=np.zeros((4, 10), "datetime64[s]"), y=y)
    np.savez(tmp_path / "tiny.npz", X=X * 1e-200, y=y)
    np.savez(tmp_path / "huge.npz", X=X, y=y * 1e150)
    (tmp_path / "afile").write_text("x")
    with open(tmp_path / "alpha_archive.npy", "wb") as f:  # an .npz archive under a .npy name
        np.savez(f, alpha=np.ones(10))


# (kind, argv, flag the message must name, words stating the allowed range or the fix)
CASES = [
    ("negative alpha", ["simulate", *TINY, "--alpha", -1], "--alpha", "> 0"),
    ("zero alpha", ["simulate", *TINY, "--alpha", 0], "--alpha", "> 0"),
    ("NaN alpha", ["simulate", *TINY, "--alpha", "nan"], "--alpha", "> 0"),
    ("alpha file of the wrong length", ["simulate", *TINY, "--alpha", "{tmp}/alpha_short.npy"], "--alpha", "10 numbers"),
    ("alpha file with negatives", ["simulate", *TINY, "--alpha", "{tmp}/alpha_neg.npy"], "--alpha", "> 0"),
    ("eps = 0 for fgr", ["simulate", *TINY, "--algorithm", "fgr", "--gamma", 1, "--eps", 0], "--eps", "nonzero"),
    ("eps = 0 for bgr", ["simulate", *TINY, "--algorithm", "bgr", "--gamma", 1, "--eps", 0], "--eps", "eps > 0"),
    ("negative gamma", ["simulate", *TINY, "--algorithm", "gr", "--gamma", -0.1], "--gamma", ">= 0"),
    ("missing rho for sam", ["simulate", *TINY, "--algorithm", "sam"], "--rho", "rho > 0"),
    ("unknown algorithm", ["simulate", *TINY, "--algorithm", "adam"], "--algorithm", "choose from"),
    ("NaN in the data", ["simulate", "--data", "{tmp}/nan.npz"], "--data", "finite"),
    ("shape mismatch in the npz", ["simulate", "--data", "{tmp}/shape.npz"], "--data", "shape (4,)"),
    ("unknown key in the npz", ["simulate", "--data", "{tmp}/extra.npz"], "--data", "allowed"),
    ("missing key in the npz", ["simulate", "--data", "{tmp}/nokey.npz"], "--data", "must hold `X` and `y`"),
    ("object array in the npz", ["simulate", "--data", "{tmp}/object.npz"], "--data", "no pickle"),
    ("missing file", ["simulate", "--data", "{tmp}/absent.npz"], "--data", "existing .npz"),
    ("not an npz file", ["solve", "--data", "{tmp}/garbage.npz", "--alpha", 1], "--data", "readable .npz"),
    ("bad depth", ["simulate", *TINY, "--param", "depth", "--depth", 1], "--depth", ">= 2"),
    ("non-integer depth", ["simulate", *TINY, "--param", "depth", "--depth", 2.5], "--depth", "integer"),
    ("non-numeric flag", ["simulate", *TINY, "--gamma", "abc"], "--gamma", ">= 0"),
    ("non-integer n", ["simulate", "--n", "4.5"], "--n", "integer >= 1"),
    ("s larger than d", ["simulate", "--n", 4, "--d", 3, "--s", 5], "--s", "1 <= s <= d"),
    ("negative noise", ["simulate", *TINY, "--noise", -1], "--noise", ">= 0"),
    ("max-time <= 0", ["simulate", *TINY, "--max-time", 0], "--max-time", "> 0"),
    ("loss-tol 0 with no cap on a flow", ["simulate", *TINY, "--loss-tol", 0], "--loss-tol", "finite `--max-time`"),
    ("negative loss-tol", ["simulate", *TINY, "--loss-tol", -1e-3], "--loss-tol", ">= 0"),
    ("diverging step size", ["simulate", *TINY, "--steps", "--eta", 5], "--eta", "stable range is 0 <"),
    ("flooding as a flow", ["simulate", *TINY, "--algorithm", "flood", "--flood", 0.1], "--algorithm", "--steps"),
    ("non-positive u0 for squares", ["simulate", *TINY, "--u0", -0.5], "--u0", "> 0"),
    ("save times out of order", ["simulate", *TINY, "--save-at", "1,0.5"], "--save-at", "increasing"),
    ("flow and steps together", ["simulate", *TINY, "--flow", "--steps"], "--steps", "not allowed"),
    ("solve q without alpha", ["solve", "--data", "{tmp}/good.npz"], "--alpha", "> 0"),
    ("-inf alpha (looks like a flag)", ["simulate", *TINY, "--alpha", "-inf"], "--alpha", "> 0"),
    ("negative save time (looks like a flag)", ["simulate", *TINY, "--save-at", "-1,2"], "--save-at", ">= 0"),
    ("negative loss-tol in e-notation", ["simulate", *TINY, "--loss-tol", "-1e-3"], "--loss-tol", ">= 0"),
    ("alpha too small for the dual solve", ["solve", *TINY, "--alpha", "1e-300"], "--alpha", "1e-100 <= alpha"),
    ("alpha whose square overflows", ["simulate", *TINY, "--steps", "--alpha", "1e200"], "--alpha", "alpha <= 1e+50"),
    ("complex alpha file", ["simulate", *TINY, "--alpha", "{tmp}/alpha_complex.npy"], "--alpha", "10 numbers"),
    ("complex data", ["simulate", "--data", "{tmp}/complex.npz"], "--data", "real numbers"),
    ("string labels", ["solve", "--data", "{tmp}/string.npz", "--alpha", 1], "--data", "real numbers"),
    ("datetime data", ["simulate", "--data", "{tmp}/datetime.npz"], "--data", "real numbers"),
    ("data scaled by 1e-200", ["solve", "--data", "{tmp}/tiny.npz", "--alpha", 1], "--data", "rescale `X`"),
    ("labels scaled by 1e150", ["simulate", "--data", "{tmp}/huge.npz", "--json"], "--data", "rescale `y`"),
    ("noise whose loss overflows", ["simulate", *TINY, "--noise", "1e300"], "--noise", "noise <= 1e+45"),
    ("data too large for memory", ["simulate", "--n", 100000, "--d", 100000], "--n", "GiB"),
    ("IGR's eta is not the step size", ["simulate", *TINY, "--algorithm", "igr", "--igr-eta", 0.1, "--steps", "--eta", 30],
     "--eta` = 30", "stable range is 0 < `--eta`"),
    ("gr without gamma", ["simulate", *TINY, "--algorithm", "gr"], "--gamma", "gamma >= 0"),
    ("a value no algorithm accepts, on one that ignores it", ["simulate", *TINY, "--rho", "-1e-3"], "--rho", "rho > 0"),
    ("figures into an existing file", ["figures", "--only", 1, "--out", "{tmp}/afile"], "--out", "existing file"),
    ("figures into /proc", ["figures", "--only", 1, "--thumbnails", "/proc/t", "--out", "{tmp}/f"], "--thumbnails", "cannot be created"),
    ("explore saving into a missing directory", ["explore", "--save", "{tmp}/absent/e.png"], "--save", "existing directory"),
    ("validate report into a directory", ["validate", "--quick", "--json", "{tmp}"], "--json", "not a directory"),
    ("unknown objective", ["solve", "--data", "{tmp}/good.npz", "--objective", "l3"], "--objective", "choose from"),
    ("u0 whose square overflows", ["simulate", *TINY, "--u0", "1e200", "--v0", "1e200", "--json"], "--u0", "<= 1e+50"),
    ("depth beyond the float range", ["simulate", *TINY, "--param", "depth", "--depth", 10**30], "--depth", "<= 100"),
    ("an .npz archive as the alpha file", ["simulate", *TINY, "--alpha", "{tmp}/alpha_archive.npy"], "--alpha",
     ".npz archive"),
    ("an empty save time", ["simulate", *TINY, "--save-at", "1,,2"], "--save-at", "comma-separated numbers"),
    ("save times that do not fit in memory", ["simulate", "--n", 4, "--d", 100000, "--n-test", 5,
                                              "--save-at", ",".join(map(str, range(20000)))], "--save-at", "GiB"),
    ("max-steps beyond 64-bit integers", ["simulate", *TINY, "--max-steps", 10**30], "--max-steps", "max_steps >= 1"),
    ("a huge batch size", ["simulate", *TINY, "--algorithm", "sgd", "--steps", "--batch-size", 10**30],
     "--batch-size", "batch_size >= 1"),
    ("momentum on a flow", ["simulate", *TINY, "--momentum", 0.9], "--momentum", "--steps"),
    ("a flood level above the loss: the step climbs", ["simulate", *TINY, "--algorithm", "flood", "--flood", "1e308",
                                                        "--steps"], "--flood", "below 2 / the largest eigenvalue"),
]


@pytest.mark.parametrize("kind, argv, flag, allowed", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_the_flag(cli, tmp_path, kind, argv, flag, allowed):
    _files(tmp_path)
    code, out, err = cli(*(str(a).replace("{tmp}", str(tmp_path)) for a in argv))
    assert code == 2, (kind, code, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, f"{kind}: not one line: {err!r}"
    assert "Traceback" not in err
    assert flag in err, f"{kind}: {flag} not named in {err!r}"
    assert allowed in err, f"{kind}: range {allowed!r} not stated in {err!r}"


def _raise(exc):
    def main(args, cmd):
        raise exc
    return main


def test_ctrl_c_is_one_line_and_exit_130(cli, monkeypatch):
    monkeypatch.setattr("dln.cli_simulate.main", _raise(KeyboardInterrupt()))
    code, out, err = cli("simulate", *TINY)
    assert (code, out, err) == (130, "", "dln simulate: interrupted\n")


def _wait_for_library(pid, name, timeout=60):
    """Wait until process `pid` has mapped a shared library whose path contains `name` (it is then
    past Python's start-up, inside `dln`'s own imports)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/maps") as f:
            if name in f.read():
                return
        time.sleep(0.005)
    raise AssertionError(f"{name} not loaded within {timeout} s")


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc to see the child's imports")
@pytest.mark.parametrize("delay", [0.0, 0.3, 1.5])
def test_ctrl_c_of_the_command_at_any_time_is_one_line(delay):
    """The `dln` command interrupted while it imports the package (numba, scipy: about a second after
    numpy) or while it runs: exit 130 and one line, never a traceback and never a lost interrupt. The
    signal is sent `delay` seconds after numpy is loaded (the start of the package's imports); whichever
    phase that lands in on a given machine, the answer is the same. (Python's own start-up, before
    any `dln` code runs, is outside what the package can answer.)"""
    exe = os.path.join(os.path.dirname(sys.executable), "dln")
    proc = subprocess.Popen([exe, "validate", "--quick"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_library(proc.pid, "_multiarray_umath")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(": interrupted"), err


def test_sigterm_is_one_line_and_removes_partial_files(cli, monkeypatch, tmp_path):
    """SIGTERM raises in the main thread, so the `finally` of `atomic_path` removes the partial file."""
    def main(args, cmd):
        with atomic_path(tmp_path / "out.png") as tmp:
            # what a SIGKILL (no cleanup possible) would leave says what it is, in plain sight
            assert os.path.basename(tmp).startswith("out.incomplete-") and tmp.endswith(".png")
            open(tmp, "w").write("partial")
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 1)  # the handler has run by the time the next bytecode executes
    monkeypatch.setattr("dln.cli_simulate.main", main)
    before = signal.getsignal(signal.SIGTERM)
    code, out, err = cli("simulate", *TINY)
    assert (code, err) == (143, "dln simulate: terminated\n")
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before, "the previous SIGTERM handler is restored"


def test_warning_before_an_input_error_is_dropped(cli, monkeypatch):
    import warnings

    def main(args, cmd):
        warnings.warn("overflow encountered in multiply", RuntimeWarning)
        raise dln.InputError("`alpha` must be small")
    monkeypatch.setattr("dln.cli_simulate.main", main)
    code, out, err = cli("simulate", *TINY)
    assert (code, err) == (2, "dln simulate: error: `alpha` must be small\n")


def test_closed_pipe_ends_quietly():
    """`dln solve ... --json | head -c 10`: the reader closes the pipe before the 400 KB of JSON are
    written; exit 141 (128 + SIGPIPE, as the shell reports a process killed by SIGPIPE), no traceback."""
    argv = ["solve", "--n", "4", "--d", "20000", "--s", "1", "--n-test", "0", "--alpha", "1", "--json"]
    p = subprocess.Popen([sys.executable, "-m", "dln.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.read(10).startswith(b"{")
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and err == "", err



def _sigint_disposition():
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the explorer forks worker processes on Linux only")
def test_explorer_workers_leave_ctrl_c_to_the_window(monkeypatch):
    """Ctrl-C reaches every process of the terminal's group: the explorer's worker processes ignore it,
    so only the window's process answers (one line, exit 130) instead of each worker's traceback.
    (The pool forks only while no other thread runs; pytest's may, so that test is bypassed here.)"""
    import concurrent.futures as cf

    from dln.explore import _executor

    import threading

    monkeypatch.setattr(threading, "active_count", lambda: 1)
    pool, owned = _executor(True)
    try:
        assert isinstance(pool, cf.ProcessPoolExecutor)
        assert pool.submit(_sigint_disposition).result(timeout=60)
    finally:
        pool.shutdown()
