"""`dln bench`: `dln` side by side with what a researcher would otherwise use, in one run.

Every figure is a ratio of things timed in the same process (CPU seconds of the
process, so that other jobs on a shared machine do not count), interleaved
repeat by repeat (each repeat runs every contender once, in turn), each ratio the
median over repeats of the ratio within a repeat (paired: a change of the machine's
speed between repeats moves both and cancels), times the median over repeats,
with the BLAS pinned to one thread (stated in the output),
and only after the contenders were checked to compute the same thing:

1. **Steps**: discrete GD and F-GR runs, `B` runs of `K` and `3K` steps (per step: the
   difference, so start-up and final work are reported apart), at
   (B, n, d) = (256, 40, 200) and (1024, 100, 1000): one `dln.run` against a
   per-run NumPy loop (as the public notebooks write it), a JAX `jit` +
   `lax.scan` step and a numba-fused step (both hand-written for this one
   model, every elementwise operation fused), and the floor (the matrix
   products a step cannot avoid). All give the same `beta` after `K` steps to
   round-off (checked). JAX or numba missing: the row says `skipped`.
2. **Flows**: `dln.Flow()` (whatever it is at run time) against scipy
   `solve_ivp` LSODA and BDF in log coordinates `(log u, log v)` with the exact
   dense Jacobian, `rtol = 1e-8`, all stopped at train loss `1e-14 L(0)`:
   single GF and GR(0.1) runs at several `alpha`, and a batch of GF runs over
   `alpha` in logspace(-6, -1) (one `dln` batch against a loop of LSODA runs).
   Each run lands within 1e-6 of `dln.solve_dual`'s limit (checked). Each single
   run also reports its path's accuracy (`beta` at 8 times against Radau at
   rtol 1e-12) and is timed a second time at equal path accuracy: dln at the
   loosest rtol on a fixed ladder whose path error is at most LSODA's (the two
   `rtol` bound different errors: at 1e-8, dln's paths are 3-60x closer).
3. **Dual solve**: `dln.solve_dual` against SLSQP on `min Q_alpha s.t. X beta = y`.
4. **Memory**: runs of growing length that save a few states: the peak is flat.

`--quick` shrinks the sizes (about a minute); `--size smoke` is what the test
suite runs, only to check that the comparisons compare like with like.
"""
import ctypes
import importlib.util
import json
import os
import platform
import sys
import time
import tracemalloc
from dataclasses import dataclass

# JAX reads its thread settings when imported (only here, and only as a peer): one thread, like the BLAS
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import dln  # noqa: E402
from dln._io import atomic_path, writable_file  # noqa: E402

try:
    import numba
except ImportError:  # a peer only: its rows are then reported as skipped
    numba = None

#: distance to `solve_dual`'s limit every flow must reach before it is timed (and steps' agreement)
LIMIT_TOL = 1e-6
#: scipy's flows: relative tolerance (the issue's script) and absolute one in log coordinates
#: (an absolute error in `log u` is a relative one in `u`)
RTOL, ATOL = 1e-8, 1e-10
#: dln's tolerances tried for the timing at LSODA's path accuracy (`_matched`)
MATCH_RTOLS = (1e-9, 2e-9, 5e-9, 1e-8, 2e-8, 5e-8, 1e-7, 2e-7, 5e-7, 1e-6)
#: step benchmark: step size, F-GR hyperparameters, the GR strength of the flow rows
ETA = 0.002
FGR_HYPER = dict(gamma=0.05, eps=0.1)
GR_GAMMA = 0.1


@dataclass(frozen=True)
class Size:
    """Problem sizes and repeats of one benchmark size."""

    shapes: tuple        # item 1: (B, n, d, K) per shape, K steps
    loop_runs: int       # item 1: runs timed in the per-run loop
    repeats: int         # item 1: timing repeats (median)
    flow_nd: tuple       # item 2: (n, d) of the flow problem
    gf_alphas: tuple     # item 2: single GF runs
    gr_alphas: tuple     # item 2: single GR(0.1) runs
    batch: int           # item 2: GF runs in the batch, alpha in logspace(-6, -1)
    flow_repeats: int    # item 2: timing repeats
    slsqp_d: tuple       # item 3: dimensions
    slsqp_cap: float     # item 3: seconds after which SLSQP is stopped
    mem_steps: tuple     # item 4: run lengths


SIZES = {
    "full": Size(((256, 40, 200, 200), (1024, 100, 1000, 20)), 8, 7, (40, 200), (0.1, 1e-3, 1e-6),
                 (0.1, 1e-3, 1e-6), 32, 11, (100, 1000), 60.0, (10_000, 100_000, 1_000_000)),
    "quick": Size(((256, 40, 200, 40), (1024, 100, 1000, 2)), 2, 3, (40, 200), (0.1, 1e-3), (0.1,), 8, 1,
                  (100,), 10.0, (1_000, 3_000)),
    "smoke": Size(((12, 6, 15, 10),), 2, 1, (8, 20), (0.5,), (0.5,), 3, 1, (20,), 5.0, (100, 300)),
}


