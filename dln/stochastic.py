"""Stochastic and stateful algorithms on the one protocol: mini-batches, label noise, m-sharpness, momentum.

Each is an `Algorithm` (`dln.algorithms`); the wrappers take the algorithm
they modify as the hyperparameter `base` and leave it unchanged:

- `MiniBatch(base, batch_size)`: `base` on a mini-batch `B` of `b` rows drawn
  without replacement, reshuffled each epoch (`b` divides `n`). The base sees
  the objective restricted to the batch, `l_B = (1/(2b)) sum_{k in B} r_k^2`,
  through per-run row weights (`_Rows`), so GR's Hessian, F-GR's and SAM's
  perturbed gradients and flooding's loss are all those of `l_B`.
  `SGD(b) = MiniBatch(GD(), b)`.
- `LabelNoise(sigma, base=GD())`: `base` on the labels `y + sigma xi_k`,
  fresh `xi_k ~ N(0, I_n)` at every step (HaoChen et al. 2021).
- `MSharpness(base, m)`: m-sharpness of an F-GR-family `base` (USAM, SAM,
  F-GR, B-GR): the examples in order form `n/m` groups `G` of `m`,
  `l_G = (1/(2m)) sum_{k in G} r_k^2`, and the ascent is taken per group.
  Deterministic, so also a flow.
- `Momentum(base, momentum, nesterov=False)`: heavy-ball or Nesterov momentum.

Random draws come from `dln.random` (counter-based): run `b` draws from its
sample seed and the step only, so row `b` of a batch equals the single run with
that seed, whatever the other runs do. The seeds are part of the state, which
the driver slices when runs stop.
"""
import numpy as np

from . import _kernels
from . import random as _rng
from ._checks import InputError
from ._hyper import Hyper
from .algorithms import FGR, GD, Algorithm, per_run
from .objective import Objective, Point

#: the wrapped algorithm of a wrapper
BASE = Hyper("base", "the algorithm this one modifies", kind="algorithm", per_run=False)
BATCH_SIZE = Hyper("batch_size", "mini-batch size b, drawn without replacement and reshuffled each epoch", kind="int",
                   lo=1, divides="n", example=1)


class _Rows:
    """The training data of a batch of runs seen through per-run row weights `s` and label shifts `e`.

    `apply(w) = s (X w)`, targets `s (y + e)`, `XT(r) = X^T (s r) / n`, so that an `Objective` on it has the
    residual `s (X beta - y - e)`, the loss `sum_k s_k^2 (r_k - e_k)^2 / (2n)`, the gradient
    `J^T X^T (s^2 (r - e)) / n` and the Hessian products `J^T X^T S^2 X J w / n + ...`: those of the weighted
    loss. Weights equal to 1 change no bit.

    problem : Problem
    scale : ndarray, shape (B, n), or None (all 1)
    shift : ndarray, shape (B, n), or None (all 0)
    """

    def __init__(self, problem, scale=None, shift=None):
        self.problem, self.scale = problem, scale
        y = problem.y if shift is None else problem.y + shift
        self.y = y if scale is None else y * scale

    @property
    def n(self):
        return self.problem.n

    def apply(self, beta):
        out = self.problem.apply(beta)
        if self.scale is not None:
            out *= self.scale
        return out

    def XT(self, r):
        return self.problem.XT(r if self.scale is None else r * self.scale)


def _on(at, problem):
    """The point `at.theta` of the objective with the same model on `problem` (`beta` is shared: it does not
    depend on the data)."""
    return Point(Objective(problem, at.objective.model), at.theta, at.__dict__.get("beta"))


