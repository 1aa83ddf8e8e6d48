"""`dln simulate` and `dln solve`: one run, or one implicit-bias solve, from the command line.

    dln simulate [--data FILE.npz | --n N --d D --s S --noise SIGMA --seed K]
                 [--algorithm NAME] [--alpha A | --alpha FILE.npy] [hyperparameter flags]
                 [--flow | --steps --eta H] [--max-steps N] [--max-time T]
                 [--loss-tol TOL [--absolute-loss-tol]] [--save-at T1,T2,...]
                 [--param {squares,product,depth}] [--depth D] [--u0 V] [--v0 V] [--json]
    dln solve    [--data FILE.npz | --n ...] --alpha A [--objective {q,l1,l2}] [--json]

The CLI parses into the same objects `dln.run` takes: the algorithm comes from
the registry `dln.algorithms.ALGORITHMS`, and its flags, their ranges and help
come from each algorithm's hyperparameter declarations (`hyper`); a
hyperparameter given that the chosen algorithm (or integrator, or model) does
not use draws a one-line warning on stderr. Bad input raises `InputError`, which `dln.cli` prints as one line
naming the flag and its allowed range (exit code 2).
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

from . import algorithms as _alg
from ._checks import InputError
from .bias import Q_alpha, min_l1, min_l2, solve_dual
from .flow import Flow
from .integrate import LOSS_TOL, Steps, run
from .models import MAX_DEPTH, Depth, Product
from .problem import load_problem, make_problem
from .stochastic import WRAPPERS

def _declared(bools=False):
    """Every numeric hyperparameter of the registered algorithms and of the wrappers (`dln.stochastic.WRAPPERS`,
    applied when one of their flags is given), `name -> [(algorithm name, Hyper), ...]`, from the declarations;
    with `bools`, the wrappers' True/False switches (`--nesterov`) instead."""
    out = {}
    for alg, cls in [*_alg.ALGORITHMS.items(), *((w.__name__, w) for w in WRAPPERS)]:
        for h in cls.hyper:
            if (h.kind == "bool" and bools and cls in WRAPPERS) or (h.kind not in ("algorithm", "bool") and not bools):
                out.setdefault(h.name, []).append((alg, h))
    return out


#: library argument names (as they appear in backticks in `InputError`) -> CLI flag; the integrator's and
#: the problem's names win over an algorithm hyperparameter of the same name (`eta` is `--eta`, IGR's is
#: `--igr-eta`: `_flagify` maps the chosen algorithm's own names when it is given)
FLAGS = {
    **{name: decl[0][1].cli for name, decl in _declared().items()},
    "alpha": "--alpha", "eta": "--eta", "max_steps": "--max-steps", "max_time": "--max-time", "loss_tol": "--loss-tol",
    "depth": "--depth", "data": "--data", "n": "--n", "d": "--d", "s": "--s", "noise": "--noise",
    "seed": "--seed", "n_test": "--n-test", "theta0": "--u0/--v0", "algorithm": "--algorithm",
    "save_at": "--save-at", "normalized": "--algorithm", "sample_seed": "--sample-seed",
}

#: problem-generation flags and their defaults (those of `make_problem`)
GENERATED = {"n": 40, "d": 200, "s": 5, "noise": 0.0, "seed": 0, "n_test": 1000}


def _flagify(message, algorithm=None, own_first=True):
    """Rewrite library argument names in backticks (`alpha`) as CLI flags (`--alpha`), on one line.
    With `algorithm` (a class), its own hyperparameters map to its flags: first (its constructor's
    errors), or after the integrator's and problem's names (`own_first=False`: errors of the run,
    where `eta` is the step size `--eta`)."""
    own = {} if algorithm is None else {h.name: h.cli for h in algorithm.hyper if h.kind not in ("algorithm", "bool")}
    flags = {**FLAGS, **own} if own_first else {**own, **FLAGS}
    message = re.sub(r"`([A-Za-z_0-9]+)`", lambda m: f"`{flags.get(m.group(1), m.group(1))}`", str(message))
    return " ".join(message.split())


