"""`dln bench`: speed and memory of the simulator, each figure measured side by side.

Five measurements, each a ratio of two things timed in the same process,
interleaved repeat by repeat, and summarised by the median over repeats:

1. batched steps against a per-run loop written the way the public notebooks
   write it (one setting at a time, `u, v` vectors, a Python loop over steps),
   for the same GD and F-GR runs, checking that both give the same `beta`;
2. the batched step against its floor, the two matrix products a step cannot
   avoid (`(B, d) @ (d, n)` and back), with a profile of what else it spends;
3. the cost of reaching `beta(inf)` within 1e-6 relative: the adaptive flow
   against small-step GD (whose limit is O(eta) from the flow's, so the step
   that matches is extrapolated from an O(eta) fit), the same for F-GR, and
   the dual implicit-bias solve against SLSQP on `min Q_alpha s.t. X beta = y`;
4. time and peak memory (tracemalloc) as `d` and the batch `B` grow, with the
   fitted log-log exponent;
5. peak memory of long runs that save observables at a few chosen times: flat
   in the number of steps.

`--quick` shrinks every size (under a minute); `--size smoke` is what the
test suite runs, only to check that the benchmark still works.
"""
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

import dln
from dln._io import atomic_path

#: relative distance to the exact limit that item 3 asks for
LIMIT_TOL = 1e-6


@dataclass(frozen=True)
class Size:
    """Problem sizes and repeats of one benchmark size."""

    batch: int          # item 1-2: runs in the batch (settings of alpha)
    steps: int          # item 1-2: steps per run
    loop_runs: int      # item 1: runs timed in the per-run loop (spread over the alphas)
    repeats: int        # timing repeats (median)
    gd_etas: tuple      # item 3: GD step sizes measured for the O(eta) fit
    slsqp_d: tuple      # item 3: dimensions for dual vs SLSQP
    slsqp_cap: float    # item 3: seconds after which SLSQP is stopped and reported as capped
    scale_d: tuple      # item 4: dimensions
    scale_B: tuple      # item 4: batch sizes
    scale_steps: int    # item 4: steps per timing
    mem_steps: tuple    # item 5: run lengths
    limit_alphas: tuple  # item 3: initialization scales of the limit runs


SIZES = {
    "full": Size(256, 2000, 32, 3, (0.04, 0.02, 0.01), (100, 1000, 5000), 60.0,
                 (100, 300, 1000, 3000, 10000), (1, 4, 16, 64, 256, 1024, 4096), 100,
                 (10_000, 100_000, 1_000_000), (0.1, 0.01)),
    "quick": Size(256, 100, 8, 3, (0.04, 0.02, 0.01), (100, 1000), 10.0,
                  (100, 300, 1000, 3000), (1, 16, 256, 1024), 20, (1_000, 10_000, 30_000), (0.1,)),
    "smoke": Size(32, 20, 2, 1, (0.01, 0.005), (50,), 2.0, (50, 100, 200), (1, 4, 8), 5, (100, 300), (1.0,)),
}

#: the problem of items 1-2 (the issue's n = 40, d = 200) and the alphas swept there
N, D = 40, 200
ETA = 0.01
FGR_HYPER = dict(gamma=0.05, eps=0.1)


def _alphas(B):
    """`B` initialization scales, log-spaced over [1e-2, 1] (stable for `eta = 0.01`)."""
    return np.logspace(-2, 0, B)


def _race(fns, repeats):
    """Time callables side by side: each repeat runs every one once, in turn.

    Returns `{name: median seconds}` and `{name: last return value}`.
    """
    times = {k: [] for k in fns}
    out = {}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            out[k] = f()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}, out


# --------------------------------------------------------------------- 1. per-run loop
def loop_gd(X, y, alpha, eta, steps):
    """GD on `beta = u*u - v*v` the way the public notebooks write it: one setting, `u, v`
    vectors, a Python loop over steps, the loss computed every step."""
    n, d = X.shape
    u = alpha * np.ones(d)
    v = alpha * np.ones(d)
    losses = []
    for _ in range(steps):
        r = X @ (u * u - v * v) - y
        losses.append(r @ r / (2 * n))
        g = X.T @ r / n
        u, v = u - eta * 2 * u * g, v + eta * 2 * v * g
    return u * u - v * v