def pin_blas(threads=1):
    """Pin every loaded OpenBLAS (NumPy's and SciPy's) to `threads` threads through its own
    `*_set_num_threads` (what threadpoolctl does; numpy is imported before the CLI reaches here, so
    the environment variables would come too late). Returns `{library: threads now}`."""
    import scipy.linalg  # noqa: F401 - loads SciPy's OpenBLAS, so that it is pinned too
    out = {}
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return out
    for path in libs:
        lib = ctypes.CDLL(path)
        for pre in ("scipy_openblas", "openblas"):
            for suf in ("64_", ""):
                set_, get = (getattr(lib, f"{pre}_{w}_num_threads{suf}", None) for w in ("set", "get"))
                if set_ is not None and get is not None:
                    set_(ctypes.c_int(threads))
                    out[os.path.basename(path)] = int(get())
                    break
            else:
                continue
            break
    return out


def _installed(name):
    return importlib.util.find_spec(name) is not None


#: the clock of every timing: CPU seconds of this process (one BLAS and one XLA thread), which on a
#: shared machine does not count the time other jobs hold the cores, as wall time would
clock = time.process_time


def _race(fns, repeats):
    """Time callables side by side: each repeat runs every one once, in turn.

    Returns `{name: [seconds per repeat]}` and `{name: last return value}`.
    """
    times = {k: [] for k in fns}
    out = {}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = clock()
            out[k] = f()
            times[k].append(clock() - t0)
    return times, out


def _median(times):
    """`{name: median}` of `{name: [value per repeat]}`."""
    return {k: float(np.median(v)) for k, v in times.items()}


def _timing(times):
    """The JSON record of raced times `{name: [seconds per repeat]}`: their medians (`seconds`) and
    every repeat (`seconds_per_repeat`, from which each ratio is paired)."""
    return dict(seconds=_median(times), seconds_per_repeat=times)


def paired(a, b):
    """The median over repeats of `a_i / b_i`, the two timed in the same repeat `i`. The machine's speed
    drifts (one GR flow's CPU time ranged from 17.8 to 33.7 ms over 21 repeats, in slow and fast phases
    that moved its peer alike): the ratio within a repeat cancels that, the ratio of two medians does
    not (1.43 there, against 1.21 paired)."""
    return float(np.median(np.asarray(a) / np.asarray(b)))


def spread(a, b):
    """The quartiles `[q25, q75]` of the paired ratios `a_i / b_i` (`paired` is their median): how far one
    repeat's ratio may fall from it on this machine, which a goal's margin should exceed."""
    return np.percentile(np.asarray(a) / np.asarray(b), [25, 75]).tolist()


def _rel(a, b):
    return np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)


# --------------------------------------------------------------------- 1. steps
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


if numba is not None:
    _njit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @_njit
    def _nb_residual(r, y, loss):
        """`r <- r - y`, `loss = ||r||^2 / (2n)` per row."""
        B, n = r.shape
        for b in range(B):
            s = 0.0
            for j in range(n):
                x = r[b, j] - y[j]
                r[b, j] = x
                s += x * x
            loss[b] = 0.5 * s / n

    @_njit
    def _nb_shifted_beta(theta, g, eps, out):
        """`beta` at `theta + eps J^T g` (`u (1 + 2 eps g)`, `v (1 - 2 eps g)`), without storing theta."""
        B, _, d = theta.shape
        for b in range(B):
            for i in range(d):
                gi = 2.0 * g[b, i]
                u = eps * (gi * theta[b, 0, i]) + theta[b, 0, i]
                v = eps * (-gi * theta[b, 1, i]) + theta[b, 1, i]
                out[b, i] = u * u - v * v

    @_njit
    def _nb_step(theta, g, gs, eta, eps, c, beta):
        """`theta <- theta - eta D` in place and the new `beta`, with `D = J^T g` (`c = 0`) or the F-GR
        direction `G + c (J_s^T g_s - G)` (`J_s` at the shifted point): one pass."""
        B, _, d = theta.shape
        for b in range(B):
            for i in range(d):
                u, v = theta[b, 0, i], theta[b, 1, i]
                gi = 2.0 * g[b, i]
                Gu, Gv = gi * u, -gi * v
                if c != 0.0:
                    gsi = 2.0 * gs[b, i]
                    us, vs = eps * Gu + u, eps * Gv + v
                    Gu = (gsi * us - Gu) * c + Gu
                    Gv = (-gsi * vs - Gv) * c + Gv
                u -= eta * Gu
                v -= eta * Gv
                theta[b, 0, i], theta[b, 1, i] = u, v
                beta[b, i] = u * u - v * v