def _number(kind=float, lo=None, hi=None, lo_open=False, allow_inf=False, note=""):
    """argparse `type=` for a number in a range; errors name the range (argparse adds the flag), or
    `note` where the range depends on other flags."""
    rng = []
    if lo is not None:
        rng.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        rng.append(f"<= {hi}")
    what = ("an integer" if kind is int else "a number") + (" " + " and ".join(rng) if rng else "") + note

    def parse(text):
        try:
            v = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}") from None
        if kind is float and (math.isnan(v) or (math.isinf(v) and not allow_inf)):
            raise argparse.ArgumentTypeError(f"must be {what} (finite); got {text!r}")
        if lo is not None and (v <= lo if lo_open else v < lo) or hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}")
        return v

    parse.__name__ = what
    return parse


def _alpha_arg(text):
    """`--alpha`: a number > 0, or a path to a `.npy` file (checked once `d` is known)."""
    if text.endswith(".npy"):
        return text
    return _number(float, 0, lo_open=True)(text)


def _times(text):
    """`--save-at`: comma-separated non-negative times in increasing order."""
    try:
        t = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers >= 0, e.g. 0.1,1,10; got {text!r}") from None
    if any(not math.isfinite(x) or x < 0 for x in t) or any(b <= a for a, b in zip(t, t[1:])):
        raise argparse.ArgumentTypeError(f"must be finite times >= 0 in increasing order, each once; got {text!r}")
    return t


def _problem_arguments(parser):
    g = parser.add_argument_group("problem (either --data or the generated default problem)")
    g.add_argument("--data", metavar="FILE.npz",
                   help="data file with keys X (n, d), y (n,), optional X_test, y_test, beta_star")
    g.add_argument("--n", type=_number(int, 1), help="training samples (default 40)")
    g.add_argument("--d", type=_number(int, 1), help="dimension (default 200)")
    g.add_argument("--s", type=_number(int, 1), help="sparsity of beta_star, 1 <= s <= d (default 5)")
    g.add_argument("--noise", type=_number(float, 0), help="label noise standard deviation >= 0 (default 0)")
    g.add_argument("--seed", type=_number(int, 0), help="random seed >= 0 (default 0)")
    g.add_argument("--n-test", dest="n_test", type=_number(int, 0), help="test samples >= 0 (default 1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")


def add_arguments(parser, cmd):
    """Flags of `dln simulate` (`cmd == "simulate"`) or `dln solve`."""
    _problem_arguments(parser)
    if cmd == "solve":
        parser.add_argument("--alpha", type=_alpha_arg, metavar="A|FILE.npy",
                            help="initialization scale > 0, or a .npy file of d positive numbers (objective q)")
        parser.add_argument("--objective", choices=("q", "l1", "l2"), default="q",
                            help="q: argmin Q_alpha (default); l1 / l2: minimum-norm interpolator")
        return
    a = parser.add_argument_group("algorithm")
    a.add_argument("--algorithm", choices=list(_alg.ALGORITHMS), default="gd", help="update direction (default gd)")
    a.add_argument("--alpha", type=_alpha_arg, metavar="A|FILE.npy",
                   help="initialization scale > 0 (default 1), or a .npy file of d positive numbers")
    for name, decl in _declared().items():
        where = "; ".join(f"{alg}: {h.range}" for alg, h in decl)
        a.add_argument(decl[0][1].cli, dest=f"hyper_{name}", metavar=name.upper(),
                       type=_number(int if decl[0][1].kind == "int" else float, note=f" ({where})"),
                       help=f"{decl[0][1].help} ({where})")
    for name, decl in _declared(bools=True).items():
        a.add_argument(decl[0][1].cli, dest=f"hyper_{name}", action="store_const", const=True,
                       help=f"{decl[0][1].help} ({', '.join(alg for alg, _ in decl)})")
    a.add_argument("--sample-seed", dest="sample_seed", type=_number(int, 0), default=0,
                   help="seed >= 0 of the run's random stream (mini-batches, label noise; default 0)")
    i = parser.add_argument_group("integrator")
    mode = i.add_mutually_exclusive_group()
    mode.add_argument("--flow", dest="steps", action="store_false", help="continuous-time flow (default)")
    mode.add_argument("--steps", dest="steps", action="store_true", help="discrete steps theta -= eta D(theta)")
    parser.set_defaults(steps=False)
    i.add_argument("--eta", type=_number(float, 0, lo_open=True), help="step size > 0 (with --steps; default 0.01)")
    i.add_argument("--max-steps", dest="max_steps", type=_number(int, 1),
                   help="cap on steps (accepted steps for --flow); default 100000 (steps), 200000 (flow)")
    i.add_argument("--max-time", dest="max_time", type=_number(float, 0, lo_open=True, allow_inf=True),
                   help="time cap > 0 (default inf; with --steps it caps the steps at max_time / eta)")
    i.add_argument("--loss-tol", dest="loss_tol", type=_number(float, 0),
                   help=f"stop once train loss <= loss_tol * L(theta0) (default {LOSS_TOL.default:g}); 0 runs to the cap")
    i.add_argument("--absolute-loss-tol", dest="absolute", action="store_true",
                   help="--loss-tol is an absolute loss, not relative to the initial loss")
    i.add_argument("--save-at", dest="save_at", type=_times, metavar="T1,T2,...",
                   help="also record beta and the losses at these times (t = eta k for --steps)")
    m = parser.add_argument_group("model")
    m.add_argument("--param", choices=("squares", "product", "depth"), default="squares",
                   help="beta = u*u - v*v (default), u*v, or u**D - v**D")
    m.add_argument("--depth", type=_number(int, 2, MAX_DEPTH), help=f"2 <= D <= {MAX_DEPTH} for --param depth (default 3)")
    m.add_argument("--u0", type=_number(float), help="initial u, broadcast to every coordinate (default alpha)")
    m.add_argument("--v0", type=_number(float),
                   help="initial v, broadcast to every coordinate (default alpha; 0 for --param product)")