def loop_fgr(X, y, alpha, eta, steps, gamma, eps):
    """F-GR, `D = grad L + (gamma/eps) [grad L(theta + eps grad L) - grad L]`, written the same way."""
    n, d = X.shape
    u = alpha * np.ones(d)
    v = alpha * np.ones(d)

    def grad(u, v):
        r = X @ (u * u - v * v) - y
        g = X.T @ r / n
        return 2 * u * g, -2 * v * g, r @ r / (2 * n)

    losses = []
    for _ in range(steps):
        gu, gv, loss = grad(u, v)
        losses.append(loss)
        pu, pv, _ = grad(u + eps * gu, v + eps * gv)
        u = u - eta * (gu + gamma / eps * (pu - gu))
        v = v - eta * (gv + gamma / eps * (pv - gv))
    return u * u - v * v


def bench_loop(size):
    """Item 1: one batched `dln.run` against the per-run loop, per run-step."""
    p = dln.make_problem(n=N, d=D, seed=0, n_test=0)
    X, y = p.X[0], p.y[0]
    B, S = size.batch, size.steps
    alphas = _alphas(B)
    sub = np.linspace(0, B - 1, size.loop_runs).round().astype(int)
    rows = []
    for name, alg, loop in (("GD", dln.GD(), lambda a: loop_gd(X, y, a, ETA, S)),
                            ("F-GR", dln.FGR(**FGR_HYPER), lambda a: loop_fgr(X, y, a, ETA, S, **FGR_HYPER))):
        fns = {"batched": lambda: dln.run(p, alg, dln.Steps(ETA, max_steps=S), alpha=alphas, loss_tol=0),
               "loop": lambda: np.array([loop(a) for a in alphas[sub]])}
        t, out = _race(fns, size.repeats)
        res, beta_loop = out["batched"], out["loop"]
        assert (res.steps == S).all(), res.status
        beta = res.final.beta[sub]
        diff = float(np.max(np.abs(beta - beta_loop)) / np.max(np.abs(beta_loop)))
        per_b = t["batched"] / (B * S)
        per_l = t["loop"] / (sub.size * S)
        rows.append(dict(algorithm=name, batched_us=per_b * 1e6, loop_us=per_l * 1e6,
                         speedup=per_l / per_b, beta_max_rel_diff=diff))
    return rows


# --------------------------------------------------------------------- 2. floor
def _profile_steps(p, alphas, S):
    """cProfile of a batched GD run: the functions that take the most own time."""
    prof = cProfile.Profile()
    prof.enable()
    dln.run(p, dln.GD(), dln.Steps(ETA, max_steps=S), alpha=alphas, loss_tol=0)
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in st.stats.values())
    top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:8]
    return [dict(function=f"{os.path.basename(k[0])}:{k[1]}({k[2]})", own_s=v[2], share=v[2] / total)
            for k, v in top]


def numpy_gd(X, y, alphas, eta, steps):
    """The batched GD step written by hand for this one model, every array preallocated and
    every operation in place (`out=`): what a NumPy step costs without any framework,
    the reference that separates `dln`'s overhead from NumPy's own elementwise passes."""
    n, d = X.shape
    B = alphas.size
    XT = np.ascontiguousarray(X.T)
    theta = np.empty((B, 2, d))
    theta[:] = alphas[:, None, None]
    beta, tmp, r, g = np.empty((B, d)), np.empty((B, d)), np.empty((B, n)), np.empty((B, d))
    D, step = np.empty((B, 2, d)), np.empty((B, 2, d))
    jac = np.array([[2.0], [-2.0]])
    for _ in range(steps):
        u, v = theta[:, 0], theta[:, 1]
        np.multiply(u, u, out=beta)
        np.multiply(v, v, out=tmp)
        beta -= tmp
        np.matmul(beta, XT, out=r)
        r -= y
        loss = np.einsum("bn,bn->b", r, r) / (2 * n)
        np.matmul(r, X, out=g)
        g /= n
        np.multiply(theta, g[:, None, :], out=D)
        D *= jac
        ok = np.isfinite(loss) & np.isfinite(D).all(axis=(1, 2))
        np.multiply(D, eta, out=step)
        theta -= step
    return theta, ok


