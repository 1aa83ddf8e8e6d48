"""dln: diagonal linear networks under gradient regularization, in flow and in steps."""
from ._checks import InputError
from .algorithms import BGR, FGR, GD, GR, IGR, SAM, USAM, Flooding, NormGR
from .bias import Q_alpha, min_l1, min_l2, q, solve_dual
from .integrate import Flow, Observables, Result, Steps, observe, run
from .models import Depth, Product, Squares
from .objective import Objective
from .problem import Problem, load_problem, make_problem
from .explore import explore  # the interactive explorer; imports matplotlib only when called

__all__ = [
    "InputError", "GD", "GR", "IGR", "FGR", "BGR", "SAM", "USAM", "NormGR", "Flooding",
    "q", "Q_alpha", "solve_dual", "min_l1", "min_l2", "Flow", "Steps", "run", "Result", "Observables",
    "observe", "Depth", "Squares", "Product", "Objective", "Problem", "make_problem", "load_problem",
]
__all__ += ["explore"]