def _warn(cmd, text):
    sys.stderr.write(f"dln {cmd}: warning: {' '.join(text.split())}\n")


def _load(args, cmd):
    """The problem: from `--data`, or generated from `--n --d --s --noise --seed`."""
    given = [k for k in GENERATED if getattr(args, k) is not None]
    if args.data is not None:
        if given:
            _warn(cmd, f"{', '.join('--' + k.replace('_', '-') for k in given)} "
                       f"{'has' if len(given) == 1 else 'have'} no effect with --data")
        try:
            return load_problem(args.data)
        except InputError as e:
            msg = _flagify(e)
            raise InputError(msg if "`--data`" in msg else f"`--data` file {args.data!r}: {msg}") from None
    kw = {k: GENERATED[k] if getattr(args, k) is None else getattr(args, k) for k in GENERATED}
    try:
        return make_problem(**kw)
    except InputError as e:
        raise InputError(_flagify(e)) from None


def _alpha(value, d, default=1.0):
    """`--alpha` as a float, or as shape (1, d) from a `.npy` file of `d` positive numbers."""
    if value is None:
        return default
    if not isinstance(value, str):
        return value
    path = Path(value)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise InputError(f"`--alpha` must be a number > 0 or an existing .npy file; {value!r} {what}")
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise InputError(f"`--alpha` file {value!r} is not a readable .npy array of numbers: {e}") from None
    if not isinstance(a, np.ndarray):  # an .npz archive under a .npy name
        a.close()
        raise InputError(f"`--alpha` file {value!r} is an .npz archive, not one .npy array (numpy.save writes one)")
    if a.shape != (d,) or a.dtype.kind not in "biuf":
        raise InputError(f"`--alpha` file {value!r} must hold {d} numbers (one per coordinate, shape ({d},)); "
                         f"got {a.dtype} of shape {a.shape}")
    a = a.astype(float)
    if not np.all(np.isfinite(a) & (a > 0)):
        raise InputError(f"`--alpha` file {value!r} must hold finite numbers > 0; "
                         f"got {a[~(np.isfinite(a) & (a > 0))][0]!r}")
    return a[None, :]