def numba_steps(X, y, alphas, eta, steps, fgr=None):
    """A batched run with every elementwise operation fused by hand (numba): per gradient, two
    matrix products, a pass over the residual (with the loss) and one pass over theta. Returns
    the final `beta` (B, d)."""
    n, d = X.shape
    XT, Xn = np.ascontiguousarray(X.T), X / n
    theta = np.empty((alphas.size, 2, d))
    theta[:] = alphas[:, None, None]
    beta = theta[:, 0] * theta[:, 0] - theta[:, 1] * theta[:, 1]
    r, loss, g = np.empty((alphas.size, n)), np.empty(alphas.size), np.empty((alphas.size, d))
    gamma, eps = (fgr["gamma"], fgr["eps"]) if fgr else (0.0, 1.0)
    gs, bs, ls = np.empty_like(g), np.empty_like(beta), np.empty_like(loss)
    for _ in range(steps):
        np.matmul(beta, XT, out=r)
        _nb_residual(r, y, loss)
        np.matmul(r, Xn, out=g)
        if fgr:
            _nb_shifted_beta(theta, g, eps, bs)
            np.matmul(bs, XT, out=r)
            _nb_residual(r, y, ls)  # the loss at the shifted point is not needed
            np.matmul(r, Xn, out=gs)
        _nb_step(theta, g, gs, eta, eps, gamma / eps if fgr else 0.0, beta)
    return beta


def jax_steps(X, y, alphas, eta, steps, fgr=None):
    """`jax.jit` of a `lax.scan` over the steps (float64), the loss kept every step; XLA fuses the
    elementwise work. Returns `(run, theta0)`: `run(theta0)` gives the final `beta`."""
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    n, d = X.shape
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def grad(th):
        beta = th[:, 0] ** 2 - th[:, 1] ** 2
        r = beta @ Xj.T - yj
        g = r @ Xj / n
        return jnp.stack([2 * g * th[:, 0], -2 * g * th[:, 1]], axis=1), 0.5 * jnp.sum(r * r, axis=1) / n

    def step(th, _):
        G, L = grad(th)
        if fgr:
            P, _ = grad(fgr["eps"] * G + th)
            G = (P - G) * (fgr["gamma"] / fgr["eps"]) + G
        return th - eta * G, L

    @jax.jit
    def run(th):
        th, _ = jax.lax.scan(step, th, None, length=steps)
        return th[:, 0] ** 2 - th[:, 1] ** 2

    th0 = jnp.broadcast_to(jnp.asarray(alphas)[:, None, None], (alphas.size, 2, d))
    return run, th0


def _race_steps(fns, K, repeats):
    """Per-step seconds of callables `f(steps)`, side by side: each repeat runs every one for `K` and
    for `3 K` steps, in turn, and takes the difference over `2 K` steps (what a longer run adds per
    step, without the fixed start-up and final work). Returns `{name: [seconds per step, per repeat]}`,
    `{name: f(K)}`, and `{name: median fixed seconds}` (the time of `K` steps less `K` per-step times)."""
    per, fixed, out = {k: [] for k in fns}, {k: [] for k in fns}, {}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = clock()
            out[k] = f(K)
            t1 = clock()
            f(3 * K)
            t2 = clock()
            per[k].append((t2 - t1 - (t1 - t0)) / (2 * K))
            fixed[k].append((t1 - t0) - K * per[k][-1])
    return per, out, _median(fixed)


