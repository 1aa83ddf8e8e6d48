"""Problems: the default generator, user arrays, `.npz` loading and validation, the loss."""
import numpy as np
import pytest

import dln


def test_make_problem_is_reproducible_from_the_seed():
    a, b = dln.make_problem(n=6, d=15, s=3, noise=0.1, seed=7), dln.make_problem(n=6, d=15, s=3, noise=0.1, seed=7)
    for name in ("X", "y", "X_test", "y_test", "beta_star"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = dln.make_problem(n=6, d=15, s=3, noise=0.1, seed=8)
    assert not np.array_equal(a.X, c.X)


def test_make_problem_follows_theory_md():
    """docs/theory.md: s entries equal to 1/sqrt(s), y = X beta_star without noise; draws from default_rng(seed)."""
    p = dln.make_problem(n=6, d=15, s=3, seed=3, n_test=4)
    assert p.X.shape == (1, 6, 15) and p.y.shape == (1, 6) and p.X_test.shape == (1, 4, 15)
    bs = p.beta_star[0]
    np.testing.assert_array_equal(np.sort(bs[bs != 0]), np.full(3, 1 / np.sqrt(3)))
    assert np.count_nonzero(bs) == 3
    # y is X beta_star to round-off (a sum of 3 products of O(1) numbers)
    np.testing.assert_allclose(p.y[0], p.X[0] @ bs, rtol=0, atol=1e-14)
    # the first draw of default_rng(seed) is X
    np.testing.assert_array_equal(p.X[0], np.random.default_rng(3).standard_normal((6, 15)))


def test_seed_list_stacks_the_single_problems():
    stacked = dln.make_problem(n=5, d=9, s=2, seed=[4, 2, 9])
    assert stacked.P == 3
    for i, sd in enumerate([4, 2, 9]):
        one = dln.make_problem(n=5, d=9, s=2, seed=sd)
        for name in ("X", "y", "X_test", "y_test", "beta_star"):
            np.testing.assert_array_equal(getattr(stacked[i], name), getattr(one, name))


def test_loss_and_gradient_against_direct_formulas(small, rng):
    beta = rng.standard_normal((3, small.d))
    X, y = small.X[0], small.y[0]
    r = beta @ X.T - y
    np.testing.assert_allclose(small.loss(beta), (r**2).sum(axis=1) / (2 * small.n), rtol=1e-13)
    g, L = small.grad(beta)
    np.testing.assert_allclose(g, r @ X / small.n, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(L, small.loss(beta), rtol=1e-14)


def test_load_valid_npz_roundtrip(npz, small):
    path = npz(X=small.X[0], y=small.y[0], X_test=small.X_test[0], y_test=small.y_test[0],
               beta_star=small.beta_star[0])
    p = dln.load_problem(path)
    for name in ("X", "y", "X_test", "y_test", "beta_star"):
        np.testing.assert_array_equal(getattr(p, name), getattr(small, name))
    only = dln.load_problem(npz("min.npz", X=small.X[0], y=small.y[0]))
    assert only.X_test is None and only.beta_star is None


@pytest.mark.parametrize("case, arrays, words", [
    ("missing key", dict(X=np.ones((3, 4))), ["lacks", "'y'"]),
    ("extra key", dict(X=np.ones((3, 4)), y=np.ones(3), Y_test=np.ones(3)), ["unknown", "Y_test"]),
])
def test_bad_npz_keys_are_refused(npz, case, arrays, words):
    with pytest.raises(dln.InputError) as e:
        dln.load_problem(npz(**arrays))
    for w in words:
        assert w in str(e.value), (case, str(e.value))


@pytest.mark.parametrize("case, arrays, words", [
    ("NaN", dict(X=np.array([[1.0, np.nan], [0.0, 1.0]]), y=np.ones(2)), ["`X`", "finite", "1 NaN"]),
    ("complex", dict(X=np.ones((3, 4)) * 1j, y=np.ones(3)), ["`X`", "real numbers", "complex"]),
    ("1-D X", dict(X=np.ones(3), y=np.ones(3)), ["`X`", "2 or 3 dimensions"]),
    ("no rows", dict(X=np.zeros((0, 30)), y=np.zeros(0)), ["`X`", "at least one row", "got shape (0, 30)"]),
    ("shape mismatch", dict(X=np.ones((3, 4)), y=np.ones(4)), ["`y`", "(3,)", "got shape (4,)"]),
    ("stacked mismatch", dict(X=np.ones((2, 3, 4)), y=np.ones((2, 4))), ["`y`", "(2, 3)", "got shape (2, 4)"]),
    ("test columns", dict(X=np.ones((3, 4)), y=np.ones(3), X_test=np.ones((2, 5)), y_test=np.ones(2)),
     ["`X_test`", "4 columns", "got shape (2, 5)"]),
    ("empty test set", dict(X=np.ones((3, 4)), y=np.ones(3), X_test=np.zeros((0, 4)), y_test=np.zeros(0)),
     ["`X_test` must have at least one row; leave X_test and y_test out for no test set"]),
    ("test alone", dict(X=np.ones((3, 4)), y=np.ones(3), X_test=np.ones((2, 4))), ["together"]),
    ("all-zero y", dict(X=np.ones((3, 4)), y=np.zeros(3)), ["`y`", "zeros"]),
    ("all-zero X", dict(X=np.zeros((3, 4)), y=np.ones(3)), ["`X`", "zeros"]),
    ("one all-zero X of a stack", dict(X=np.stack([np.ones((3, 4)), np.zeros((3, 4))]), y=np.ones((2, 3))),
     ["`X`", "zeros", "problem 1 of the 2"]),
    ("above DATA_RANGE", dict(X=np.ones((3, 4)), y=np.full(3, 1e60)), ["`y`", "1e+50", "1e+60"]),
])
def test_bad_arrays_are_refused_alike_by_Problem_and_load_problem(npz, case, arrays, words):
    """One validation serves `dln.Problem(...)` (the library) and `load_problem` (`--data`): the same
    line, naming the argument and the shape the user gave (not the internal stacked one)."""
    messages = []
    for make in (lambda: dln.Problem(**arrays), lambda: dln.load_problem(npz(**arrays))):
        with pytest.raises(dln.InputError) as e:
            make()
        messages.append(str(e.value))
    assert messages[0] == messages[1], messages
    for w in words:
        assert w in messages[0], (case, messages[0])
    assert "(1, " not in messages[0], messages[0]  # no internal stacked shape


def test_a_problem_built_directly_is_validated_before_any_run():
    """`dln.Problem` checks its arrays: a NaN `X` once reached the flow (LinAlgError), a complex one numba."""
    with pytest.raises(dln.InputError, match="`X` must be finite"):
        dln.run(dln.Problem(X=np.full((1, 3, 4), np.nan), y=np.ones((1, 3))), dln.GD(), dln.Flow())


def test_single_arrays_are_one_stacked_problem(small):
    """`Problem(X (n, d), y (n,), ...)` is the problem with `P = 1` that the stacked arrays give, and its
    cached forms are those of the stacked one."""
    one = dln.Problem(small.X[0], small.y[0], small.X_test[0], small.y_test[0], small.beta_star[0])
    assert one.P == 1
    for name in ("X", "y", "X_test", "y_test", "beta_star", "X_transposed", "Xn", "floor", "row_map"):
        np.testing.assert_array_equal(getattr(one, name), getattr(small, name))


def test_take_slices_without_validating_again(monkeypatch):
    """`take` (called by the driver whenever runs stop) slices a validated problem: no check runs again."""
    p = dln.make_problem(n=4, d=9, s=2, seed=[1, 2, 3], n_test=5)
    monkeypatch.setattr(dln.problem, "validated", lambda *a: pytest.fail("take validated again"))
    q = p.take(np.array([2, 0]))
    for name in ("X", "y", "X_test", "y_test", "beta_star"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name)[[2, 0]])
    np.testing.assert_array_equal(q.Xn, p.X[[2, 0]] / 4)


def test_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([object(), 1], dtype=object), y=np.ones(2))
    with pytest.raises(dln.InputError, match="object arrays"):
        dln.load_problem(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(dln.InputError, match="does not exist"):
        dln.load_problem(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip file")
    with pytest.raises(dln.InputError, match="readable"):
        dln.load_problem(bad)


def test_truncated_npz_is_reported_as_truncated(tmp_path):
    """A `.npy` member whose header announces more bytes than it holds: truncated or corrupt, not
    "object arrays" (its dtype is float64, checked from the header before loading)."""
    import io
    import zipfile
    members = {}
    for key, a in (("X", np.ones((10, 30))), ("y", np.ones(10))):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a)
        members[key] = buf.getvalue()
    path = tmp_path / "cut.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("X.npy", members["X"][:-800])
        z.writestr("y.npy", members["y"])
    with pytest.raises(dln.InputError) as e:
        dln.load_problem(path)
    assert "truncated or corrupt" in str(e.value) and "object" not in str(e.value), str(e.value)


@pytest.mark.parametrize("kw, name", [(dict(n=0), "`n`"), (dict(d=2, s=3), "`s`"), (dict(noise=-1.0), "`noise`"),
                                      (dict(seed=-1), "`seed`"), (dict(seed=1.5), "`seed`")])
def test_make_problem_bad_arguments(kw, name):
    with pytest.raises(dln.InputError, match=name):
        dln.make_problem(**{**dict(n=4, d=6, s=2), **kw})