def bench_floor(size):
    """Item 2: time per run-step of the batched update against the two matrix products of a step."""
    p = dln.make_problem(n=N, d=D, seed=0, n_test=0)
    X = p.X[0]
    XT = np.ascontiguousarray(X.T)
    B, S = 256 if size.batch >= 256 else size.batch, size.steps
    alphas = _alphas(B)
    rng = np.random.default_rng(1)
    beta, r = rng.standard_normal((B, D)), rng.standard_normal((B, N))
    Xb, g = np.empty((B, N)), np.empty((B, D))
    k = max(S, 50)

    def floor():
        for _ in range(k):
            np.matmul(beta, XT, out=Xb)
            np.matmul(r, X, out=g)

    fns = {"GD": lambda: dln.run(p, dln.GD(), dln.Steps(ETA, max_steps=S), alpha=alphas, loss_tol=0),
           "F-GR": lambda: dln.run(p, dln.FGR(**FGR_HYPER), dln.Steps(ETA, max_steps=S), alpha=alphas,
                                   loss_tol=0),
           "numpy": lambda: numpy_gd(X, p.y[0], alphas, ETA, S),
           "floor": floor}
    t, out = _race(fns, size.repeats)
    same = float(np.abs(out["GD"].theta - out["numpy"][0]).max() / np.abs(out["numpy"][0]).max())
    fl = t["floor"] / (k * B)
    gd, fgr, hand = t["GD"] / (S * B), t["F-GR"] / (S * B), t["numpy"] / (S * B)
    return dict(B=B, floor_us=fl * 1e6, gd_us=gd * 1e6, fgr_us=fgr * 1e6, numpy_us=hand * 1e6,
                gd_ratio=gd / fl, fgr_ratio=fgr / (2 * fl), numpy_ratio=hand / fl, gd_vs_numpy=gd / hand,
                numpy_theta_max_rel_diff=same, profile=_profile_steps(p, alphas, S))


# --------------------------------------------------------------------- 3. reaching the limit
def _rel(a, b):
    return np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)


def _steps_to_limit(p, alg, alpha, etas, target):
    """Small-step runs at `etas` (one batch), their distance to `target`, and the step size
    that reaches `LIMIT_TOL` from the fit `log err = c + k log eta` (slope `k` ~ 1).

    Returns a dict: measured `eta`, `err`, `grad_evals`, `seconds`; the fit's slope;
    and the extrapolated `eta_match`, `grad_evals_match`, `seconds_match` (the work of a
    run scales as `1/eta`, scaled from the smallest measured step).
    """
    etas = np.asarray(etas, float)
    t0 = time.perf_counter()
    res = dln.run(p, alg, dln.Steps(etas, max_steps=10**7), alpha=alpha)
    sec = time.perf_counter() - t0
    if not (res.status == "converged").all():
        raise RuntimeError(f"small-step runs did not converge: {res.status}")
    err = _rel(res.final.beta, target)
    slope, c = np.polyfit(np.log(etas), np.log(err), 1)
    ok = err <= LIMIT_TOL
    if ok.any():
        i = int(np.argmax(np.where(ok, etas, -np.inf)))
        eta_m, evals_m, extrapolated = float(etas[i]), float(res.grad_evals[i]), False
    else:
        eta_m = float(np.exp((np.log(LIMIT_TOL) - c) / slope))
        i = int(np.argmin(etas))
        evals_m, extrapolated = float(res.grad_evals[i] * etas[i] / eta_m), True
    per_eval = sec / res.grad_evals.sum()  # the batch shares its steps: a fair per-eval cost
    return dict(eta=etas.tolist(), err=err.tolist(), grad_evals=res.grad_evals.tolist(),
                seconds=sec, slope=float(slope), eta_match=eta_m, grad_evals_match=evals_m,
                seconds_match=evals_m * per_eval, extrapolated=extrapolated)


def bench_limit(size):
    """Item 3a: gradient evaluations and seconds to reach `beta(inf)` within `LIMIT_TOL`.

    Gradient flow: the exact limit is `argmin Q_alpha` (`dln.solve_dual`). F-GR: the flow's
    limit is `argmin Q_{alpha_eff(inf)}` with the run's own `alpha_eff(inf)`
    (THEORY.md); small-step F-GR is measured against the F-GR flow's `beta(inf)`.
    One row per `alpha` in `size.limit_alphas`.
    """
    return [_limit_at(size, alpha) for alpha in size.limit_alphas]