def bench_steps(size):
    """Item 1: per run-step times of dln and its peers, at each shape, for GD and F-GR."""
    rows = []
    for B, n, d, K in size.shapes:
        p = dln.make_problem(n=n, d=d, seed=0, n_test=0)
        X, y = p.X[0], p.y[0]
        alphas = np.logspace(-2, -0.5, B)
        sub = np.linspace(0, B - 1, size.loop_runs).round().astype(int)
        XT = np.ascontiguousarray(X.T)
        rng = np.random.default_rng(1)
        bf, rf = rng.standard_normal((B, d)), rng.standard_normal((B, n))
        Xb, gb = np.empty((B, n)), np.empty((B, d))
        for name, alg, fgr in (("GD", dln.GD(), None), ("F-GR", dln.FGR(**FGR_HYPER), FGR_HYPER)):
            grads = 2 if fgr else 1

            def floor(k):
                for _ in range(k * grads):
                    np.matmul(bf, XT, out=Xb)
                    np.matmul(rf, X, out=gb)

            loop = (lambda a, k: loop_fgr(X, y, a, ETA, k, **fgr)) if fgr else (lambda a, k: loop_gd(X, y, a, ETA, k))
            dln.run(p, alg, dln.Steps(ETA, max_steps=1), alpha=alphas[:2], loss_tol=0)  # load the kernels
            fns = {"dln": lambda k: dln.run(p, alg, dln.Steps(ETA, max_steps=k), alpha=alphas, loss_tol=0).final.beta,
                   "loop": lambda k: np.array([loop(a, k) for a in alphas[sub]])}
            skipped = {}
            if numba is not None:
                numba_steps(X, y, alphas[:2], ETA, 1, fgr)  # compile (or load the cache) before timing
                fns["numba"] = lambda k: numba_steps(X, y, alphas, ETA, k, fgr)
            else:
                skipped["numba"] = "skipped: numba not installed"
            if _installed("jax"):
                runs = {k: jax_steps(X, y, alphas, ETA, k, fgr) for k in (K, 3 * K)}
                for run, th0 in runs.values():
                    run(th0).block_until_ready()  # compile before timing
                fns["jax"] = lambda k: np.asarray(runs[k][0](runs[k][1]).block_until_ready())
            else:
                skipped["jax"] = "skipped: jax not installed"
            fns["floor"] = floor
            t, out, fixed = _race_steps(fns, K, size.repeats)
            ref = out["dln"]
            scale = np.abs(ref).max()
            diff = {k: float(np.abs(out[k] - (ref[sub] if k == "loop" else ref)).max() / scale)
                    for k in ("loop", "numba", "jax") if k in out}
            each = {k: np.asarray(t[k]) / (sub.size if k == "loop" else B) * 1e6 for k in t}  # per run-step
            per = _median(each)
            fused = [each[k] for k in ("jax", "numba") if k in each]
            rows.append(dict(B=B, n=n, d=d, steps=K, algorithm=name, us_per_run_step=per, skipped=skipped,
                             dln_fixed_s=fixed["dln"], beta_max_rel_diff=diff,
                             us_per_repeat={k: v.tolist() for k, v in each.items()},
                             dln_vs_best_fused=paired(each["dln"], np.min(fused, axis=0)) if fused else None,
                             dln_vs_best_fused_quartiles=spread(each["dln"], np.min(fused, axis=0)) if fused else None,
                             dln_vs_floor=paired(each["dln"], each["floor"]), loop_vs_dln=paired(each["loop"], each["dln"])))
    return rows


# --------------------------------------------------------------------- 2. flows
class LogFlow:
    """The GR flow `theta' = -grad [L + (gamma/2) ||grad_theta L||^2]` (gradient flow at `gamma = 0`)
    in log coordinates `a = log u, b = log v`, for scipy's `solve_ivp`, with its exact Jacobian.

    With `s = u^2`, `t = v^2`, `beta = s - t`, `g = M beta - c` (`M = X^T X / n`, `c = X^T y / n`),
    the objective is `F = L + 2 gamma sum_i (s_i + t_i) g_i^2`, and `a' = -2 dF/ds`, `b' = -2 dF/dt`:
    `dF/ds = g + 2 gamma g^2 + 4 gamma M (w g)`, `dF/dt = -g + 2 gamma g^2 - 4 gamma M (w g)`, `w = s + t`.
    """

    def __init__(self, problem, gamma=0.0):
        self.X, self.y, self.n = problem.X[0], problem.y[0], problem.n
        self.M = self.X.T @ self.X / self.n
        self.gamma = gamma
        self.nfev = 0

    @staticmethod
    def beta(z):
        """`beta = u^2 - v^2` of states `z = (log u, log v)` stacked on the first axis, (2d, ...) -> (d, ...)."""
        d = z.shape[0] // 2
        return np.exp(2 * z[:d]) - np.exp(2 * z[d:])

    def parts(self, z):
        d = z.size // 2
        s, t = np.exp(2 * z[:d]), np.exp(2 * z[d:])
        r = self.X @ (s - t) - self.y
        return s, t, r, self.X.T @ r / self.n

    def rhs(self, _, z):
        # gradient evaluations as dln counts them (and the issue's table did): a GF right-hand side is one
        # (`M beta`), a GR one two (`M beta` and `M ((s + t) g)`, two products of the size of a gradient)
        self.nfev += 2 if self.gamma else 1
        s, t, _, g = self.parts(z)
        gam = self.gamma
        q = 2 * gam * g * g
        m = 4 * gam * (self.X.T @ (self.X @ ((s + t) * g))) / self.n if gam else 0.0
        return -2 * np.concatenate([g + q + m, -g + q - m])

    def jac(self, _, z):
        s, t, _, g = self.parts(z)
        M, gam = self.M, self.gamma
        A = M + 4 * gam * g[:, None] * M                   # d(g + 2 gamma g^2)/d beta
        Am = M - 4 * gam * g[:, None] * M                  # d(g - 2 gamma g^2)/d beta
        if gam:
            MWM = (M * (s + t)) @ M
            Bp, Bm = 4 * gam * (M * g + MWM), 4 * gam * (M * g - MWM)  # d(4 gamma M (w g))/d(s, t)
        else:
            Bp = Bm = 0.0
        Fss, Fst = A + Bp, -A + Bm
        Fts, Ftt = -Am - Bp, Am - Bm
        # a = log u: d/da = 2 s d/ds; and the flow is -2 dF
        return -4 * np.block([[Fss * s, Fst * t], [Fts * s, Ftt * t]])

    def loss(self, z):
        r = self.parts(z)[2]
        return 0.5 * r @ r / self.n

    def beta_at(self, alpha, method, times, rtol=RTOL, atol=ATOL):
        """`beta` at `times` (S,) of the run from `u = v = alpha` (dense output), shape (S, d)."""
        d = self.X.shape[1]
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(self.rhs, (0, times[-1]), np.full(2 * d, np.log(alpha)), method=method, jac=self.jac,
                            rtol=rtol, atol=atol, t_eval=times)
        return self.beta(sol.y).T

    def solve(self, alpha, method, loss_tol=1e-14):
        """Run from `u = v = alpha` until `L <= loss_tol L(0)`. Returns `(beta, alpha_eff, grad evals, njev, ok)`."""
        d = self.X.shape[1]
        z0 = np.full(2 * d, np.log(alpha))
        stop = loss_tol * self.loss(z0)

        def event(_, z):
            return np.log(self.loss(z)) - np.log(stop)
        event.terminal, event.direction = True, -1
        self.nfev = 0
        # a trial step the solver then rejects may overflow exp (seen with BDF at alpha = 1e-6)
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(self.rhs, (0, 1e12), z0, method=method, jac=self.jac, rtol=RTOL, atol=ATOL,
                            events=event)
        z = sol.y[:, -1]
        return self.beta(z), np.exp((z[:d] + z[d:]) / 2), self.nfev, int(sol.njev), sol.status == 1


