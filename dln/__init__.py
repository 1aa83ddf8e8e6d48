"""dln: diagonal linear networks under gradient regularization, in flow and in steps."""
from importlib.metadata import version as _version

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

__all__ = [
    "sweep", "__version__",
    "InputError", "Algorithm", "ALGORITHMS", "GD", "GR", "IGR", "FGR", "BGR", "SAM", "USAM", "NormGR", "Flooding",
    "direction", "q", "Q_alpha", "solve_dual", "min_l1", "min_l2", "Flow", "Steps", "run", "Result", "Observables",
    "STATUSES", "observe", "Depth", "Squares", "Product", "Objective", "Problem", "make_problem", "load_problem",
    "explore", "SGD", "LabelNoise", "MiniBatch", "MSharpness", "Momentum",
]