def _limit_at(size, alpha):
    p = dln.make_problem(n=N, d=D, seed=0, n_test=0)
    out = {"alpha": alpha}
    for name, alg in (("GF", dln.GD()), ("F-GR", dln.FGR(**FGR_HYPER))):
        t0 = time.perf_counter()
        res = dln.run(p, alg, dln.Flow(), alpha=alpha)
        sec = time.perf_counter() - t0
        exact = dln.solve_dual(p, alpha if name == "GF" else res.final.alpha_eff).beta[0]
        flow = dict(status=str(res.status[0]), grad_evals=int(res.grad_evals[0]), seconds=sec,
                    err=float(_rel(res.final.beta[0], exact)))
        target = exact if name == "GF" else res.final.beta[0]
        steps = _steps_to_limit(p, alg, alpha, size.gd_etas, target)
        out[name] = dict(flow=flow, steps=steps, eval_ratio=steps["grad_evals_match"] / flow["grad_evals"],
                         time_ratio=steps["seconds_match"] / sec)
    return out


class _Capped(Exception):
    pass


def slsqp(problem, alpha, cap):
    """`min Q_alpha(beta) s.t. X beta = y` by `scipy.optimize.minimize(method='SLSQP')`, from
    `beta = 0`, with the exact gradient `arcsinh(beta / (2 alpha^2))`; stopped after `cap` seconds.

    Returns `(beta, seconds, capped, iterations)`.
    """
    X, y = problem.X[0], problem.y[0]
    a2 = alpha * alpha
    t0 = time.perf_counter()
    last = [np.zeros(problem.d)]

    def fun(b):
        if time.perf_counter() - t0 > cap:
            raise _Capped
        last[0] = b
        return float(dln.Q_alpha(b, alpha))

    cons = {"type": "eq", "fun": lambda b: X @ b - y, "jac": lambda b: X}
    try:
        r = minimize(fun, np.zeros(problem.d), jac=lambda b: np.arcsinh(b / (2 * a2)), constraints=[cons],
                     method="SLSQP", options=dict(maxiter=10_000, ftol=1e-12))
        return r.x, time.perf_counter() - t0, False, int(r.nit)
    except _Capped:
        return last[0], time.perf_counter() - t0, True, -1


def bench_dual(size, alpha=0.1):
    """Item 3b: the dual Newton solve against SLSQP at each `d`."""
    rows = []
    for d in size.slsqp_d:
        p = dln.make_problem(n=N, d=d, seed=0, n_test=0)
        reps = max(size.repeats, 3)
        t, out = _race({"dual": lambda: dln.solve_dual(p, alpha)}, reps)
        sol = out["dual"]
        b, sec, capped, nit = slsqp(p, alpha, size.slsqp_cap)
        rows.append(dict(d=d, dual_s=t["dual"], dual_residual=float(sol.residual[0]),
                         slsqp_s=sec, slsqp_capped=capped, slsqp_iterations=nit,
                         slsqp_err=float(_rel(b, sol.beta[0])), speedup=sec / t["dual"]))
    return rows


# --------------------------------------------------------------------- 4-5. scaling and memory
def _peak_mb(f):
    """Peak traced memory (MB) of `f()` above what was allocated before it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    f()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 1e6


def _fit(x, y):
    """Slope of `log y` on `log x` over the upper half of the range (past fixed per-step
    overheads), or over all points where the upper half has fewer than three."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    k = x >= np.median(x)
    k = k if k.sum() >= 3 else np.ones_like(k)
    return float(np.polyfit(np.log(x[k]), np.log(y[k]), 1)[0])


def bench_scaling(size):
    """Item 4: seconds per step and peak memory of a batched GD run as `d` and `B` grow."""
    S = size.scale_steps
    out = {}
    for axis, values in (("d", size.scale_d), ("B", size.scale_B)):
        rows = []
        for v in values:
            d, B = (v, 16) if axis == "d" else (D, v)
            p = dln.make_problem(n=N, d=d, seed=0, n_test=0)
            alphas = np.full(B, 0.1)

            def go():
                return dln.run(p, dln.GD(), dln.Steps(1e-3, max_steps=S), alpha=alphas, loss_tol=0)

            t, _ = _race({"run": go}, size.repeats)
            rows.append(dict(value=v, step_s=t["run"] / S, peak_mb=_peak_mb(go)))
        out[axis] = dict(rows=rows, fixed=dict(B=16) if axis == "d" else dict(d=D),
                         time_exponent=_fit(values, [r["step_s"] for r in rows]),
                         memory_exponent=_fit(values, [r["peak_mb"] for r in rows]))
    return out