def _path_times(T):
    """The 8 log-spaced times from `T/1000` to `T` (dln's stop time) at which paths are compared."""
    return T * np.logspace(-3, 0, 8)


def _path_error(beta, ref):
    """The largest over the times of `max|beta - beta_ref| / max|beta_ref|`, `beta`, `ref` (S, d)."""
    return float((np.abs(beta - ref).max(axis=1) / np.abs(ref).max(axis=1)).max())


def _dln_path(p, alg, alpha, times, rtol):
    """dln's `beta` at `times` (S, d) at relative tolerance `rtol`."""
    flow = dln.Flow(rtol=rtol, max_time=times[-1])
    return dln.run(p, alg, flow, alpha=alpha, save_at=times, loss_tol=0).saved.beta[0]


def _trajectory_errors(p, alg, peer, alpha, T):
    """Accuracy along the run, untimed: `beta` at `_path_times(T)` by each solver at its timed
    tolerances, against Radau at rtol 1e-12 (same log coordinates), as `_path_error`. The limit
    accuracy the timing compares at says nothing of the path: a solver may reach the limit with its
    early, sparse-learning phase off. Returns the errors and the reference."""
    times = _path_times(T)
    ref = peer.beta_at(alpha, "Radau", times, rtol=1e-12, atol=1e-14)
    path = {"dln": _dln_path(p, alg, alpha, times, dln.Flow().rtol),
            "LSODA": peer.beta_at(alpha, "LSODA", times), "BDF": peer.beta_at(alpha, "BDF", times)}
    return {k: _path_error(v, ref) for k, v in path.items()}, ref


def _matched(p, alg, peer, alpha, T, ref, target, repeats):
    """dln timed at LSODA's accuracy rather than at its tolerance: the loosest `rtol` on `MATCH_RTOLS`
    whose path error (as `_trajectory_errors`) is at most `target` (LSODA's at rtol 1e-8), then
    timed against LSODA as `_flow_row` does; None where no rung is that accurate. The two
    solvers' `rtol` mean different things (dln's bounds the error in `beta` and in `log u, log v`
    per step; LSODA's is relative to `|log u|`), so equal tolerances are not equal accuracy."""
    times, best = _path_times(T), None
    for rtol in MATCH_RTOLS:  # tightest first: the error grows with rtol
        err = _path_error(_dln_path(p, alg, alpha, times, rtol), ref)
        if err > target:
            break
        best = (rtol, err)
    if best is None:
        return None
    rtol, err = best
    t, out = _race({"dln": lambda: dln.run(p, alg, dln.Flow(rtol=rtol), alpha=alpha),
                    "LSODA": lambda: peer.solve(alpha, "LSODA")}, repeats)
    res = out["dln"]
    exact = dln.solve_dual(p, res.final.alpha_eff if alg.gamma else alpha).beta[0]
    return dict(rtol=rtol, path_err=err, **_timing(t), grad_evals=int(res.grad_evals[0]),
                limit_err=float(_rel(res.final.beta[0], exact)),
                converged=str(res.status[0]) == "converged", time_vs_lsoda=paired(t["dln"], t["LSODA"]),
                time_vs_lsoda_quartiles=spread(t["dln"], t["LSODA"]))


