"""Hyperparameters declared once: name, range, per-run or not, help text.

Validation, batching (`take`), CLI flags, the JSON `hyperparameters`, the
README table and the explorer's controls are all derived from these
declarations (`Hyper`), attached to a class as `hyper = (Hyper(...), ...)`.
"""
from dataclasses import dataclass

import numpy as np

from ._checks import InputError

#: marks a hyperparameter without a default
REQUIRED = object()


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter.

    name : str
        The keyword (a symbol of the paper: `gamma`, `eps`, `rho`, ...).
    help : str
        One line for `--help`, the README and the explorer.
    kind : {"float", "int", "bool", "algorithm"}
        `algorithm` is a nested algorithm (a wrapper's base).
    lo, hi : float or None
        Bounds; `lo_open`/`hi_open` make them strict. `nonzero` refuses 0. `infinite` allows `inf`
        (a cap that is no cap).
    per_run : bool
        Whether a 1-D array gives one value per run of a batch.
    default
        `REQUIRED` when the user must give it.
    flag : str or None
        The CLI flag (default `--name` with `_` as `-`).
    example
        A typical value: the README's examples, the explorer's starting control and the registry
        tests use it (defaults to `default`).
    divides : str or None
        Name of a problem size the value must divide (`"n"`), checked by `run`.
    explore_range : (float, float) or None
        The explorer's slider `(lo, hi)`, for a declaration whose bounds give no usable finite range
        (a log slider when `0 < lo` and `hi >= 100 lo`). Default None: the explorer derives the slider
        from `lo`, `hi` and `example` (`dln.explore.slider_range`).
    """

    name: str
    help: str
    kind: str = "float"
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    nonzero: bool = False
    infinite: bool = False
    per_run: bool = True
    default: object = REQUIRED
    flag: str | None = None
    divides: str | None = None
    example: object = None
    explore_range: tuple | None = None

    def __post_init__(self):
        if self.example is None and self.default is not REQUIRED:
            object.__setattr__(self, "example", self.default)
        if self.explore_range is not None:
            lo, hi = (float(x) for x in self.explore_range)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(f"`explore_range` of `{self.name}` must be (lo, hi) with finite lo < hi; "
                                 f"got {self.explore_range!r}")
            object.__setattr__(self, "explore_range", (lo, hi))

    @property
    def cli(self):
        """The CLI flag, e.g. `--batch-size`."""
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def range(self):
        """The allowed range in words, e.g. `rho > 0`, `0 <= beta < 1`, `eps != 0`."""
        if self.kind == "bool":
            return f"`{self.name}` True or False"
        if self.kind == "algorithm":
            return f"`{self.name}` an algorithm object"
        lo = None if self.lo is None else f"{self.lo:g}"
        hi = None if self.hi is None else f"{self.hi:g}"
        if lo is not None and hi is not None:
            text = f"{lo} {'<' if self.lo_open else '<='} {self.name} {'<' if self.hi_open else '<='} {hi}"
        elif lo is not None:
            text = f"{self.name} {'>' if self.lo_open else '>='} {lo}"
        elif hi is not None:
            text = f"{self.name} {'<' if self.hi_open else '<='} {hi}"
        else:
            text = ""
        if self.nonzero:
            text = f"{text}, nonzero" if text else f"{self.name} != 0 (nonzero)"
        if self.infinite:
            text += ", or inf (none)"
        if self.kind == "int":
            text += ", an integer"
        if self.divides:
            text += f", a divisor of {self.divides}"
        return text

    def accepts(self, value):
        """Whether `check(value)` passes (`value` is in the declared range)."""
        try:
            self.check(value)
        except InputError:
            return False
        return True

    def check(self, value):
        """`value` validated: a Python scalar, or (per-run) a 1-D array; raises `InputError`
        naming `name` and its range."""
        if self.kind == "algorithm":
            from .algorithms import Algorithm
            if not isinstance(value, Algorithm):
                raise InputError(f"`{self.name}` must be an algorithm object such as GD(); got {value!r}")
            return value
        if self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise InputError(f"`{self.name}` must be True or False; got {value!r}")
            return bool(value)
        if isinstance(value, (str, bytes)) or (isinstance(value, np.ndarray) and value.dtype.kind not in "iuf"):
            raise InputError(f"`{self.name}` must be a real number ({self.range}); got {value!r}")
        if isinstance(value, (bool, np.bool_)):  # (True is 1 to NumPy: GR(gamma=True) ran with gamma = 1)
            raise InputError(f"`{self.name}` must be a number ({self.range}), not a bool; got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > np.iinfo(np.int64).max:
            if self.kind == "int":  # (NumPy would hold it as an object)
                raise InputError(f"`{self.name}` must satisfy {self.range}; got {value} (beyond 64-bit integers)")
            value = float(value)
        try:
            a = np.asarray(value)
        except Exception:  # noqa: BLE001 - any unconvertible object
            raise InputError(f"`{self.name}` must be a real number ({self.range}); got {value!r}") from None
        if a.dtype.kind not in "iuf":
            raise InputError(f"`{self.name}` must be a real number ({self.range}); got {value!r}")
        if a.ndim > (1 if self.per_run else 0):
            shape = "a scalar or a 1-D array with one value per run" if self.per_run else "a scalar"
            raise InputError(f"`{self.name}` must be {shape}; got shape {a.shape}")
        if a.ndim == 1 and a.size == 0:
            raise InputError(f"`{self.name}` must not be empty")
        if self.kind == "int":
            if a.dtype.kind == "f":
                if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                    raise InputError(f"`{self.name}` must be an integer ({self.range}); got {value!r}")
            a = a.astype(np.int64)
        else:
            a = a.astype(float)
            if not np.all(np.isfinite(a) | (self.infinite & (a == np.inf))):
                raise InputError(f"`{self.name}` must be finite ({self.range}); got {value!r}")
        bad = np.zeros(a.shape, bool)
        if self.lo is not None:
            bad |= (a <= self.lo) if self.lo_open else (a < self.lo)
        if self.hi is not None:
            bad |= (a >= self.hi) if self.hi_open else (a > self.hi)
        if self.nonzero:
            bad |= a == 0
        if np.any(bad):
            raise InputError(f"`{self.name}` must satisfy {self.range}; got {a[bad].ravel()[0].item()!r}")
        if a.ndim == 0:
            return a.item()
        a.setflags(write=False)
        return a


def _store(obj, values):
    """Keep `values` as `obj._values`, and each also as an instance attribute where the class defines no
    attribute of that name (so reading it is a plain attribute lookup, not `__getattr__`: hyperparameters
    are read several times per step)."""
    object.__setattr__(obj, "_values", values)
    cls = type(obj)
    obj.__dict__.update({k: v for k, v in values.items() if not hasattr(cls, k)})


class Declared:
    """Base of objects whose constructor arguments are the `Hyper`s of `hyper`.

    `Cls(*args, **kwargs)` binds arguments in declaration order, checks each,
    and stores them read-only; `repr` shows the class name and the values;
    `take(idx, B)` restricts per-run arrays to runs `idx` (recursing into
    nested algorithms).
    """

    hyper: tuple = ()

    def __init__(self, *args, **kwargs):
        decl = self.hyper
        name = type(self).__name__
        if len(args) > len(decl):
            raise InputError(f"{name} takes {len(decl)} hyperparameter(s) "
                             f"({', '.join(f'`{h.name}`' for h in decl) or 'none'}); got {len(args)} positional values")
        values = {}
        for h, v in zip(decl, args):
            values[h.name] = v
        for k, v in kwargs.items():
            if k in values:
                raise InputError(f"{name}: `{k}` given twice")
            if k not in {h.name for h in decl}:
                takes = ", ".join(f"`{h.name}`" for h in decl) or "no hyperparameter"
                raise InputError(f"{name} has no hyperparameter `{k}` (it takes {takes})")
            values[k] = v
        checked = {}
        for h in decl:
            if h.name not in values:
                if h.default is REQUIRED:
                    raise InputError(f"`{h.name}` is required by {name} ({h.range})")
                checked[h.name] = h.default
            else:
                checked[h.name] = h.check(values[h.name])
        _store(self, checked)
        self.__post_init__()

    def __post_init__(self):
        """Cross-checks between hyperparameters (none by default)."""

    def __getattr__(self, key):
        values = self.__dict__.get("_values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is frozen: build a new one instead of setting `{key}`")

    def __repr__(self):
        def show(v):
            return np.array2string(v, threshold=6, separator=", ") if isinstance(v, np.ndarray) else repr(v)
        return f"{type(self).__name__}({', '.join(f'{k}={show(v)}' for k, v in self._values.items())})"

    def values(self):
        """`name -> value` of every declared hyperparameter (nested algorithms included as objects)."""
        return dict(self._values)

    def items(self):
        """`(Hyper, value)` of every hyperparameter, a nested algorithm followed by its own, depth first."""
        out = []
        for h in self.hyper:
            v = self._values[h.name]
            out.append((h, v))
            if h.kind == "algorithm":
                out += v.items()
        return out

    def batch_sizes(self):
        """`name -> number of values` of the per-run hyperparameters given as arrays (nested included)."""
        out = {}
        for h in self.hyper:
            v = self._values[h.name]
            if h.kind == "algorithm":
                out.update(v.batch_sizes())
            elif isinstance(v, np.ndarray):
                out[h.name] = v.shape[0]
        return out

    def take(self, idx, B):
        """The same object restricted to runs `idx` of a batch of `B` runs."""
        changes = {}
        for h in self.hyper:
            v = self._values[h.name]
            if h.kind == "algorithm":
                w = v.take(idx, B)
                if w is not v:
                    changes[h.name] = w
            elif isinstance(v, np.ndarray):
                changes[h.name] = np.broadcast_to(v, (B,))[idx]
        if not changes:
            return self
        new = object.__new__(type(self))
        _store(new, {**self._values, **changes})
        return new

    def per_run(self, name, B):
        """Hyperparameter `name` as an array of shape (B,)."""
        return np.broadcast_to(np.asarray(self._values[name], float), (B,))