def bench_memory(size, B=4, saves=10):
    """Item 5: peak memory of runs of growing length that save `saves` states each."""
    p = dln.make_problem(n=N, d=D, seed=0, n_test=0)
    rows = []
    for S in size.mem_steps:
        save_at = np.linspace(0, S * ETA, saves)
        t0 = time.perf_counter()
        peak = _peak_mb(lambda: dln.run(p, dln.GD(), dln.Steps(ETA, max_steps=S), alpha=np.full(B, 0.1),
                                        save_at=save_at, loss_tol=0))
        rows.append(dict(steps=S, peak_mb=peak, seconds=time.perf_counter() - t0))
    return dict(B=B, saves=saves, rows=rows, growth=rows[-1]["peak_mb"] / rows[0]["peak_mb"])


# --------------------------------------------------------------------- report
def machine():
    return dict(cpu_count=os.cpu_count(), usable_cpus=len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                load_avg=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                blas_threads={k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                             "MKL_NUM_THREADS")},
                numpy=np.__version__, python=platform.python_version(), platform=platform.platform())


def collect(size, log=lambda s: None):
    """Run every measurement at `size` (a `Size`); returns the JSON-ready results."""
    out = dict(machine=machine())
    for key, fn in (("loop", bench_loop), ("floor", bench_floor), ("limit", bench_limit),
                    ("dual", bench_dual), ("scaling", bench_scaling), ("memory", bench_memory)):
        log(f"[bench] {key} ...")
        t0 = time.perf_counter()
        out[key] = fn(size)
        log(f"[bench] {key} done in {time.perf_counter() - t0:.1f} s")
    lp, fl, lim, du = out["loop"], out["floor"], out["limit"], out["dual"]
    d1000 = [r for r in du if r["d"] == 1000]
    out["batched_vs_loop_speedup"] = min(r["speedup"] for r in lp)
    out["batched_vs_floor_ratio"] = fl["gd_ratio"]
    out["flow_vs_gd_grad_eval_ratio"] = min(x["GF"]["eval_ratio"] for x in lim)
    out["dual_vs_slsqp_speedup_d1000"] = d1000[0]["speedup"] if d1000 else None
    out["goals"] = {
        "batched_vs_loop >= 10x": out["batched_vs_loop_speedup"] >= 10,
        "batched_vs_floor <= 1.5x": out["batched_vs_floor_ratio"] <= 1.5,
        "flow_vs_gd_grad_evals >= 100x": out["flow_vs_gd_grad_eval_ratio"] >= 100,
        "dual_vs_slsqp_d1000 >= 100x": None if not d1000 else out["dual_vs_slsqp_speedup_d1000"] >= 100,
    }
    return out


def _g(x):
    return f"{x:.3g}"