def _flow_row(p, label, gamma, alpha, repeats):
    """One single run by dln, LSODA and BDF: accuracy against `solve_dual`, then interleaved timing."""
    alg = dln.GR(gamma=gamma) if gamma else dln.GD()
    peer = LogFlow(p, gamma)
    fns = {"dln": lambda: dln.run(p, alg, dln.Flow(), alpha=alpha),
           "LSODA": lambda: peer.solve(alpha, "LSODA"), "BDF": lambda: peer.solve(alpha, "BDF")}
    t, out = _race(fns, repeats)
    res = out["dln"]
    beta = {"dln": res.final.beta[0], "LSODA": out["LSODA"][0], "BDF": out["BDF"][0]}
    aeff = {"dln": res.final.alpha_eff[0], "LSODA": out["LSODA"][1], "BDF": out["BDF"][1]}
    # GF's limit is argmin Q_alpha; GR's is argmin Q at each solver's own alpha_eff(inf) (docs/theory.md)
    exact = {k: dln.solve_dual(p, alpha if not gamma else aeff[k][None]).beta[0] for k in beta}
    err = {k: float(_rel(beta[k], exact[k])) for k in beta}
    evals = {"dln": int(res.grad_evals[0]), "LSODA": out["LSODA"][2], "BDF": out["BDF"][2]}
    ok = {"dln": str(res.status[0]) == "converged", "LSODA": out["LSODA"][4], "BDF": out["BDF"][4]}
    vs = float(_rel(beta["dln"], beta["LSODA"]))
    T = float(res.t_final[0])
    traj, ref = _trajectory_errors(p, alg, peer, alpha, T)
    return dict(run=label, alpha=alpha, **_timing(t), grad_evals=evals, jac_evals={k: out[k][3] for k in ("LSODA", "BDF")},
                err=err, trajectory_err=traj, dln_vs_lsoda=vs, stopped=ok,
                equal_accuracy=all(ok.values()) and max(err.values()) <= LIMIT_TOL and vs <= 2 * LIMIT_TOL,
                time_vs_lsoda=paired(t["dln"], t["LSODA"]), time_vs_lsoda_quartiles=spread(t["dln"], t["LSODA"]),
                time_vs_bdf=paired(t["dln"], t["BDF"]),
                evals_vs_lsoda=evals["dln"] / evals["LSODA"],
                matched=_matched(p, alg, peer, alpha, T, ref, traj["LSODA"], repeats))


def bench_flows(size):
    """Item 2: single flows and a batch, dln against scipy's LSODA and BDF."""
    n, d = size.flow_nd
    p = dln.make_problem(n=n, d=d, seed=0, n_test=0)
    rows = [_flow_row(p, "GF", 0.0, a, size.flow_repeats) for a in size.gf_alphas]
    rows += [_flow_row(p, f"GR({GR_GAMMA:g})", GR_GAMMA, a, size.flow_repeats) for a in size.gr_alphas]
    alphas = np.logspace(-6, -1, size.batch)
    peer = LogFlow(p)
    fns = {"dln": lambda: dln.run(p, dln.GD(), dln.Flow(), alpha=alphas),
           "LSODA loop": lambda: [peer.solve(a, "LSODA") for a in alphas]}
    t, out = _race(fns, size.flow_repeats)
    exact = dln.solve_dual(p, alphas).beta
    err_d = _rel(out["dln"].final.beta, exact)
    err_l = _rel(np.array([o[0] for o in out["LSODA loop"]]), exact)
    ok = (out["dln"].status == "converged").all() and all(o[4] for o in out["LSODA loop"])
    batch = dict(runs=size.batch, alphas=[float(alphas[0]), float(alphas[-1])], **_timing(t),
                 max_err={"dln": float(err_d.max()), "LSODA": float(err_l.max())},
                 equal_accuracy=bool(ok and max(err_d.max(), err_l.max()) <= LIMIT_TOL),
                 speedup=paired(t["LSODA loop"], t["dln"]))
    return dict(rows=rows, batch=batch)


# --------------------------------------------------------------------- 3. dual
class _Capped(Exception):
    pass


def slsqp(problem, alpha, cap):
    """`min Q_alpha(beta) s.t. X beta = y` by `scipy.optimize.minimize(method='SLSQP')`, from
    `beta = 0`, with the exact gradient `arcsinh(beta / (2 alpha^2))`; stopped after `cap` seconds.

    Returns `(beta, seconds, capped, iterations)`.
    """
    X, y = problem.X[0], problem.y[0]
    a2 = alpha * alpha
    t0 = clock()
    last = [np.zeros(problem.d)]

    def fun(b):
        if clock() - t0 > cap:
            raise _Capped
        last[0] = b
        return float(dln.Q_alpha(b, alpha))

    cons = {"type": "eq", "fun": lambda b: X @ b - y, "jac": lambda b: X}
    try:
        r = minimize(fun, np.zeros(problem.d), jac=lambda b: np.arcsinh(b / (2 * a2)), constraints=[cons],
                     method="SLSQP", options=dict(maxiter=10_000, ftol=1e-12))
        return r.x, clock() - t0, False, int(r.nit)
    except _Capped:
        return last[0], clock() - t0, True, -1


