"""Validation at the boundary: every error names the argument and its allowed range."""
import numpy as np


class InputError(ValueError):
    """Bad input to `dln`. The message names the argument (in backticks) and the allowed range."""


def finite_array(x, name, *, ndim=None, dtype=float):
    """Return `x` as a float array, or raise `InputError` naming `name`.

    Checks that `x` converts to numbers, has `ndim` dimensions when given (an
    int or a tuple of allowed values), and holds no NaN or infinity.
    """
    try:
        a = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError):
        raise InputError(f"`{name}` must be numeric; got {type(x).__name__}") from None
    if ndim is not None:
        allowed = (ndim,) if np.isscalar(ndim) else tuple(ndim)
        if a.ndim not in allowed:
            raise InputError(f"`{name}` must have {' or '.join(map(str, allowed))} dimensions; got shape {a.shape}")
    if a.size and not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise InputError(f"`{name}` must be finite; it holds {bad} NaN or infinite value(s)")
    return a


def positive(x, name, *, allow_zero=False):
    """Return `x` as a finite float array with every entry > 0 (>= 0 with `allow_zero`)."""
    a = finite_array(x, name)
    bad = a < 0 if allow_zero else a <= 0
    if np.any(bad):
        rng = "0 <= " if allow_zero else "0 < "
        raise InputError(f"`{name}` must satisfy {rng}{name}; got {a[bad].ravel()[0].item()!r}")
    return a


def nonzero(x, name, *, hint=""):
    """Return `x` as a finite float array with no zero entry (a finite-difference step)."""
    a = finite_array(x, name)
    if np.any(a == 0):
        raise InputError(f"`{name}` must be nonzero (a finite difference divides by it){hint}; got 0")
    return a


def batch_size(sizes):
    """Common batch size of named leading axes: `sizes` maps name -> size (1 broadcasts)."""
    B = 1
    owner = None
    for name, n in sizes.items():
        if n == 1:
            continue
        if B == 1:
            B, owner = n, name
        elif n != B:
            raise InputError(
                f"batch sizes disagree: `{owner}` has {B} runs and `{name}` has {n}; "
                "give each either one value or the same number of values")
    return B


def alpha_batch(alpha, d):
    """`alpha` validated (finite, > 0) as shape (B,) (one scalar per run) or (B, d) / (1, d)
    (per coordinate)."""
    a = positive(alpha, "alpha")
    if a.ndim > 2 or (a.ndim == 2 and a.shape[1] != d):
        raise InputError(f"`alpha` must be a scalar, shape (B,) (one per run) or shape (B, d) / (1, d) "
                         f"(per coordinate, d = {d}); got shape {a.shape}")
    return a.reshape(-1) if a.ndim < 2 else a