def _algorithm(args, cmd):
    """The algorithm object from the registry, with the hyperparameters it declares (parsed and checked by
    its declarations); flags it does not declare draw a warning."""
    cls = _alg.ALGORITHMS[args.algorithm]
    takes = {h.name: h for h in cls.hyper}
    given = {name: getattr(args, f"hyper_{name}") for name in {**_declared(), **_declared(bools=True)}}
    given = {name: v for name, v in given.items() if v is not None}
    kw = {name: v for name, v in given.items() if name in takes}
    # a wrapper applies when one of its own flags is given that the algorithm does not take itself
    wraps = [(w, {h.name: given[h.name] for h in w.hyper if h.name in given and h.name not in takes}) for w in WRAPPERS]
    wraps = [(w, wkw) for w, wkw in wraps if wkw]
    used = set(kw).union(*(wkw for _, wkw in wraps))
    unused = [h.cli for name, decl in {**_declared(), **_declared(bools=True)}.items() if name in given and
              name not in used for _, h in decl[:1]]
    for name, decl in _declared().items():  # an unused value that no algorithm accepts is still an error
        if name in given and name not in used and not any(h.accepts(given[name]) for _, h in decl):
            raise InputError(f"`{decl[0][1].cli}` must satisfy {'; '.join(f'{a}: {h.range}' for a, h in decl)}; "
                             f"got {given[name]!r}")
    if unused:
        flags = ", ".join(h.cli for h in cls.hyper if h.kind not in ("algorithm", "bool")) or "no hyperparameter"
        _warn(cmd, f"{', '.join(unused)} {'has' if len(unused) == 1 else 'have'} no effect on "
                   f"--algorithm {args.algorithm} (it takes {flags})")
    try:
        algorithm = cls(**kw)
        for w, wkw in wraps:
            algorithm = w(algorithm, **wkw)
        return algorithm
    except InputError as e:
        raise InputError(f"{_flagify(e, cls)} (--algorithm {args.algorithm})") from None


def _model(args, cmd):
    if args.param == "depth":
        return Depth(3 if args.depth is None else args.depth)
    if args.depth is not None:
        _warn(cmd, f"--depth has no effect with --param {args.param} (use --param depth)")
    return Product() if args.param == "product" else Depth(2)


def _theta0(args, model, d, cmd):
    """`(u0, v0)` broadcast to shape (2, d), or None for the model's own `init(alpha)`."""
    if args.u0 is None and args.v0 is None:
        return None
    alpha = _alpha(args.alpha, d)
    if args.u0 is not None and args.v0 is not None and args.alpha is not None:
        _warn(cmd, "--alpha has no effect when both --u0 and --v0 are given")
    theta0 = model.init(np.atleast_1d(np.asarray(alpha, float)), d)[0]
    if args.u0 is not None:
        theta0[0] = args.u0
    if args.v0 is not None:
        theta0[1] = args.v0
    if model.positive and not np.all(theta0 > 0):
        raise InputError(f"`--u0/--v0` must be > 0 for --param {args.param} (u, v stay positive); "
                         f"got u0 = {theta0[0, 0]:g}, v0 = {theta0[1, 0]:g}")
    return theta0


def _integrator(args, cmd):
    try:
        return _integrator_of(args, cmd)
    except InputError as e:
        raise InputError(_flagify(e)) from None


def _integrator_of(args, cmd):
    if args.steps:
        kw = {} if args.max_time is None else {"max_time": args.max_time}  # steps while t = eta k <= max_time
        return Steps(0.01 if args.eta is None else args.eta, 100_000 if args.max_steps is None else args.max_steps, **kw)
    if args.eta is not None:
        _warn(cmd, "--eta has no effect with --flow (use --steps --eta H)")
    kw = {}
    if args.max_time is not None:
        kw["max_time"] = args.max_time
    if args.max_steps is not None:
        kw["max_steps"] = args.max_steps
    return Flow(**kw)


