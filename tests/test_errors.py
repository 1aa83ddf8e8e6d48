"""Bad input to the real CLI (`dln.cli.main`, in process): exit code 2, one line on stderr naming
the flag and its allowed range, nothing on stdout, never a traceback."""
import numpy as np
import pytest

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
    ("unknown objective", ["solve", "--data", "{tmp}/good.npz", "--objective", "l3"], "--objective", "choose from"),
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


def test_there_are_at_least_ten_kinds():
    assert len({c[2] for c in CASES}) >= 10 and len(CASES) >= 10