def bench_dual(size, alpha=0.1):
    """Item 3: the dual Newton solve against SLSQP at each `d`."""
    rows = []
    for d in size.slsqp_d:
        p = dln.make_problem(n=size.flow_nd[0], d=d, seed=0, n_test=0)
        reps = max(size.repeats, 3)
        t, out = _race({"dual": lambda: dln.solve_dual(p, alpha)}, reps)
        t, sol = _median(t), out["dual"]
        b, sec, capped, nit = slsqp(p, alpha, size.slsqp_cap)
        rows.append(dict(d=d, dual_s=t["dual"], dual_residual=float(sol.residual[0]),
                         slsqp_s=sec, slsqp_capped=capped, slsqp_iterations=nit,
                         slsqp_err=float(_rel(b, sol.beta[0])), speedup=sec / t["dual"]))
    return rows


# --------------------------------------------------------------------- 4. memory
def _peak_mb(f):
    """Peak traced memory (MB) of `f()` above what was allocated before it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    f()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 1e6


def bench_memory(size, B=4, saves=10):
    """Item 4: peak memory of runs of growing length that save `saves` states each."""
    p = dln.make_problem(n=size.flow_nd[0], d=size.flow_nd[1], seed=0, n_test=0)
    rows = []
    for S in size.mem_steps:
        save_at = np.linspace(0, S * ETA, saves)
        t0 = time.perf_counter()
        peak = _peak_mb(lambda: dln.run(p, dln.GD(), dln.Steps(ETA, max_steps=S), alpha=np.full(B, 0.1),
                                        save_at=save_at, loss_tol=0))
        rows.append(dict(steps=S, peak_mb=peak, seconds=time.perf_counter() - t0))
    return dict(B=B, saves=saves, rows=rows, growth=rows[-1]["peak_mb"] / rows[0]["peak_mb"])


# --------------------------------------------------------------------- report
def machine(blas):
    return dict(cpu_count=os.cpu_count(), usable_cpus=len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                load_avg=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                blas_threads=blas, xla_flags=os.environ.get("XLA_FLAGS"),
                versions={k: _version(k) for k in ("numpy", "scipy", "numba", "jax")},
                python=platform.python_version(), platform=platform.platform())


def _version(name):
    if not _installed(name):
        return None
    from importlib.metadata import version
    return version(name)


def collect(size, log=lambda s: None):
    """Run every measurement at `size` (a `Size`); returns the JSON-ready results."""
    out = dict(machine=machine(pin_blas(1)))
    for key, fn in (("steps", bench_steps), ("flows", bench_flows), ("dual", bench_dual),
                    ("memory", bench_memory)):
        log(f"[bench] {key} ...")
        t0 = time.perf_counter()
        out[key] = fn(size)
        log(f"[bench] {key} done in {time.perf_counter() - t0:.1f} s")
    out["machine"]["load_avg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    st, fl = out["steps"], out["flows"]
    fused = [r["dln_vs_best_fused"] for r in st]
    out["goals"] = {
        "steps <= 1.2x the faster of JAX and numba": None if None in fused else max(fused) <= 1.2,
        "single flows: dln time <= LSODA's": all(r["time_vs_lsoda"] <= 1 for r in fl["rows"]),
        "single flows at LSODA's path accuracy: dln time <= LSODA's": all(
            r["matched"] is not None and r["matched"]["time_vs_lsoda"] <= 1 for r in fl["rows"]),
        "single flows: dln grad evals <= LSODA's": all(r["evals_vs_lsoda"] <= 1 for r in fl["rows"]),
        "flow batch >= 10x a loop of LSODA runs": fl["batch"]["speedup"] >= 10,
        "every comparison at equal accuracy": all(r["equal_accuracy"] for r in fl["rows"])
        and fl["batch"]["equal_accuracy"],
    }
    return out


def _g(x):
    return "-" if x is None else f"{x:.3g}"


def _q(q):
    """Quartiles `[q25, q75]` as `[a-b]`."""
    return "[-]" if q is None else f"[{q[0]:.3g}-{q[1]:.3g}]"


def table(r):
    """The results as text: one block per item, then the goals."""
    m = r["machine"]
    L = [f"clock: CPU seconds of this process; machine: {m['cpu_count']} cores ({m['usable_cpus']} usable), load {m['load_avg']} at start, "
         f"{m.get('load_avg_end')} at end; BLAS threads pinned {m['blas_threads'] or 'NOT pinned'}; "
         f"XLA {m['xla_flags']}; versions {m['versions']}"]
    L.append("ratios: the median over repeats of the ratio within a repeat (paired), [quartiles] where a goal reads it; "
             "times: medians over repeats")
    L.append("1. steps, us per run-step (median of what 3K steps add over K); dln / faster of JAX and numba; "
             "dln / floor; loop / dln; max rel |beta - beta_dln| after K steps; dln's fixed cost per run() call")
    for x in r["steps"]:
        t = x["us_per_run_step"]
        peers = " ".join(f"{k} {_g(t[k])}" if k in t else f"{k} {x['skipped'][k]}"
                         for k in ("dln", "jax", "numba", "loop", "floor"))
        diff = " ".join(f"{k} {v:.1e}" for k, v in x["beta_max_rel_diff"].items())
        L.append(f"   {x['algorithm']:<5} B={x['B']} n={x['n']} d={x['d']} K={x['steps']}: {peers}; "
                 f"{_g(x['dln_vs_best_fused'])}x {_q(x['dln_vs_best_fused_quartiles'])}; {_g(x['dln_vs_floor'])}x; {_g(x['loop_vs_dln'])}x; {diff}; "
                 f"{_g(x['dln_fixed_s'] * 1e3)} ms")
    L.append("2. flows to loss 1e-14 L(0): seconds (median) and grad evals; rel. error to solve_dual's limit; "
             "largest rel. error of beta at 8 log-spaced times against Radau at rtol 1e-12 (untimed runs)")
    for x in r["flows"]["rows"]:
        s, e, err = x["seconds"], x["grad_evals"], x["err"]
        L.append(f"   {x['run']:<7} alpha={x['alpha']:<6g} dln {_g(s['dln'])} s {e['dln']} | LSODA {_g(s['LSODA'])} s "
                 f"{e['LSODA']} | BDF {_g(s['BDF'])} s {e['BDF']} | dln/LSODA time {_g(x['time_vs_lsoda'])}x "
                 f"{_q(x['time_vs_lsoda_quartiles'])} evals "
                 f"{_g(x['evals_vs_lsoda'])}x | err dln {err['dln']:.1e} LSODA {err['LSODA']:.1e} BDF {err['BDF']:.1e}"
                 f"{'' if x['equal_accuracy'] else ' (ACCURACY NOT EQUAL)'} | path err " +
                 " ".join(f"{k} {v:.1e}" for k, v in x["trajectory_err"].items()))
        m = x["matched"]
        L.append("           at LSODA's path accuracy: " + ("no dln rtol on the ladder is as accurate" if m is None else
                 f"dln at rtol {m['rtol']:g} (path err {m['path_err']:.1e}, limit err {m['limit_err']:.1e}"
                 f"{'' if m['converged'] else ', NOT CONVERGED'}) {_g(m['seconds']['dln'])} s {m['grad_evals']} evals"
                 f" | LSODA {_g(m['seconds']['LSODA'])} s | dln/LSODA time {_g(m['time_vs_lsoda'])}x "
                 f"{_q(m['time_vs_lsoda_quartiles'])}"))
    b = r["flows"]["batch"]
    L.append(f"   batch of {b['runs']} GF flows, alpha {b['alphas'][0]:g}..{b['alphas'][1]:g}: dln {_g(b['seconds']['dln'])} s,"
             f" loop of LSODA {_g(b['seconds']['LSODA loop'])} s: {_g(b['speedup'])}x; max err dln "
             f"{b['max_err']['dln']:.1e} LSODA {b['max_err']['LSODA']:.1e}"
             f"{'' if b['equal_accuracy'] else ' (ACCURACY NOT EQUAL)'}")
    L.append("3. solve_dual vs SLSQP")
    for x in r["dual"]:
        L.append(f"   d={x['d']}: dual {_g(x['dual_s'])} s, SLSQP {_g(x['slsqp_s'])} s"
                 f"{' (capped)' if x['slsqp_capped'] else ''}: {_g(x['speedup'])}x; SLSQP rel err {_g(x['slsqp_err'])}")
    mm = r["memory"]
    L.append(f"4. memory, B={mm['B']}, {mm['saves']} saves: " + ", ".join(
        f"{x['steps']} steps {_g(x['peak_mb'])} MB" for x in mm["rows"]) + f"; growth {_g(mm['growth'])}")
    L.append("goals: " + "; ".join(f"{k}: {'met' if v else ('n/a' if v is None else 'NOT met')}"
                                   for k, v in r["goals"].items()))
    return "\n".join(L)


def write_json(path, data):
    """Write `data` to `path` atomically (a temporary file in the same directory, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=float)


def add_arguments(parser, cmd):
    parser.add_argument("--quick", action="store_true", help="reduced sizes (about a minute)")
    parser.add_argument("--size", choices=list(SIZES), default=None,
                        help="explicit size (full, quick, or smoke: what the test suite runs)")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")


def main(args, cmd):
    name = args.size or ("quick" if args.quick else "full")
    if args.json is not None:
        writable_file(args.json, "--json")  # before the benchmark: it takes minutes
    res = collect(SIZES[name], log=lambda s: print(s, file=sys.stderr, flush=True))
    res["size"] = name
    print(table(res))
    if args.json is not None:
        write_json(args.json, res)
    return 0
