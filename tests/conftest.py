"""Shared fixtures: small problems, the full/reduced switch for slow checks, and the CLI runner.

`DLN_FULL=1` runs the checks marked `slow` at full size; by default they run
in a reduced form (smaller problems, fewer settings), never skipped.
"""
import os

import numpy as np
import pytest

import dln

#: run the `slow` checks at full size; the one reader of DLN_FULL (tests import it from here)
FULL = os.environ.get("DLN_FULL", "") not in ("", "0")


EPS = np.finfo(float).eps


def fd_errors(F, exact, theta, w, hs):
    """Max-norm error of the central difference of `F` along `w` at each step in `hs`."""
    return np.array([np.abs((F(theta + h * w) - F(theta - h * w)) / (2 * h) - exact).max() for h in hs])


def check_fd(F, exact, theta, w):
    """Check `exact` = dF[w] at `theta` by central differences (order 2 measured, then a tolerance
    from that order and round-off at a small step); returns the relative error at the small step."""
    hs = np.array([8e-3, 4e-3, 2e-3])
    e = fd_errors(F, exact, theta, w, hs)
    scale = np.abs(F(theta)).max()
    # round-off of the difference quotient: each F carries a relative error of about d * eps_mach
    roundoff = 10 * theta.shape[-1] * EPS * scale / hs
    if e[0] <= roundoff[0]:
        # F is quadratic along w (beta of the squares and product models): the central difference
        # is exact but for round-off, at every h
        assert np.all(e <= roundoff), (e, roundoff)
        return e.max() / max(np.abs(exact).max(), 1e-300)
    slopes = np.log2(e[:-1] / e[1:])
    assert np.all((slopes > 1.9) & (slopes < 2.1)), f"FD error order {slopes}, expected 2 (errors {e})"
    C = e[-1] / hs[-1] ** 2
    h0 = 1e-5
    # truncation C h0^2 (the measured order-2 constant, doubled for the O(h^4) term) plus round-off
    tol = 2 * C * h0**2 + 10 * theta.shape[-1] * EPS * scale / h0
    err = fd_errors(F, exact, theta, w, [h0])[0]
    assert err <= tol, f"FD error {err:.3g} above the error model {tol:.3g}"
    return err / max(np.abs(exact).max(), 1e-300)


@pytest.fixture(scope="session")
def small():
    """A small default-type problem (n = 8, d = 20, s = 3) with a test set."""
    return dln.make_problem(n=8, d=20, s=3, seed=1, n_test=50)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def cli(capsys):
    """Run `dln ARGS...` in process; returns (exit code, stdout, stderr)."""
    from dln.cli import main

    def call(*argv):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse errors
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def npz(tmp_path):
    """Write arrays to an .npz file in a temporary directory; returns its path."""
    def write(name="data.npz", **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write
