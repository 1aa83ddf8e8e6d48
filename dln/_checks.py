"""Validation at the boundary: every error names the argument and its allowed range."""
import os

import numpy as np


class InputError(ValueError):
    """Bad input to `dln`. The message names the argument (in backticks) and the allowed range."""


def finite_array(x, name, *, ndim=None, dtype=float):
    """Return `x` as a float array, or raise `InputError` naming `name`.

    Checks that `x` holds real numbers (bool, integer or float: complex, string,
    datetime and object arrays are refused, not cast), has `ndim` dimensions when
    given (an int or a tuple of allowed values), and holds no NaN or infinity.
    """
    if isinstance(x, int) and not isinstance(x, bool):
        x = float(x)  # (beyond 64 bits NumPy would hold it as an object)
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):  # ragged nested sequences
        raise InputError(f"`{name}` must be an array of real numbers; got a ragged {type(x).__name__}") from None
    if raw.dtype.kind not in "biuf":
        what = {"c": "complex", "U": "string", "S": "bytes", "M": "datetime", "m": "timedelta", "O": "object"}
        raise InputError(f"`{name}` must hold real numbers (bool, int or float); got "
                         f"{what.get(raw.dtype.kind, str(raw.dtype))} values ({raw.dtype})")
    a = raw.astype(dtype, copy=False)
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


def seed_array(seed, name):
    """`seed` (a non-negative integer, or a 1-D array of them, one per run) as a 1-D int64 array, or
    `InputError` naming `name` (a uint64 above 2^63 - 1 would wrap to a negative seed: refused too)."""
    a = np.atleast_1d(np.asarray(seed))
    if a.ndim != 1 or a.dtype.kind not in "iu" or np.any(a < 0) or np.any(a > np.iinfo(np.int64).max):
        raise InputError(f"`{name}` must be a non-negative integer or a 1-D array of them; got {seed!r}")
    return a.astype(np.int64)


def batch_size(sizes):
    """Common batch size of named leading axes: `sizes` maps name -> size (1 broadcasts)."""
    B = 1
    owner = None
    for name, n in sizes.items():
        if n == 0:
            raise InputError(f"`{name}` is empty: give at least one value (one run)")
        if n == 1:
            continue
        if B == 1:
            B, owner = n, name
        elif n != B:
            raise InputError(
                f"batch sizes disagree: `{owner}` has {B} runs and `{name}` has {n}; "
                "give each either one value or the same number of values")
    return B


#: the allowed initialization scales: `alpha^2` and `1/alpha^2` stay far inside the float range, and the
#: dual's exponent `X^T nu ~ log(|beta| / alpha^2)` stays below cosh's overflow at 710
ALPHA_RANGE = (1e-100, 1e50)
#: the allowed data scale `max |X|`, `max |y|`: the loss squares the data and GR's curvature terms
#: take fourth powers of it (times n and d), which must stay below the float maximum 1.8e308
DATA_RANGE = (1e-50, 1e50)


def scale_range(a, name, magnitude=False):
    """Refuse a scale outside `ALPHA_RANGE` (`|a|` with `magnitude`, where 0 and negative entries are
    allowed): the squares and their inverses must stay in floating-point range. Returns `a`."""
    lo, hi = ALPHA_RANGE
    m = np.abs(a) if magnitude else a
    bad = (m > hi) if magnitude else (m < lo) | (m > hi)
    if np.any(bad):
        rng = f"|{name}| <= {hi:g}" if magnitude else f"{lo:g} <= {name} <= {hi:g}"
        raise InputError(f"`{name}` must satisfy {rng} ({name}^2, 1/{name}^2 and the exponent of the implicit-bias "
                         f"solve stay in floating-point range); got {a[bad].ravel()[0].item()!r}")
    return a


def alpha_batch(alpha, d):
    """`alpha` validated (finite, `ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]`) as shape (B,) (one
    scalar per run) or (B, d) / (1, d) (per coordinate)."""
    if np.asarray(alpha).dtype == bool:
        raise InputError(f"`alpha` must be a number > 0, not a bool; got {alpha!r}")
    a = scale_range(positive(alpha, "alpha"), "alpha")
    if not a.size:
        raise InputError("`alpha` is empty: give at least one value (one run)")
    if a.ndim > 2 or (a.ndim == 2 and a.shape[1] != d):
        raise InputError(f"`alpha` must be a scalar, shape (B,) (one per run) or shape (B, d) / (1, d) "
                         f"(per coordinate, d = {d}); got shape {a.shape}")
    return a.reshape(-1) if a.ndim < 2 else a


def data_scale(a, name):
    """Refuse data whose largest entry `max |a|` lies outside `DATA_RANGE` (or is 0 for `X`): the
    loss, the gradient and the curvature would overflow or underflow. Returns `a`."""
    if not a.size:
        return a
    m = float(np.abs(a).max())
    lo, hi = DATA_RANGE
    if m > hi or 0 < m < lo:
        raise InputError(f"`{name}` must have its largest |entry| between {lo:g} and {hi:g} (the loss and its "
                         f"curvature take up to fourth powers of the data); got {m:.3g}: rescale `{name}`")
    return a


def available_memory():
    """Bytes of memory this process can still take: `MemAvailable` of /proc/meminfo (Linux), else the
    physical memory, capped by the address-space limit (`ulimit -v`) when one is set."""
    import resource
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    return avail if soft == resource.RLIM_INFINITY else min(avail, soft)


def fits_in_memory(nbytes, what):
    """Raise `InputError` when `nbytes` (an estimate made before allocating) exceeds the available
    memory; `what` names the arguments that set the size, e.g. "`n` x `d` = 100000 x 100000"."""
    avail = available_memory()
    if nbytes > avail:
        raise InputError(f"{what} needs about {nbytes / 2**30:.3g} GiB of memory, more than the "
                         f"{avail / 2**30:.3g} GiB available: reduce it")