def _clean(a):
    """JSON-ready: arrays to lists, non-finite numbers to null."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype.kind in "fc":
        obj = a.astype(object)
        obj[~np.isfinite(a)] = None
        return obj.tolist()
    return a.tolist()


def _scalar(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _print_json(out):
    """Strict JSON (no NaN or Infinity): non-finite numbers are already null, and `status` says why."""
    print(json.dumps(out, allow_nan=False))


def _simulate(args, cmd):
    problem = _load(args, cmd)
    d = problem.d
    if problem.P != 1:
        raise InputError(f"`--data` must hold one problem (X of shape (n, d)); got {problem.P} stacked")
    algorithm = _algorithm(args, cmd)
    integrator = _integrator(args, cmd)
    if not algorithm.flow and isinstance(integrator, Flow):
        culprit = _alg.ALGORITHMS[args.algorithm]
        if culprit.flow:  # a wrapper around it: name the flag that added it
            culprit = type(algorithm)
            flags = "/".join(h.cli for h in culprit.hyper if h.kind != "algorithm")
            raise InputError(f"`{flags}` ({culprit.__name__}) is defined for discrete steps only; use --steps "
                             "--eta H with eta > 0")
        raise InputError(f"`--algorithm` {args.algorithm} is defined for discrete steps only (its direction "
                         "jumps); use --steps --eta H with eta > 0")
    model = _model(args, cmd)
    theta0 = _theta0(args, model, d, cmd)
    alpha = _alpha(args.alpha, d)
    if args.absolute and args.loss_tol is None:
        _warn(cmd, f"--absolute-loss-tol applies to the default --loss-tol {LOSS_TOL.default:g}")
    try:
        res = run(problem, algorithm, integrator, model=model, alpha=alpha, theta0=theta0,
                  save_at=args.save_at or (), loss_tol=LOSS_TOL.default if args.loss_tol is None else args.loss_tol,
                  relative=not args.absolute, sample_seed=args.sample_seed)
    except InputError as e:
        raise InputError(_flagify(e, type(algorithm), own_first=False)) from None
    status = str(res.status[0])
    if status == "diverged" and isinstance(integrator, Steps):
        msg = _flagify(res.message[0], type(algorithm), own_first=False).replace("try eta <", "the stable range is 0 < `--eta` <")
        raise InputError(f"the run diverged: {msg}")
    f = res.final
    out = {
        "beta": _clean(f.beta[0]),
        "alpha_eff": None if f.alpha_eff is None else _clean(f.alpha_eff[0]),
        "train_loss": _scalar(f.train_loss[0]),
        "test_loss": None if f.test_loss is None else _scalar(f.test_loss[0]),
        "grad_norm": _scalar(f.grad_norm[0]),
        "status": status,
        "message": _flagify(res.message[0], type(algorithm), own_first=False),
        "t_final": _scalar(res.t_final[0]),
        "steps": int(res.steps[0]),
        "grad_evals": int(res.grad_evals[0]),
        "algorithm": args.algorithm,
        "hyperparameters": _alg.hyperparameters(algorithm),
        "integrator": "steps" if isinstance(integrator, Steps) else "flow",
        "eta": float(integrator.eta) if isinstance(integrator, Steps) else None,
        "param": args.param,
        "depth": model.depth if isinstance(model, Depth) else None,
        "alpha": _clean(alpha[0]) if isinstance(alpha, np.ndarray) else float(alpha),
        "loss_tol": LOSS_TOL.default if args.loss_tol is None else args.loss_tol,
        "relative_loss_tol": not args.absolute,
        "n": problem.n, "d": d, "sample_seed": args.sample_seed,
    }
    if args.save_at:
        s = res.saved
        out["saved"] = {"t": _clean(res.t[0]), "beta": _clean(s.beta[0]), "train_loss": _clean(s.train_loss[0]),
                        "test_loss": None if s.test_loss is None else _clean(s.test_loss[0]),
                        "alpha_eff": None if s.alpha_eff is None else _clean(s.alpha_eff[0])}
    if status not in ("converged", "max_time", "max_steps"):
        _warn(cmd, f"run ended with status {status}: {out['message']}")
    if args.json:
        _print_json(out)
        return 0
    beta = f.beta[0]
    top = np.argsort(-np.abs(beta))[:5]
    print(f"{args.algorithm} {out['integrator']} on n = {problem.n}, d = {d} ({args.param}): {status} "
          f"at t = {res.t_final[0]:.6g} after {out['steps']} steps, {out['grad_evals']} gradient evaluations")
    print(f"  train loss {f.train_loss[0]:.3e}" + ("" if f.test_loss is None else f", test loss {f.test_loss[0]:.3e}")
          + f", ||beta||_1 = {np.abs(beta).sum():.6g}")
    print("  largest |beta_i|: " + ", ".join(f"beta[{i}] = {beta[i]:.6g}" for i in top))
    if f.alpha_eff is not None:
        ae = f.alpha_eff[0]
        print(f"  alpha_eff(t_final): min {np.nanmin(ae):.4g}, median {np.nanmedian(ae):.4g}, max {np.nanmax(ae):.4g}")
    print(f"  {out['message']}")
    return 0


def _solve(args, cmd):
    """`dln solve`: exit 0 with an interpolator, 1 with `status` "no_interpolator" (`X beta = y` has no
    solution; `beta` is then the least-squares solution of minimum norm for `--objective l2`, else
    null) or "not_converged" (the dual Newton solve stopped before its tolerance)."""
    problem = _load(args, cmd)
    if problem.P != 1:
        raise InputError(f"`--data` must hold one problem (X of shape (n, d)); got {problem.P} stacked")
    out = {"objective": args.objective}
    if args.objective == "q":
        if args.alpha is None:
            raise InputError("`--alpha` is required for --objective q (a number > 0 or a .npy file of d positive numbers)")
        alpha = _alpha(args.alpha, problem.d)
        out["alpha"] = _clean(alpha[0]) if isinstance(alpha, np.ndarray) else float(alpha)
    elif args.alpha is not None:
        _warn(cmd, f"--alpha has no effect with --objective {args.objective}")
    # whether X beta = y has a solution: the pseudo-inverse's residual is round-off (~ cond(X) eps |y|)
    # when it does, and of the size of y's component outside the range of X when it does not (relative
    # to |y|: the data may have any scale in DATA_RANGE)
    ls = min_l2(problem)[0]
    ls_res = float(np.abs(problem.residual(ls[None])[0]).max())
    ytol = 1e-8 * float(np.abs(problem.y).max())
    if ls_res > ytol:
        status = "no_interpolator"
        beta = ls if args.objective == "l2" else None
        message = (f"X beta = y has no solution (n = {problem.n}, d = {problem.d}, rank {np.linalg.matrix_rank(problem.X[0])}): "
                   f"the least-squares residual is max |X beta - y| = {ls_res:.3g}"
                   + ("; beta is the least-squares solution of minimum norm" if beta is not None else ""))
    elif args.objective == "q":
        try:
            sol = solve_dual(problem, alpha)
        except InputError as e:
            raise InputError(_flagify(e)) from None
        beta = sol.beta[0]
        status = "interpolator" if sol.converged[0] else "not_converged"
        out.update(converged=bool(sol.converged[0]), iterations=int(sol.iterations[0]),
                   Q_alpha=_scalar(Q_alpha(beta[None], alpha)[0]), nu=_clean(sol.nu[0]))
        message = ("argmin Q_alpha s.t. X beta = y (dual Newton solve)" if sol.converged[0] else
                   f"the dual Newton solve stopped after {int(sol.iterations[0])} iterations above its tolerance "
                   "1e-12 max(1, max|y|): beta is its last iterate")
    else:
        beta = ls if args.objective == "l2" else min_l1(problem)[0]
        status, message = "interpolator", f"minimum-{args.objective} interpolator"
    res = None if beta is None else float(np.abs(problem.residual(beta[None])[0]).max())
    out = {"status": status, "message": message, "beta": None if beta is None else _clean(beta),
           "residual": ls_res if beta is None else _scalar(res), **out,
           "l1_norm": None if beta is None else _scalar(np.abs(beta).sum()),
           "l2_norm": None if beta is None else _scalar(np.sqrt(beta @ beta)),
           "test_loss": None if problem.X_test is None or beta is None else _scalar(problem.loss(beta[None], test=True)[0]),
           "n": problem.n, "d": problem.d}
    code = 0 if status == "interpolator" else 1
    if args.json:
        _print_json(out)
        return code
    if beta is None:
        print(f"{args.objective}: no interpolator: {message}")
        return code
    top = np.argsort(-np.abs(beta))[:5]
    print(f"{args.objective} on n = {problem.n}, d = {problem.d}: {status}: max |X beta - y| = {res:.3e}, "
          f"||beta||_1 = {out['l1_norm']:.6g}, ||beta||_2 = {out['l2_norm']:.6g}")
    print("  largest |beta_i|: " + ", ".join(f"beta[{i}] = {beta[i]:.6g}" for i in top))
    print(f"  {message}")
    return code


def main(args, cmd):
    """Run `dln simulate` or `dln solve` on parsed `args`; returns the exit code."""
    return (_solve if cmd == "solve" else _simulate)(args, cmd)
