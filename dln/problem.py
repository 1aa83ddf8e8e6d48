"""Regression problems: data, the loss `L(beta) = ||X beta - y||^2 / (2n)` and its gradient.

A `Problem` holds `P` problems of the same shape stacked on a leading axis
(`P = 1` for a single data set); a run batch uses problem `b` for run `b`, or
the single problem for every run.
"""
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ._checks import DATA_RANGE, InputError, data_scale, finite_array, fits_in_memory, positive


#: the arrays of a `Problem`, in the order of its fields (and the keys of its `.npz` file)
FIELDS = ("X", "y", "X_test", "y_test", "beta_star")


@dataclass(frozen=True)
class Problem:
    """Least-squares data for a diagonal linear network.

    Attributes
    ----------
    X : ndarray, shape (P, n, d)
        Training inputs.
    y : ndarray, shape (P, n)
        Training targets.
    X_test : ndarray, shape (P, m, d), or None
    y_test : ndarray, shape (P, m), or None
    beta_star : ndarray, shape (P, d), or None
        The planted regressor, when known.

    Construction validates the arrays (`validated`): one problem may be given unstacked, `X` of shape
    (n, d) with `y` (n,), `X_test` (m, d), `y_test` (m,) and `beta_star` (d,), and is stored with `P = 1`.

    A problem is read as immutable: `Xn`, `X_transposed`, `floor` and `row_map` are formed from `X` and `y` at their
    first use and kept (a sweep of runs over one problem forms them once); to change the data, make a
    new `Problem`.
    """

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    beta_star: np.ndarray | None = None

    def __post_init__(self):
        """Replace the arrays given by their validated, stacked forms (`validated`)."""
        self._set(validated(*(getattr(self, k) for k in FIELDS)))

    def _set(self, arrays):
        """Store `arrays` (in the order of `FIELDS`) on this frozen instance."""
        for k, a in zip(FIELDS, arrays):
            object.__setattr__(self, k, a)

    @classmethod
    def _trusted(cls, *arrays):
        """A `Problem` of arrays that are already valid and stacked (slices of a validated problem), built
        without checking them again."""
        p = object.__new__(cls)
        p._set(arrays)
        return p

    @property
    def P(self):
        """Number of stacked problems."""
        return self.X.shape[0]

    @property
    def n(self):
        return self.X.shape[1]

    @property
    def d(self):
        return self.X.shape[2]

    def apply(self, beta, test=False):
        """`X beta` for each run: `beta` of shape (B, d) to shape (B, n) (or (B, m) with `test`)."""
        X = self.X_test if test else self.X
        if X.shape[0] == 1:
            return beta @ (X[0].T if test else self.X_transposed)
        return np.matmul(X, beta[..., None])[..., 0]

    def residual(self, beta, test=False):
        """`r = X beta - y` for each run.

        Parameters
        ----------
        beta : ndarray, shape (B, d)
        test : bool
            Use the test set.

        Returns
        -------
        ndarray, shape (B, n) (or (B, m) with `test`)
        """
        y = self.y_test if test else self.y
        return self.apply(beta, test) - (y[0] if y.shape[0] == 1 else y)

    def loss(self, beta, test=False):
        """`L(beta) = ||X beta - y||^2 / (2n)`, shape (B,)."""
        r = self.residual(beta, test)
        return 0.5 * np.einsum("bn,bn->b", r, r) / r.shape[-1]

    @cached_property
    def Xn(self):
        """`X / n`, shape (P, n, d), formed at first use: `XT`'s product gives `X^T r / n` with no
        division per step (a pass over every gradient that cost 6% of a discrete step at B = 256)."""
        return self.X / self.n

    @cached_property
    def X_transposed(self):
        """`X^T` of problem 0, shape (d, n), contiguous, formed at first use: `apply`'s product
        `beta X^T` with the transpose laid out in memory takes 0.63-0.67x the time of one through the
        transposed view at B = 32-64 (n, d = 40, 200), 0.8x at (B, n, d) = (4, 200, 2000), and the same
        at B >= 128."""
        return np.ascontiguousarray(self.X[0].T)

    @cached_property
    def floor(self):
        """Least-squares floor `min_beta L(beta)` per problem, shape (P,): 0 (up to round-off) where the
        data have an interpolator (a least-squares solve per problem, at first use)."""
        out = np.empty(self.P)
        for i in range(self.P):
            X, y = self.X[i], self.y[i]
            r = X @ np.linalg.lstsq(X, y, rcond=None)[0] - y
            out[i] = 0.5 * (r @ r) / self.n
        return out

    @cached_property
    def row_map(self):
        """`G^T`, `G = (X X^T)^{-1} X`, shape (P, d, n), contiguous: `nu = G z` (`nu = z G^T` for rows `z`) for
        `z` in the row space of `X` (`z = X^T nu`), the flow's dual coordinates; None where some `X X^T` is
        singular or ill-conditioned (smallest eigenvalue at most 1e-10 of the largest)."""
        XXt = np.matmul(self.X, np.swapaxes(self.X, 1, 2))
        ev = np.linalg.eigvalsh(XXt)
        if np.all(ev[:, -1] > 0) and np.all(ev[:, 0] > 1e-10 * ev[:, -1]):
            return np.ascontiguousarray(np.swapaxes(np.linalg.solve(XXt, self.X), 1, 2))
        return None

    def XT(self, r):
        """`X^T r / n = (X / n)^T r` for residuals `r` of shape (B, n); returns shape (B, d), a new array."""
        Xn = self.Xn
        return r @ Xn[0] if self.P == 1 else np.matmul(r[:, None, :], Xn)[:, 0, :]

    def grad(self, beta):
        """`g(beta) = X^T (X beta - y) / n`, shape (B, d), and the loss, shape (B,)."""
        r = self.residual(beta)
        return self.XT(r), 0.5 * np.einsum("bn,bn->b", r, r) / self.n

    def take(self, idx):
        """The problems of runs `idx` (unchanged when one problem serves every run)."""
        if self.P == 1:
            return self
        return Problem._trusted(*(None if (a := getattr(self, k)) is None else a[idx] for k in FIELDS))

    def __getitem__(self, i):
        """Problem `i` alone, as a `Problem` with `P = 1`."""
        return self.take(np.atleast_1d(np.arange(self.P)[i]))

    def save(self, path):
        """Write the problem to an `.npz` file that `load_problem` reads back (keys `X`, `y`, and
        `X_test`, `y_test`, `beta_star` where present; one problem as `(n, d)` arrays, stacked ones
        as `(P, n, d)`), atomically: the file is complete or absent."""
        from ._io import atomic_path
        one = self.P == 1
        arrays = {k: a[0] if one else a for k in FIELDS if (a := getattr(self, k)) is not None}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # a file object: savez appends no `.npz` to the name


