"""dln: diagonal linear networks under gradient regularization, in flow and in steps."""
import os as _os
import signal as _signal
import sys as _sys
import threading as _threading
from contextlib import contextmanager as _contextmanager
from importlib.metadata import version as _version


@_contextmanager
def _interrupts_deferred(on=True):
    """While the `dln` command imports modules: Ctrl-C is noted, not raised, and answered with a
    `KeyboardInterrupt` once the imports are done. (Raised inside an import it can be swallowed by an
    import lock's callback, "Exception ignored", or turned into an ImportError by a C extension's
    initialization.) Does nothing unless `on`, or outside the main thread."""
    on = on and _threading.current_thread() is _threading.main_thread()
    hit = []
    previous = _signal.signal(_signal.SIGINT, lambda signum, frame: hit.append(signum)) if on else None
    try:
        yield
    finally:
        if on:
            _signal.signal(_signal.SIGINT, previous)
    if hit:
        raise KeyboardInterrupt


_COMMAND = _os.path.basename(_sys.argv[0]) == "dln"
try:
    with _interrupts_deferred(_COMMAND):
        from ._checks import InputError
        from .algorithms import ALGORITHMS, BGR, FGR, GD, GR, IGR, SAM, USAM, Algorithm, Flooding, NormGR, direction
        from .bias import Q_alpha, min_l1, min_l2, q, solve_dual
        from .integrate import STATUSES, Observables, Result, Steps, observe, run
        from .flow import Flow
        from .models import Depth, Product, Squares
        from .objective import Objective
        from .stochastic import SGD, LabelNoise, Momentum, MiniBatch, MSharpness
        from .problem import Problem, load_problem, make_problem
        from .sweep import sweep  # imports xarray, zarr and dask only when called
        from .explore import explore  # the interactive explorer; imports matplotlib only when called

        __version__ = _version("dln")
except KeyboardInterrupt:
    # Ctrl-C while the `dln` command imports the package (numba, scipy: about a second): one line and
    # code 130, as `dln.cli` answers it later; an import from Python gets the exception
    if _COMMAND:
        _sys.stderr.write("dln: interrupted\n")
        raise SystemExit(130) from None
    raise

__all__ = [
    "sweep", "__version__",
    "InputError", "Algorithm", "ALGORITHMS", "GD", "GR", "IGR", "FGR", "BGR", "SAM", "USAM", "NormGR", "Flooding",
    "direction", "q", "Q_alpha", "solve_dual", "min_l1", "min_l2", "Flow", "Steps", "run", "Result", "Observables",
    "STATUSES", "observe", "Depth", "Squares", "Product", "Objective", "Problem", "make_problem", "load_problem",
    "explore", "SGD", "LabelNoise", "MiniBatch", "MSharpness", "Momentum",
]