def batch_rows(seed, step, n, b):
    """Mask of the rows in the mini-batch of step `step`, shape (B, n).

    Epoch `e = step // (n/b)` of run `r` is the permutation `dln.random.permutation(seed[r], e)` of the rows,
    cut into `n/b` consecutive batches of `b`; step `step` takes batch `step % (n/b)`.
    """
    B = seed.shape[0]
    b = np.broadcast_to(np.asarray(b, np.int64), (B,))
    epoch, j = np.divmod(step, n // b)
    perm = _rng.permutation(seed, epoch, _rng.STREAMS["batch"], n)
    rank = np.empty_like(perm)
    np.put_along_axis(rank, perm, np.broadcast_to(np.arange(n), (B, n)), axis=1)
    lo = (j * b)[:, None]
    return (rank >= lo) & (rank < lo + b[:, None])


class _Resampled(Algorithm):
    """Base of the wrappers that run `base` on data drawn afresh at every step: `data(problem, seed, step)`
    gives the `_Rows` view of the problem that step `step` of the runs with sample seeds `seed` (B,) sees.
    The seeds are the state (with the base's), sliced by the driver when runs stop."""

    flow = False

    def __post_init__(self):
        if isinstance(self.base, MSharpness):
            raise InputError(f"`base` of {type(self).__name__} must not be MSharpness: m-sharpness groups the full "
                             "data (combine it with Momentum only)")

    def grad_evals(self):
        return self.base.grad_evals()

    def init(self, at, seed):
        return {"seed": seed, "base": self.base.init(at, seed)}

    def data(self, problem, seed, step):
        raise NotImplementedError

    def update(self, at, state, step):
        seed = state["seed"]
        D, inner = self.base.update(_on(at, self.data(at.objective.problem, seed, step)), state["base"], step)
        return D, {"seed": seed, "base": inner}


class MiniBatch(_Resampled):
    """`base` on mini-batches: its update evaluated on `l_B = (1/(2b)) sum_{k in B} r_k^2`.

    The batches of an epoch partition the rows (without replacement); each epoch
    draws a new permutation (`batch_rows`). `b = n` is the base algorithm on the
    full data, bit for bit. A mini-batch gradient counts as one gradient evaluation.
    """

    hyper = (BASE, BATCH_SIZE)

    def data(self, problem, seed, step):
        n, b = problem.n, np.broadcast_to(np.asarray(self.batch_size), seed.shape)
        return _Rows(problem, scale=np.where(batch_rows(seed, step, n, b), np.sqrt(n / b)[:, None], 0.0))


class SGD(MiniBatch):
    """Stochastic gradient descent, `D = grad l_B(theta)`: `MiniBatch(GD(), batch_size)`."""

    name = "sgd"
    hyper = (BATCH_SIZE,)
    base = GD()


class LabelNoise(_Resampled):
    """Label-noise gradient descent (HaoChen et al. 2021): `base` (default GD) on the labels
    `y + sigma xi_k`, with fresh `xi_k ~ N(0, I_n)` at every step `k`, per run:
    `D = J^T X^T (X beta - y - sigma xi_k) / n` for GD. The loss the driver reports is the clean one."""

    name = "label-noise"
    hyper = (Hyper("sigma", "standard deviation of the label noise drawn at every step", lo=0, example=0.1),
             Hyper("base", "the algorithm run on the noisy labels", kind="algorithm", per_run=False, default=GD()))

    def data(self, problem, seed, step):
        xi = _rng.normal(seed, step, _rng.STREAMS["label_noise"], problem.n)
        xi *= per_run(self.sigma, xi)
        return _Rows(problem, shift=xi)


def _group_sum(r, X):
    """`sum_{k in G} r_Gk x_k`, shape (B, G, d), for `r` (B, G, m) and `X` (P, G, m, d), P = 1 or B."""
    return np.einsum("bgm,gmd->bgd", r, X[0]) if X.shape[0] == 1 else np.einsum("bgm,bgmd->bgd", r, X)


def _group_apply(beta, X):
    """`x_k . beta_G` for each row `k` of group `G`, shape (B, G, m), for `beta` (B, G, d)."""
    return np.einsum("bgd,gmd->bgm", beta, X[0]) if X.shape[0] == 1 else np.einsum("bgd,bgmd->bgm", beta, X)


def _rows(v, M):
    """`M v` per run: `v` (B, d), `M` (P, n, d) with P = 1 or B; shape (B, n)."""
    return v @ M[0].T if M.shape[0] == 1 else np.matmul(M, v[..., None])[..., 0]


def _cols(r, M):
    """`M^T r` per run: `r` (B, n), `M` (P, n, d); shape (B, d)."""
    return r @ M[0] if M.shape[0] == 1 else np.matmul(r[:, None, :], M)[:, 0, :]


class MSharpness(Algorithm):
    """m-sharpness of an F-GR-family algorithm (Foret et al. 2021; Andriushchenko & Flammarion 2022).

    The examples, in order, form `n/m` groups `G` of `m`; `l_G = (1/(2m)) sum_{k in G} r_k^2`.

    `D = grad L + (gamma/eps) [(m/n) sum_G grad l_G(theta + eps p_G) - grad L]`,

    `p_G = grad l_G` (or `grad l_G / ||grad l_G||` for a normalized base, 0 at a zero gradient), with the
    base's `gamma`, signed ascent `eps` and normalization. For USAM and SAM (`gamma = eps = rho`) this is
    `D = (m/n) sum_G grad l_G(theta + rho p_G)`; `m = n` is the base itself (to round-off), `m = 1` is
    per-example SAM. For `m = 1` on a model quadratic in theta (squares, product) the perturbed gradients
    are summed in closed form by five matrix products (`_per_example`); otherwise every group is formed at
    once, in arrays of shape (B, n/m, 2, d) (`_groups`).
    """

    hyper = (BASE, Hyper("m", "m-sharpness: examples per group (a divisor of n; m = n is full-batch)", kind="int",
                         lo=1, per_run=False, divides="n", example=1))

    def __post_init__(self):
        if not isinstance(self.base, FGR):
            raise InputError(f"`base` of MSharpness must be USAM, SAM or another F-GR-family algorithm; got {self.base!r}")

    @property
    def flow(self):
        return self.base.flow

    def grad_evals(self):
        return self.base.grad_evals()

    def stiffness(self, at):
        return self.base.stiffness(at)

    def update(self, at, state, step):
        # per example on a model quadratic in theta (squares, product): closed form by matrix products
        per_example = self.m == 1 and getattr(at.objective.model, "depth", 2) == 2
        return (self._per_example(at) if per_example else self._groups(at)), state

    def _per_example(self, at):
        """`D` for `m = 1` on a model whose `beta` is quadratic in theta, by five matrix products.

        `grad l_k = J^T x_k r_k`, so the perturbed point is `theta + t_k J` with `t_ki = s_k x_ki`,
        `s_k = eps r_k` (or `eps r_k / ||grad l_k||`, `||grad l_k||^2 = r_k^2 sum_i x_ki^2 |J_i|^2`).
        For a quadratic model `beta_i(theta + t J) = beta_i + t P1_i + t^2 P2_i` with `P1 = |J|^2`,
        `P2 = J . (d^2 beta/d theta^2) J / 2`, and `J(theta + t J) = J + t K`, `K = (d^2 beta/d theta^2) J`:
        `r_k^+ = r_k + s_k [X^2 P1]_k + s_k^2 [X^3 P2]_k` and
        `(1/n) sum_k grad l_k(theta + eps p_k) = J (X^T r^+)/n + K ((X^2)^T (s r^+))/n`. With `grad L = J (X^T r)/n`,
        `D = grad L + c [...] - c grad L` (`c = gamma/eps`) is `J (X^T (r + c (r^+ - r)))/n + K ((X^2)^T (c s r^+))/n`:
        products with `X`, `X^2 = X*X`, `X^3`, no (B, n, d) array and no separate `grad L`; the elementwise
        work is fused (`dln._kernels`).
        """
        obj, base = at.objective, self.base
        prob, theta, r = obj.problem, at.theta, at.residual
        J = obj.model.jac(theta)
        K = obj.model.curvature(theta, np.ones_like(at.beta), J)
        P1, P2 = _kernels.quadratic_moments(J, K)
        X2 = prob.X * prob.X
        B = theta.shape[0]
        eps = np.broadcast_to(base.ascent(), (B,))
        c = np.broadcast_to(base.gamma, (B,)) / eps
        # q1 = ||grad l_k||^2 / r_k^2
        re, w = _kernels.ascent_residuals(r, _rows(P1, X2), _rows(P2, X2 * prob.X), eps, c, base.normalized)
        a, b = _cols(re, prob.X), _cols(w, X2)
        a /= prob.n
        b /= prob.n
        return _kernels.combine(J, K, a, b)

    def _groups(self, at):
        """`D = grad L + (gamma/eps) [(m/n) sum_G grad l_G(theta + eps p_G) - grad L]`, every group at once (arrays
        of shape (B, n/m, 2, d))."""
        base, obj = self.base, at.objective
        model, prob = obj.model, obj.problem
        theta = at.theta
        B, d, m = theta.shape[0], theta.shape[2], self.m
        G = prob.n // m
        X = prob.X.reshape(prob.P, G, m, d)
        y = prob.y.reshape(prob.P, G, m)
        J = model.jac(theta)
        gG = _group_sum(at.residual.reshape(B, G, m), X)      # m grad_beta l_G, (B, G, d)
        scale = per_run(base.ascent(), gG[:, :, 0]) / m        # eps / m, or eps / (m ||grad l_G||) normalized
        if base.normalized:
            # ||grad_theta l_G||^2 = sum_i (J_ui^2 + J_vi^2) (g_G)_i^2: J is diagonal
            norm = np.sqrt(np.einsum("bgd,bd->bg", gG * gG, np.einsum("bkd,bkd->bd", J, J))) / m
            scale = scale / np.where(norm > 0, norm, 1.0)
        gG *= scale[:, :, None]
        p = J[:, None] * gG[:, :, None, :]                     # eps p_G = eps J^T g_G (/ ||.||), (B, G, 2, d)
        p += theta[:, None]                                    # theta + eps p_G
        flat = p.reshape(B * G, 2, d)
        rG = _group_apply(model.beta(flat).reshape(B, G, d), X)
        rG -= y                                                # residuals of group G at its own perturbed point
        gp = _group_sum(rG, X)
        gp /= m
        D = np.einsum("bgkd,bgd->bkd", model.jac(flat).reshape(B, G, 2, d), gp)
        D /= G
        grad = at.grad
        D -= grad
        D *= per_run(base.gamma, theta) / per_run(base.ascent(), theta)
        D += grad
        return D


class Momentum(Algorithm):
    """Heavy-ball (Polyak 1964) or Nesterov momentum around `base`.

    `m_k = momentum m_{k-1} + D(theta_k)` (heavy ball) or `D(theta_k - eta momentum m_{k-1})` (Nesterov),
    `m_{-1} = 0`; the direction is `m_k`, so `theta_{k+1} = theta_k - eta m_k`. Nesterov's look-ahead
    `eta m_{k-1}` is the previous step's displacement `theta_{k-1} - theta_k`: the state keeps `m_{k-1}`
    and `theta_{k-1}`, so the update never needs `eta` and stays independent of the stepper.
    Discrete only (`flow = False`).
    """

    hyper = (BASE, Hyper("momentum", "momentum coefficient (heavy ball / Nesterov)", lo=0, hi=1, hi_open=True,
                         example=0.9),
             Hyper("nesterov", "Nesterov: evaluate the direction at the look-ahead point", kind="bool", per_run=False,
                   default=False))
    flow = False

    def grad_evals(self):
        return self.base.grad_evals()

    def init(self, at, seed):
        return {"m": np.zeros_like(at.theta), "prev": at.theta, "base": self.base.init(at, seed)}

    def update(self, at, state, step):
        beta = per_run(self.momentum, at.theta)
        point = at
        if self.nesterov:
            point = at.objective.at(at.theta - beta * (state["prev"] - at.theta))
        D, inner = self.base.update(point, state["base"], step)
        m = beta * state["m"]
        m += D
        # the stepper may scale the returned direction in place: the state keeps its own copy
        return m, {"m": m.copy(), "prev": at.theta, "base": inner}


#: wrappers the CLI applies when one of their flags is given, innermost first
WRAPPERS = (MSharpness, MiniBatch, Momentum)


def hyperparameter_table():
    """Markdown table of every algorithm's hyperparameters (the registry, then the wrappers), rendered from
    the declarations: CLI name or class, flag, range, default, per-run or not, help. The README holds
    exactly this output (`tests/test_stochastic.py`)."""
    from .algorithms import ALGORITHMS
    from ._hyper import REQUIRED

    lines = ["| algorithm | flag | range | default | per run | meaning |", "|---|---|---|---|---|---|"]
    for who, cls in [*((f"`{k}`", c) for k, c in ALGORITHMS.items()), *((f"{w.__name__} (wrapper)", w) for w in WRAPPERS)]:
        shown = [h for h in cls.hyper if h.kind != "algorithm"]
        for h in shown:
            default = "required" if h.default is REQUIRED else f"`{h.default}`"
            # a registered algorithm's True/False switch is a keyword of the library, not a CLI flag
            flag = f"keyword `{h.name}`" if h.kind == "bool" and cls not in WRAPPERS else f"`{h.cli}`"
            cells = [who, flag, h.range, default, "yes" if h.per_run else "no", h.help]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if not shown:
            lines.append(f"| {who} | | | | | no hyperparameter |")
    return "\n".join(lines)