def validated(X, y, X_test=None, y_test=None, beta_star=None):
    """The arrays of a problem checked, and stacked on a leading axis of `P` problems.

    Each array holds finite real numbers. Shapes: `X` (n, d) for one problem or (P, n, d), `P, n, d >= 1`;
    `y` (n,) or (P, n); `X_test` (m, d) or (P, m, d) with `m >= 1`, and `y_test` (m,) or (P, m), both or
    neither; `beta_star` (d,) or (P, d). Every array has `max |entry|` in `DATA_RANGE` (`data_scale`), and
    no problem has an all-zero `y` or `X`. Returns `(X, y, X_test, y_test, beta_star)`, stacked.
    """
    X = finite_array(X, "X", ndim=(2, 3))
    if 0 in X.shape:
        raise InputError(f"`X` must have at least one row and one column (shape (n, d), or (P, n, d) for P stacked "
                         f"problems); got shape {X.shape}")
    lead, (n, d) = X.shape[:-2], X.shape[-2:]
    y = _shaped(y, "y", lead + (n,), "one target per row of `X`")
    if (X_test is None) != (y_test is None):
        raise InputError("`X_test` and `y_test` must be given together")
    if X_test is not None:
        X_test = finite_array(X_test, "X_test")
        if X_test.ndim != X.ndim or X_test.shape[:-2] != lead or X_test.shape[-1] != d:
            raise InputError(f"`X_test` must have shape {_shape(lead + ('m', d))} (test rows with the {d} columns "
                             f"of `X`); got shape {X_test.shape}")
        if not X_test.shape[-2]:
            raise InputError("`X_test` must have at least one row; leave X_test and y_test out for no test set")
        y_test = _shaped(y_test, "y_test", X_test.shape[:-1], "one target per row of `X_test`")
    if beta_star is not None:
        beta_star = _shaped(beta_star, "beta_star", lead + (d,), "one entry per column of `X`")
    arrays = [a if a is None or lead else a[None] for a in (X, y, X_test, y_test, beta_star)]
    for a, name, why in ((arrays[1], "y", "the loss is already 0 at beta = 0"),
                         (arrays[0], "X", "no beta changes the loss")):
        zero = ~a.reshape(a.shape[0], -1).any(axis=1)
        if zero.any():
            which = f" (problem {int(zero.argmax())} of the {a.shape[0]} stacked)" if a.shape[0] > 1 else ""
            raise InputError(f"`{name}` must not be all zeros{which} ({why})")
    for name, a in zip(FIELDS, arrays):
        if a is not None:
            data_scale(a, name)
    return tuple(arrays)