def table(r):
    """The results as text: one row per figure (item, measurement, value), then the goals."""
    L = []

    def row(item, what, value):
        L.append(f"{item:<6}{what:<62}{value:>14}")

    m = r["machine"]
    L.append(f"machine: {m['cpu_count']} cores ({m['usable_cpus']} usable), load {m['load_avg']}, "
             f"BLAS threads env {m['blas_threads']}, numpy {m['numpy']}")
    row("item", "measurement", "value")
    for x in r["loop"]:
        a = x["algorithm"]
        row(1, f"{a} us per run-step: batched / loop", f"{_g(x['batched_us'])} / {_g(x['loop_us'])}")
        row(1, f"{a} speedup batched vs loop (goal >= 10)", _g(x["speedup"]))
        row(1, f"{a} max |beta_batched - beta_loop| / max |beta|", _g(x["beta_max_rel_diff"]))
    f = r["floor"]
    row(2, f"floor (2 matmuls) us per run-step, B = {f['B']}", _g(f["floor_us"]))
    row(2, "GD step / floor (goal <= 1.5)", _g(f["gd_ratio"]))
    row(2, "F-GR step / (2 x floor) (two gradients per step)", _g(f["fgr_ratio"]))
    row(2, "hand-written in-place NumPy GD step / floor", _g(f["numpy_ratio"]))
    row(2, "dln GD step / hand-written NumPy step (framework overhead)", _g(f["gd_vs_numpy"]))
    for x in f["profile"][:4]:
        row(2, "  profile: " + x["function"][:48], format(x["share"], ".0%"))
    for lim in r["limit"]:
        for name in ("GF", "F-GR"):
            x = lim[name]
            fl, st = x["flow"], x["steps"]
            lab = f"{name} alpha={lim['alpha']:g}"
            row(3, f"{lab} flow: grad evals, s, rel err ({fl['status']})",
                f"{fl['grad_evals']} {_g(fl['seconds'])} {_g(fl['err'])}")
            row(3, f"{lab} steps: err/eta slope; eta for 1e-6" + (" (extrapolated)" if st["extrapolated"] else ""),
                f"{_g(st['slope'])} {_g(st['eta_match'])}")
            row(3, f"{lab} steps: grad evals, s at that eta",
                f"{_g(st['grad_evals_match'])} {_g(st['seconds_match'])}")
            row(3, f"{lab} grad-eval ratio steps / flow" + (" (goal >= 100)" if name == "GF" else ""),
                _g(x["eval_ratio"]))
            row(3, f"{lab} time ratio steps / flow", _g(x["time_ratio"]))
    for x in r["dual"]:
        cap = x["slsqp_capped"]
        row(3, f"d = {x['d']}: dual s / SLSQP s" + (" (SLSQP capped)" if cap else ""),
            f"{_g(x['dual_s'])} / {_g(x['slsqp_s'])}")
        row(3, f"d = {x['d']}: speedup" + (" (lower bound)" if cap else "")
            + (" (goal >= 100)" if x["d"] == 1000 else "") + "; SLSQP rel err",
            f"{_g(x['speedup'])} {_g(x['slsqp_err'])}")
    for axis, s in r["scaling"].items():
        fixed = ", ".join(f"{k} = {v}" for k, v in s["fixed"].items())
        for x in s["rows"]:
            row(4, f"{axis} = {x['value']} ({fixed}): ms per step, peak MB",
                f"{_g(x['step_s'] * 1e3)} {_g(x['peak_mb'])}")
        row(4, f"exponent in {axis}: time, memory (upper half fit)",
            f"{_g(s['time_exponent'])} {_g(s['memory_exponent'])}")
    mm = r["memory"]
    for x in mm["rows"]:
        row(5, f"{x['steps']} steps, B = {mm['B']}, {mm['saves']} saves: peak MB", _g(x["peak_mb"]))
    row(5, "peak growth, longest / shortest run", _g(mm["growth"]))
    load, cores = (m["load_avg"] or [0])[0], m["usable_cpus"] or 1
    if load > cores and not any(m["blas_threads"].values()):
        L.append(f"note: load average {load:.1f} exceeds the {cores} usable cores and BLAS threads are not "
                 "pinned: multi-threaded OpenBLAS spin-waits on oversubscribed cores (a 10x slower matrix "
                 "product was measured so); rerun with OPENBLAS_NUM_THREADS=1 for stable figures")
    L.append("goals: " + "; ".join(f"{k}: {'met' if v else ('n/a' if v is None else 'NOT met')}"
                                   for k, v in r["goals"].items()))
    return "\n".join(L)


def write_json(path, data):
    """Write `data` to `path` atomically (a temporary file in the same directory, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=float)


def add_arguments(parser, cmd):
    parser.add_argument("--quick", action="store_true", help="reduced sizes (under a minute)")
    parser.add_argument("--size", choices=list(SIZES), default=None,
                        help="explicit size (full, quick, or smoke: what the test suite runs)")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")


def main(args, cmd):
    name = args.size or ("quick" if args.quick else "full")
    if args.json is not None:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise dln.InputError(f"`--json` must be a path in an existing folder; {folder!r} does not exist")
    res = collect(SIZES[name], log=lambda s: print(s, file=sys.stderr, flush=True))
    res["size"] = name
    print(table(res))
    if args.json is not None:
        write_json(args.json, res)
    return 0
