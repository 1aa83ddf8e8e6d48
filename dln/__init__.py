"""dln: diagonal linear networks under gradient regularization, in flow and in steps."""
import os as _os
import sys as _sys
from importlib.metadata import version as _version

try:
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
    # Ctrl-C while the `dln` command is still importing the package (numba, scipy: about a second):
    # one line and code 130, as `dln.cli` answers it later; an import from Python gets the exception
    if _os.path.basename(_sys.argv[0]) == "dln":
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