def _shape(shape):
    """`shape` written as Python writes a tuple, with names for free sizes: `(3,)`, `(m, 4)`."""
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def _shaped(a, name, shape, what):
    """`a` as a finite real array of exactly `shape`, or `InputError` naming `name`, the shape and `what` it holds."""
    a = finite_array(a, name)
    if a.shape != tuple(shape):
        raise InputError(f"`{name}` must have shape {_shape(shape)} ({what}); got shape {a.shape}")
    return a


def as_problem(problem):
    """`problem` itself where it is a `Problem`; else `InputError` naming it (a public entry point's check)."""
    if not isinstance(problem, Problem):
        raise InputError(f"`problem` must be a dln.Problem (make_problem, load_problem or Problem(X, y)); "
                         f"got {type(problem).__name__}")
    return problem


def generated_fits(n, d, n_test, P=1):
    """Refuse (`InputError`) `P` generated problems whose memory would exceed what is available: `X` and
    `X_test` in float64, and one temporary of their size (the draws, then the solvers' products)."""
    fits_in_memory(2 * 8 * P * (n + n_test) * (d + 1), f"`n` x `d` = {n} x {d} (and `n_test` = {n_test})")


def make_problem(n=40, d=200, s=5, noise=0.0, seed=0, n_test=1000):
    """The default sparse regression problem (Woodworth et al. 2020).

    `X` has i.i.d. N(0, 1) entries, `beta_star` has `s` entries equal to
    `1/sqrt(s)` on a random support, `y = X beta_star + noise * xi` with
    `xi ~ N(0, I)`; the test set is drawn the same way. All draws come from
    `numpy.random.default_rng(seed)`, in the order X, support, noise,
    X_test, test noise.

    Parameters
    ----------
    n, d, s : int
        Samples, dimension and sparsity, `1 <= s <= d`.
    noise : float
        Standard deviation of the label noise, `>= 0`.
    seed : int or sequence of int
        One problem per seed, stacked on the leading axis.
    n_test : int
        Test samples (0 for no test set).
    """
    for name, v, lo in (("n", n, 1), ("d", d, 1), ("s", s, 1), ("n_test", n_test, 0)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise InputError(f"`{name}` must be an integer >= {lo}; got {v!r}")
    if s > d:
        raise InputError(f"`s` must satisfy 1 <= s <= d = {d}; got {s}")
    if np.any(positive(noise, "noise", allow_zero=True) > DATA_RANGE[1] / 1e5):
        raise InputError(f"`noise` must satisfy 0 <= noise <= {DATA_RANGE[1] / 1e5:g} (the labels must stay "
                         f"below {DATA_RANGE[1]:g}: the loss squares them); got {noise!r}")
    seeds = np.atleast_1d(np.asarray(seed))
    if seeds.ndim != 1 or not np.issubdtype(seeds.dtype, np.integer) or np.any(seeds < 0):
        raise InputError(f"`seed` must be a non-negative integer or a list of them; got {seed!r}")
    generated_fits(n, d, n_test, seeds.size)
    parts = []
    for sd in seeds:
        rng = np.random.default_rng(int(sd))
        X = rng.standard_normal((n, d))
        beta = np.zeros(d)
        beta[rng.choice(d, s, replace=False)] = 1 / np.sqrt(s)
        y = X @ beta + noise * rng.standard_normal(n)
        Xt = rng.standard_normal((n_test, d))
        yt = Xt @ beta + noise * rng.standard_normal(n_test)
        parts.append((X, y, Xt, yt, beta))
    X, y, Xt, yt, beta = (np.stack(a) for a in zip(*parts))
    if n_test == 0:
        Xt = yt = None
    return Problem(X, y, Xt, yt, beta)


def load_problem(path):
    """Load a problem from an `.npz` file without pickle.

    Keys: `X` (n, d) and `y` (n,), optional `X_test`, `y_test` and
    `beta_star`. Any other key is an error, so a misspelt key is not ignored.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"`data` must be an existing .npz file; {str(path)!r} does not exist")
    if not zipfile.is_zipfile(p):  # else np.load takes any other bytes for a pickle
        raise InputError(f"`data` must be a readable .npz file (a zip of .npy arrays, as numpy.savez writes); "
                         f"{str(path)!r} is not one (another format, or a zip cut short)")
    # refuse before loading: object arrays (they need pickle), and arrays whose float64 copies would not
    # fit (a small compressed file can expand to gigabytes); other dtypes are `validated` as arrays
    entries = _npz_headers(p)
    for key, (shape, dtype) in entries.items():
        if dtype.hasobject:
            raise InputError(f"`data` file {str(path)!r}: `{key}` must hold real numbers (bool, int or float); "
                             f"got {dtype} (object arrays need pickle: refused, no pickle)")
    size = sum(int(np.prod(shape)) for shape, _ in entries.values())
    fits_in_memory(2 * 8 * size, f"`data` file {str(path)!r} ({' '.join(f'{k} {s}' for k, (s, _) in entries.items())})")
    try:  # the headers were read and their dtypes checked: what fails now is the array data
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001 - e.g. fewer bytes than a header announces, a bad CRC
        raise InputError(f"`data` must be a readable .npz file; {str(path)!r} is truncated or corrupt: {e}") from None
    allowed = set(FIELDS)
    missing = {"X", "y"} - arrays.keys()
    if missing:
        raise InputError(f"`data` file {str(path)!r} lacks key(s) {sorted(missing)}; it must hold `X` and `y`")
    extra = arrays.keys() - allowed
    if extra:
        raise InputError(f"`data` file {str(path)!r} has unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
    return Problem(**arrays)


def _npz_headers(path):
    """`{key: (shape, dtype)}` of each array in an `.npz` file, read from the `.npy` headers alone."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                with z.open(name) as f:
                    version = np.lib.format.read_magic(f)
                    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                    if version not in read:
                        raise ValueError(f"unsupported .npy format version {version}")
                    shape, _, dtype = read[version](f)
                out[name.removesuffix(".npy")] = (shape, dtype)
    except Exception as e:  # noqa: BLE001 - any unreadable member
        raise InputError(f"`data` must be a readable .npz file (a zip of .npy arrays, as numpy.savez writes); "
                         f"{str(path)!r}: {e}") from None
    return out
