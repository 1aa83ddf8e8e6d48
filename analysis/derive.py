"""Symbolic derivations (SymPy) of the implicit bias of the gradient-regularization family.

Every function returns a `Derivation`: named SymPy expressions (the results,
printable as LaTeX or plain text) and named `identities`, expressions that the
derivation proves to be zero (`check()` simplifies each). Nothing here imports
`dln`: the hand-written NumPy forms in `dln` and these results are compared
numerically, elsewhere (`analysis.validate`), on random points.

Conventions follow docs/theory.md: `beta = u*u - v*v`, `L = ||X beta - y||^2/(2n)`,
`g = X^T (X beta - y)/n`, a flow is `theta' = -D(theta)`.

The per-algorithm derivations work on a concrete network with symbolic data
(`n x d` matrix `X` of symbols, default n = 2, d = 3): the loss is built from
the symbols, gradients and Hessians come from `sympy.diff` (what double
backpropagation computes), never from the formulas they are meant to confirm.
Results are then stated per coordinate with the placeholder symbols
`u, v, g, g_plus, gamma, eps, rho, N` (`N = ||grad_theta L||`).
"""
from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp
from sympy import QQ
from sympy.polys.rings import ring as _ring

# placeholder symbols for per-coordinate statements
u, v = sp.symbols("u v", positive=True)
g, g_plus, g_minus = sp.symbols("g g_+ g_-", real=True)
gamma, eps, rho, eta, N = sp.symbols("gamma epsilon rho eta N", positive=True)
alpha = sp.symbols("alpha", positive=True)
z = sp.symbols("z", real=True)
#: `K = [M ((u^2 + v^2) g)]_i` with `M = X^T X / n`: a vector in the span of `X^T`
K = sp.symbols("K", real=True)


@dataclass
class Derivation:
    """Named results and named identities (expressions equal to zero when the derivation holds).

    results : dict of str -> sympy.Expr
    identities : dict of str -> sympy.Expr
        Each should simplify to 0; `check()` returns the simplified residuals.
    notes : list of str
        Plain-text statements of what was derived (and any correction to docs/theory.md).
    """

    name: str
    results: dict = field(default_factory=dict)
    identities: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def check(self):
        """`{identity name: simplified residual}`; a derivation holds when every residual is 0."""
        return {k: _zero(e) for k, e in self.identities.items()}

    def holds(self):
        return all(r == 0 for r in self.check().values())

    def latex(self):
        return {k: sp.latex(e) for k, e in self.results.items()}

    def text(self):
        return {k: sp.sstr(e) for k, e in self.results.items()}


def _zero(e):
    """Simplify `e` (a scalar or a Matrix) towards 0."""
    if isinstance(e, sp.MatrixBase):
        return sp.Matrix([_zero(x) for x in e]).reshape(*e.shape) if any(_zero(x) != 0 for x in e) else 0
    e = sp.sympify(e)
    if e == 0:
        return sp.S.Zero
    r = sp.expand(sp.cancel(sp.together(e)))
    if r != 0:
        r = sp.simplify(r)
    return r


# ---------------------------------------------------------------------------------------------
# The potential q of gradient flow
# ---------------------------------------------------------------------------------------------

def potential():
    """`q` from the mirror form of gradient flow, with its convexity and its two limits.

    Along gradient flow `log(u/v) = -4 integral g dt` lies in the span of `X^T`
    and `u v = alpha^2`, so `beta = u^2 - v^2 = 2 alpha^2 sinh(X^T nu)`. An
    interpolator of that form is the minimiser of `sum_i alpha_i^2 q(beta_i/alpha_i^2)`
    exactly when `q'` inverts the link `w -> 2 sinh(w)` (KKT: `q'(beta/alpha^2)`
    in the row span of `X`). With `q(0) = 0`:
    `q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z/2)`, `q'' = 1/sqrt(4 + z^2) > 0`,
    `q(z) = z^2/4 - z^4/192 + ...` at 0 (kernel: `Q_alpha = ||beta||^2/(4 alpha^2)`),
    `q(z) = |z| log|z| - |z| + 2 - 1/|z| + ...` at infinity
    (rich: `Q_alpha(beta) / log(1/alpha^2) -> ||beta||_1`).
    """
    D = Derivation("potential q")
    w, s, x = sp.symbols("w s x", real=True)
    xp = sp.symbols("x", positive=True)
    beta, a = sp.symbols("beta", positive=True), alpha
    # invert the link z = 2 sinh(w): the root that is real and vanishes at z = 0
    roots = sp.solve(sp.Eq(2 * sp.sinh(w), z), w)
    root = next(r for r in roots if r.subs(z, 0) == 0 and sp.im(r.subs(z, 1)) == 0)
    dq = sp.asinh(z / 2)  # the same function: checked below through exp(root) = exp(asinh(z/2))
    q = sp.integrate(dq.subs(z, s), (s, 0, z))
    q_theory = 2 - sp.sqrt(4 + z**2) + z * sp.asinh(z / 2)
    d2q = sp.diff(q, z, 2)
    ser0 = sp.series(q, z, 0, 8).removeO()
    serinf = sp.series(q.rewrite(sp.log).subs(z, 1 / xp), xp, 0, 3).removeO().subs(xp, 1 / z)
    Q = a**2 * q.subs(z, beta / a**2)
    rich = sp.limit(Q.rewrite(sp.log) / sp.log(1 / a**2), a, 0, "+")
    kernel = sp.limit(Q * 4 * a**2, a, sp.oo)
    D.results.update(q=q, dq=dq, link_root=root, d2q=sp.simplify(d2q), series_0=ser0, series_inf=serinf,
                     Q_alpha=Q, rich_limit=rich, kernel_limit=kernel)
    D.identities.update(
        q_matches_theory=q - q_theory,
        q_at_0=q.subs(z, 0),
        solved_root_is_asinh=sp.exp(root) - sp.exp(sp.asinh(z / 2)).rewrite(sp.log),
        dq_is_asinh=sp.diff(q, z) - sp.asinh(z / 2),
        link_inverse=2 * sp.sinh(dq) - z,
        d2q_positive=sp.simplify(d2q - 1 / sp.sqrt(4 + z**2)),
        series_0_leading=sp.series(q, z, 0, 4).removeO() - z**2 / 4,
        series_inf_leading=sp.limit(q / (z * sp.log(z)), z, sp.oo) - 1,
        rich_limit=rich - beta,
        kernel_limit=kernel - beta**2,
    )
    D.notes.append("q(z) = 2 - sqrt(4+z^2) + z asinh(z/2): convex (q'' = 1/sqrt(4+z^2)); "
                   "q = z^2/4 - z^4/192 + O(z^6); q = |z| log|z| - |z| + 2 - 1/|z| + ... at infinity; "
                   "Q_alpha/log(1/alpha^2) -> ||beta||_1 (alpha -> 0), 4 alpha^2 Q_alpha -> ||beta||^2 (alpha -> inf)")
    return D


def kernel_correction():
    """First-order correction of the kernel limit, from the series `q = z^2/4 - z^4/192`.

    `4 alpha^2 Q_alpha(beta) = ||beta||^2 - sum beta^4 / (48 alpha^4) + O(alpha^-8)`; the
    minimiser among interpolators is `beta_2 + delta / alpha^4 + O(alpha^-8)` with
    `delta = P_null(beta_2^3) / 24`, `P_null` the projector on the null space of `X`
    (KKT: `2 delta - beta_2^3/12` in the row span, `X delta = 0`). So
    `||beta_alpha - beta_l2|| ~ ||P_null(beta_2^3)|| / (24 alpha^4)`: slope -4 in alpha.
    """
    D = Derivation("kernel limit rate")
    b2, dl, eps_ = sp.symbols("beta_2 delta varepsilon", real=True)
    q = 2 - sp.sqrt(4 + z**2) + z * sp.asinh(z / 2)
    ser = sp.series(q, z, 0, 6).removeO()
    # objective per coordinate, scaled by 4 alpha^2, with beta = b2 + eps_ delta, eps_ = alpha^-4
    a = alpha
    scaled = sp.expand(4 * a**2 * a**2 * ser.subs(z, (b2 + dl / a**4) / a**2))
    grad_coeff = sp.diff(scaled, dl)  # stationarity in delta, per coordinate
    # coefficient of alpha^-4 in the stationarity condition: 2 delta - b2^3/12 (+ multiplier in the row span)
    lead = sp.expand(grad_coeff * a**4)
    # order alpha^0: 2 beta_2 (the l2 KKT, in the row span); order alpha^-4: the correction
    coef = sp.limit(sp.expand((lead - 2 * b2) * a**4), a, sp.oo)
    D.results.update(series=ser, stationarity_alpha4=coef, rate=sp.Integer(-4), delta="P_null(beta_2^3)/24")
    D.identities.update(stationarity=coef - (2 * dl - b2**3 / 12))
    D.notes.append("||beta_alpha - beta_l2|| = ||P_null(beta_l2^3)|| / (24 alpha^4) + O(alpha^-8)")
    return D


def rich_correction():
    """Rate of the rich limit from the series at infinity, `q'(z) = sign(z) log|z| + O(1/z^2)`.

    On the support, `(X^T nu)_i = asinh(beta_i / (2 alpha^2)) = sign(beta_i)(log(1/alpha^2) + log|beta_i|) + ...`,
    so `nu = log(1/alpha^2) nu_hat + nu_0` with `|X^T nu_hat| = 1` on the support; off the
    support `beta_j = 2 alpha^2 sinh((X^T nu)_j) ~ alpha^(2 (1 - |X^T nu_hat|_j)) e^{+-(X^T nu_0)_j}`.
    The distance to the minimum-l1 interpolator therefore decays like
    `alpha^kappa`, `kappa = 2 (1 - max_{j off support} |X^T nu_hat|_j)`.
    """
    D = Derivation("rich limit rate")
    Lg, m, c0 = sp.symbols("ell m c_0", positive=True)
    dq = sp.asinh(z / 2)
    # inverse link at large argument: asinh(z/2) - log z -> 0
    D.identities.update(dq_inf=sp.limit(dq.rewrite(sp.log) - sp.log(z), z, sp.oo))
    a = alpha
    off = 2 * a**2 * sp.sinh(m * sp.log(1 / a**2) + c0)
    kappa = sp.limit(sp.log(off) / sp.log(a), a, 0, "+")
    D.results.update(offsupport_exponent=sp.simplify(kappa))
    D.identities.update(exponent=sp.simplify(kappa - 2 * (1 - m)))
    D.notes.append("off-support beta_j ~ alpha^(2(1-m_j)), m_j = |X^T nu_hat|_j < 1: "
                   "||beta_alpha - beta_l1|| ~ alpha^kappa, kappa = 2(1 - max_j m_j)")
    return D


# ---------------------------------------------------------------------------------------------
# The GR family on a concrete symbolic network
# ---------------------------------------------------------------------------------------------

class _Net:
    """A symbolic network in exact polynomial arithmetic over QQ (`sympy.polys.rings`).

    Data `X` (n x d) and `y` (n) are symbols `x_ij`, `y_i`; parameters `u_i, v_i`;
    the loss `L = ||X beta - y||^2/(2n)` is built from them, gradients and Hessians
    come from differentiating it (what double backpropagation computes). A polynomial
    is in canonical form here, so an identity holds iff its residual is 0; divisions
    (by `u_i`, `v_i`, `eps`) are exact divisions that fail loudly if not exact.
    """

    def __init__(self, n=2, d=3):
        self.n, self.d = n, d
        xs = [f"x_{i}{j}" for i in range(n) for j in range(d)]
        names = xs + [f"y_{i}" for i in range(n)] + [f"u_{i}" for i in range(d)] + [f"v_{i}" for i in range(d)] \
            + ["gamma", "epsilon", "rho", "N"]
        self.F, *gens = _ring(",".join(names), QQ)
        S = dict(zip(names, gens))
        self.X = [[S[f"x_{i}{j}"] for j in range(d)] for i in range(n)]
        self.y = [S[f"y_{i}"] for i in range(n)]
        self.u = [S[f"u_{i}"] for i in range(d)]
        self.v = [S[f"v_{i}"] for i in range(d)]
        self.gamma, self.eps, self.rho, self.N = S["gamma"], S["epsilon"], S["rho"], S["N"]
        self.theta = self.u + self.v
        self.gens = gens
        self.L = self.loss(self.theta)
        self.grad = [self.L.diff(t) for t in self.theta]

    def beta(self, th):
        d = self.d
        return [th[i] ** 2 - th[d + i] ** 2 for i in range(d)]

    def g(self, b):
        """`g(beta) = X^T (X beta - y)/n`."""
        n, d, X = self.n, self.d, self.X
        r = [sum(X[i][j] * b[j] for j in range(d)) - self.y[i] for i in range(n)]
        return [sum(X[i][j] * r[i] for i in range(n)) / n for j in range(d)]

    def M(self, w):
        """`M w = X^T X w / n`."""
        n, d, X = self.n, self.d, self.X
        Xw = [sum(X[i][j] * w[j] for j in range(d)) for i in range(n)]
        return [sum(X[i][j] * Xw[i] for i in range(n)) / n for j in range(d)]

    def loss(self, th):
        r = [sum(self.X[i][j] * b for j, b in enumerate(self.beta(th))) - self.y[i] for i in range(self.n)]
        return sum(ri**2 for ri in r) / (2 * self.n)

    def at(self, f, point):
        """The polynomial `f` (a function of theta) evaluated at `theta = point` (polynomials)."""
        return f.compose(list(zip(self.theta, point)))

    def grad_at(self, point):
        """`grad_theta L` evaluated at `point` (the gradient's polynomial, substituted)."""
        return [self.at(gi, point) for gi in self.grad]

    def hessian(self):
        return [[gi.diff(t) for t in self.theta] for gi in self.grad]

    def nullspace(self):
        """Basis of the null space of the symbolic `X`, as field elements."""
        Xs = sp.Matrix(self.n, self.d, lambda i, j: self.X[i][j].as_expr())
        out = []
        for nv in Xs.nullspace():
            den = sp.lcm([sp.fraction(sp.together(e))[1] for e in nv])
            out.append([self.F(sp.expand(sp.cancel(e * den))) for e in nv])
        return out


@lru_cache(maxsize=None)
def network(n=2, d=3):
    return _Net(n, d)


#: per-coordinate statements of docs/theory.md, in the placeholder symbols
THEORY_DRIFT = {
    "GD": sp.S.Zero,
    "GR": 4 * gamma * g**2,
    "F-GR": 4 * gamma * g * g_plus,
    "B-GR": 4 * gamma * g * g_minus,
    "USAM": 4 * rho * g * g_plus,
    "SAM": 4 * eps * g * g_plus,
}

#: per-coordinate `h` found by the derivation (placeholders; `K = [M((u^2+v^2) g)]_i`)
H_TEMPLATE = {
    "GD": g,
    "GR": g + 4 * gamma * K,
    "F-GR": g + (gamma / eps) * (g_plus - g),
    "B-GR": g + (gamma / eps) * (g - g_minus),
    "USAM": g_plus,
    "SAM": g_plus,
}


def _exquo(p, q):
    """Exact division of the polynomial `p` by a monomial `q` (`u_i`, `-eps`, ...); raises if not exact."""
    (mq, cq), = q.terms()
    dom = p.ring.domain
    out = {}
    for m, c in p.terms():
        if any(a < b for a, b in zip(m, mq)):
            raise ArithmeticError(f"{q} does not divide the polynomial exactly")
        out[tuple(a - b for a, b in zip(m, mq))] = dom.quo(c, cq)
    return p.ring.from_dict(out)


def _place(expr, values):
    """Evaluate a placeholder expression with field elements `values` {symbol: element}."""
    f = sp.lambdify(list(values), expr, modules=[{}])
    return f(*values.values())


def mirror_split(algorithm, n=2, d=3):
    """`u'/u`, `v'/v`, the span part `h` and the drift `c` of one algorithm's flow.

    The direction is built from the loss of a network with symbolic data by
    differentiation: GD `D = grad L`; GR `D = grad L + gamma H grad L` (`H` the
    Hessian); F-GR `D = grad L + (gamma/eps)(grad L(theta + eps grad L) - grad L)`;
    B-GR the same with `-eps`; USAM `D = grad L(theta + rho grad L)`; SAM
    `D = grad L(theta + eps grad L)` for a scalar `eps` common to all coordinates,
    `eps = rho / ||grad_theta L||` (so `gamma = eps` too). The identities check,
    coordinate by coordinate, that `u'/u = -2h - c`, `v'/v = 2h - c` with `h`
    orthogonal to the null space of `X`, `c` equal to docs/theory.md's drift (with
    `g_pm = g(beta(theta +- eps grad L))`) and `h` equal to `H_TEMPLATE[algorithm]`.
    """
    if algorithm not in THEORY_DRIFT:
        raise ValueError(f"`algorithm` must be one of {sorted(THEORY_DRIFT)}; got {algorithm!r}")
    net = network(n, d)
    th, grad = net.theta, net.grad
    gv = net.g(net.beta(th))
    Kv = net.M([(net.u[i] ** 2 + net.v[i] ** 2) * gv[i] for i in range(d)])
    gp = gm = [net.F(0)] * d
    e = {"F-GR": net.eps, "B-GR": -net.eps, "USAM": net.rho, "SAM": net.eps}.get(algorithm)
    if e is not None:
        point = [t + e * gi for t, gi in zip(th, grad)]
        Gp = net.grad_at(point)
        gpm = net.g(net.beta(point))
        if algorithm == "B-GR":
            gm = gpm
        else:
            gp = gpm
    if algorithm == "GD":
        Dv = grad
    elif algorithm == "GR":
        H = net.hessian()
        Dv = [grad[i] + net.gamma * sum(H[i][j] * grad[j] for j in range(2 * d)) for i in range(2 * d)]
    elif algorithm in ("F-GR", "B-GR"):
        Dv = [grad[i] + net.gamma * _exquo(Gp[i] - grad[i], e) for i in range(2 * d)]
    else:
        Dv = Gp
    ur = [-_exquo(Dv[i], net.u[i]) for i in range(d)]
    vr = [-_exquo(Dv[d + i], net.v[i]) for i in range(d)]
    h = [(vr[i] - ur[i]) / 4 for i in range(d)]
    c = [-(ur[i] + vr[i]) / 2 for i in range(d)]
    Dn = Derivation(f"mirror split: {algorithm}")
    for i in range(d):
        vals = {u: net.u[i], v: net.v[i], g: gv[i], g_plus: gp[i], g_minus: gm[i], K: Kv[i],
                gamma: net.gamma, eps: net.eps, rho: net.rho}
        Dn.identities[f"u_rate_{i}"] = (ur[i] - (-2 * h[i] - c[i])).as_expr()
        Dn.identities[f"v_rate_{i}"] = (vr[i] - (2 * h[i] - c[i])).as_expr()
        Dn.identities[f"drift_{i}"] = (c[i] - _place(THEORY_DRIFT[algorithm], vals)).as_expr()
        Dn.identities[f"h_{i}"] = (h[i] - _place(H_TEMPLATE[algorithm], vals)).as_expr()
    for k, nv in enumerate(net.nullspace()):
        Dn.identities[f"h_in_span_{k}"] = sum((hi * ni for hi, ni in zip(h, nv)), net.F(0)).as_expr()
    hh, cc = H_TEMPLATE[algorithm], THEORY_DRIFT[algorithm]
    t = sp.Symbol("t")
    Dn.results.update(h=hh, c=cc, u_rate=-2 * hh - cc, v_rate=2 * hh - cc,
                      alpha_eff=alpha * sp.exp(-sp.Integral(cc, (t, 0, sp.oo))))
    extra = " with eps = rho/||grad_theta L||" if algorithm == "SAM" else ""
    Dn.notes.append(f"{algorithm}: u'/u = -2h - c, v'/v = 2h - c, h = {sp.sstr(hh)} (span of X^T), "
                    f"c = {sp.sstr(cc)}{extra}, exactly (no further Hessian terms); (u v)' = -2 c u v, so "
                    "alpha_eff(inf) = alpha exp(-int_0^inf c dt)")
    return Dn


def perturbed_beta():
    """`beta(theta + eps grad L)` per coordinate: `u^2 (1 + 2 eps g)^2 - v^2 (1 - 2 eps g)^2`."""
    return u**2 * (1 + 2 * eps * g) ** 2 - v**2 * (1 - 2 * eps * g) ** 2


def fd_expansion(n=2, d=3):
    """F-GR and B-GR drifts to first order in `eps`, and the sign of their difference.

    `beta(theta +- eps grad L) - beta = +- 4 eps (u^2 + v^2) g + 4 eps^2 g^2 beta` exactly, and `g`
    is affine in `beta`, so `g_pm = g +- 4 eps K + 4 eps^2 [M (g^2 beta)]`, `K = M((u^2+v^2) g)`,
    `M = X^T X / n`:
    `c_F = 4 gamma g^2 + 16 gamma eps g K + O(eps^2)`, `c_B = 4 gamma g^2 - 16 gamma eps g K + O(eps^2)`,
    `c_F - c_B = 32 gamma eps g K` exactly (the eps^2 terms cancel). Coordinate by coordinate
    the sign of `g K` varies, but weighted by `u^2 + v^2`:
    `sum_i (u_i^2 + v_i^2)(c_F - c_B)_i = 32 gamma eps ||X ((u^2 + v^2) g)||^2 / n >= 0`.
    """
    net = network(n, d)
    th, grad, dd = net.theta, net.grad, net.d
    gv = net.g(net.beta(th))
    w = [(net.u[i] ** 2 + net.v[i] ** 2) * gv[i] for i in range(dd)]
    Kv = net.M(w)
    ep, gm_ = net.eps, net.gamma
    gp = net.g(net.beta([t + ep * gi for t, gi in zip(th, grad)]))
    gmn = net.g(net.beta([t - ep * gi for t, gi in zip(th, grad)]))
    cF = [4 * gm_ * gv[i] * gp[i] for i in range(dd)]
    cB = [4 * gm_ * gv[i] * gmn[i] for i in range(dd)]
    Dn = Derivation("F-GR vs B-GR in eps")
    db = perturbed_beta() - (u**2 - v**2)
    Dn.identities["dbeta"] = sp.expand(db - (4 * eps * (u**2 + v**2) * g + 4 * eps**2 * g**2 * (u**2 - v**2)))
    for i in range(dd):
        # first order in eps: value and eps-derivative at eps = 0 (c_F, c_B are polynomials in eps)
        for name, cc, sgn in (("cF", cF[i], 1), ("cB", cB[i], -1)):
            Dn.identities[f"{name}_order0_{i}"] = (cc.subs(ep, 0) - 4 * gm_ * gv[i] ** 2).as_expr()
            Dn.identities[f"{name}_order1_{i}"] = (cc.diff(ep).subs(ep, 0) - sgn * 16 * gm_ * gv[i] * Kv[i]).as_expr()
        Dn.identities[f"difference_exact_{i}"] = (cF[i] - cB[i] - 32 * gm_ * ep * gv[i] * Kv[i]).as_expr()
    weighted = sum(((net.u[i] ** 2 + net.v[i] ** 2) * (cF[i] - cB[i]) for i in range(dd)), net.F(0))
    Xw = [sum(net.X[k][j] * w[j] for j in range(dd)) for k in range(net.n)]
    Dn.identities["weighted_difference_sum_of_squares"] = (
        weighted - 32 * gm_ * ep * sum(x * x for x in Xw) / net.n).as_expr()
    Dn.results.update(dbeta=4 * eps * (u**2 + v**2) * g + 4 * eps**2 * g**2 * (u**2 - v**2),
                      c_F=4 * gamma * g**2 + 16 * gamma * eps * g * K,
                      c_B=4 * gamma * g**2 - 16 * gamma * eps * g * K,
                      difference=32 * gamma * eps * g * K)
    Dn.notes.append("c_F - c_B = 32 gamma eps g K exactly, K = M((u^2+v^2) g); its (u^2+v^2)-weighted sum is "
                    "32 gamma eps ||X((u^2+v^2) g)||^2/n >= 0: F-GR drifts more than GR, B-GR less, "
                    "on (u^2+v^2)-weighted average, not coordinate by coordinate")
    return Dn


# ---------------------------------------------------------------------------------------------
# Implicit gradient regularization, flooding, discrete GD
# ---------------------------------------------------------------------------------------------

def igr(dim=2):
    """Backward error analysis of gradient descent to second order in `eta`.

    For a generic loss `L(x_1, ..., x_dim)` (an undefined SymPy function) seek the
    modified field `f = f_0 + eta f_1` whose time-`eta` flow map
    `x + eta f + eta^2/2 (Df) f + O(eta^3)` equals the step `x - eta grad L`:
    order `eta`: `f_0 = -grad L`; order `eta^2`: `f_1 = -(1/2)(D f_0) f_0 = -(1/2) H grad L`
    `= -(1/4) grad ||grad L||^2`. The modified flow is
    `x' = -grad [L + (eta/4) ||grad L||^2]`: GR with `gamma = eta/2`.
    """
    xs = sp.symbols(f"x1:{dim + 1}", real=True)
    L = sp.Function("L")(*xs)
    grad = sp.Matrix([sp.diff(L, x) for x in xs])
    f1 = sp.Matrix([sp.Function(f"f1_{i}")(*xs) for i in range(dim)])
    f = -grad + eta * f1

    def lie(F, vec):  # (D vec) F
        return sp.Matrix([sum(sp.diff(vec[i], xs[j]) * F[j] for j in range(dim)) for i in range(dim)])

    flow_map = sp.Matrix(xs) + eta * f + eta**2 / 2 * lie(f, f)
    gd = sp.Matrix(xs) - eta * grad
    mismatch = (flow_map - gd).applyfunc(lambda e: sp.expand(e))
    order2 = mismatch.applyfunc(lambda e: e.coeff(eta, 2))
    sol = sp.solve(list(order2), list(f1), dict=True)[0]
    f1_sol = f1.subs(sol)
    H = sp.hessian(L, xs)
    penalty = sum(gi**2 for gi in grad)
    Dn = Derivation("implicit gradient regularization")
    Dn.identities["order_eta"] = mismatch.applyfunc(lambda e: e.coeff(eta, 1))
    Dn.identities["f1_is_minus_half_H_grad"] = f1_sol - (-H * grad / 2)
    Dn.identities["modified_flow_is_GR_gamma_eta_over_2"] = (-grad + eta * f1_sol) + sp.Matrix(
        [sp.diff(L + eta / 4 * penalty, x) for x in xs])
    Dn.identities["gamma_eta_over_2"] = (-grad + eta * f1_sol) + (grad + (eta / 2) * H * grad)
    Dn.results.update(f0=-grad, f1=f1_sol, modified_loss=L + eta / 4 * penalty, gamma=eta / 2)
    Dn.notes.append("GD with step eta = flow of L + (eta/4)||grad L||^2 + O(eta^2) field error: GR with "
                    "gamma = eta/2 (docs/theory.md confirmed); GD is O(eta) from gradient flow and O(eta^2) from "
                    "the modified flow at a fixed time")
    return Dn


def flooding(dim=2):
    """Two flooding steps around the flood level, for a generic loss.

    Below `b` the step ascends, above it descends. Ascent then descent:
    `x_2 = x - eta [grad L(x + eta grad L(x)) - grad L(x)]
         = x - eta^2 * [(grad L(x + eps grad L) - grad L(x)) / eps]_{eps = eta}`:
    one step of size `eta^2` along the forward-difference gradient of the penalty
    `R = ||grad L||^2 / 2` with ascent step `eps = eta`, and no `grad L` term.
    Descent then ascent gives the backward difference. The forward difference is
    `H grad L + O(eta)`, so the pair is `x - eta^2 H grad L + O(eta^3)`.
    On `beta = u*u - v*v`, any step multiplies `u v` by `1 - 4 eta^2 g^2`.
    """
    xs = sp.symbols(f"x1:{dim + 1}", real=True)
    L = sp.Function("L")(*xs)
    grad = sp.Matrix([sp.diff(L, x) for x in xs])

    def grad_at(pt):
        return grad.subs(dict(zip(xs, pt)), simultaneous=True)

    x = sp.Matrix(xs)
    x1 = x + eta * grad
    x2 = x1 - eta * grad_at(list(x1))
    fd_forward = (grad_at(list(x + eps * grad)) - grad) / eps
    y1 = x - eta * grad
    y2 = y1 + eta * grad_at(list(y1))
    fd_backward = (grad - grad_at(list(x - eps * grad))) / eps
    Dn = Derivation("flooding pair")
    Dn.identities["ascent_descent_is_forward_FD_penalty_step"] = x2 - (x - eta**2 * fd_forward.subs(eps, eta))
    Dn.identities["descent_ascent_is_backward_FD_penalty_step"] = y2 - (x - eta**2 * fd_backward.subs(eps, eta))
    # leading order, for a generic cubic polynomial loss (series of undefined functions is not supported)
    mons = sorted(sp.itermonomials(list(xs), 3), key=sp.default_sort_key)
    cs = sp.symbols(f"c0:{len(mons)}")
    Lp = sum(ci * m for ci, m in zip(cs, mons))
    gp_ = sp.Matrix([sp.diff(Lp, xx) for xx in xs])
    x1p = x + eta * gp_
    x2p = x1p - eta * gp_.subs(dict(zip(xs, list(x1p))), simultaneous=True)
    # Taylor coefficients in eta at 0: order 1 vanishes, order 2 is -H grad L
    lead = (x2p - x).applyfunc(lambda e: sp.diff(e, eta).subs(eta, 0) * eta
                               + sp.diff(e, eta, 2).subs(eta, 0) * eta**2 / 2)
    H = sp.hessian(Lp, xs)
    Dn.identities["leading_order_H_grad"] = lead + eta**2 * H * gp_
    # squares model: u v per step, either sign of the step
    s = sp.symbols("s")
    Dn.identities["uv_factor"] = sp.expand((u * (1 - 2 * s * eta * g)) * (v * (1 + 2 * s * eta * g))).subs(s**2, 1) \
        - u * v * (1 - 4 * eta**2 * g**2)
    Dn.results.update(pair=x - eta**2 * fd_forward.subs(eps, eta), uv_factor=1 - 4 * eta**2 * g**2,
                      equivalent_drift=4 * (eta / 2) * g * g_plus)
    Dn.notes.append("CORRECTION (flooding; listed in docs/theory.md, Corrections): ascent+descent = one step of size eta^2 on the "
                    "finite-difference gradient of the penalty ||grad L||^2/2 with ascent step eps = eta, and "
                    "WITHOUT the grad L term of an F-GR direction (descent+ascent: the backward difference). "
                    "As a flow over the pair's time 2 eta: D = (gamma/eps)(grad L(theta + eps grad L) - grad L), "
                    "gamma = eta/2, eps = eta, whose drift is c = 2 eta g g_+ (the grad L term adds no drift)")
    return Dn


def discrete_gd():
    """One GD step on `beta = u*u - v*v`: what is kept and what breaks the mirror structure.

    `u <- u (1 - 2 eta g)`, `v <- v (1 + 2 eta g)`: `u v` is multiplied by exactly
    `1 - 4 eta^2 g^2`, and `log(u/v)` changes by `log((1 - 2 eta g)/(1 + 2 eta g))
    = -4 eta g - (16/3) eta^3 g^3 + O(eta^5)`. The first term is in the span of `X^T`;
    the cubic one is not, and it adds up over a unit of time (`1/eta` steps) to
    `O(eta^2)`: `beta(inf)` is `O(eta^2)` from `argmin Q_{alpha_eff(inf)}`.
    """
    Dn = Derivation("discrete gradient descent")
    step = sp.log((1 - 2 * eta * g) / (1 + 2 * eta * g))
    ser = sp.series(step, eta, 0, 5).removeO()
    Dn.identities["uv_factor"] = sp.expand(u * (1 - 2 * eta * g) * v * (1 + 2 * eta * g) - u * v * (1 - 4 * eta**2 * g**2))
    Dn.identities["log_ratio_series"] = sp.expand(ser - (-4 * eta * g - sp.Rational(16, 3) * eta**3 * g**3))
    Dn.results.update(uv_factor=1 - 4 * eta**2 * g**2, log_ratio_step=ser,
                      offspan_per_unit_time=-sp.Rational(16, 3) * eta**2 * g**3, predicted_slope=sp.Integer(2))
    Dn.notes.append("GD: alpha_eff^2 shrinks by 1 - 4 eta^2 g^2 per step (exact); log(u/v) leaves the span of X^T "
                    "by -(16/3) eta^3 g^3 per step, so dist(beta(inf), argmin Q_{alpha_eff(inf)}) = O(eta^2)")
    return Dn


# ---------------------------------------------------------------------------------------------
# Depth D
# ---------------------------------------------------------------------------------------------

def depth(D=3):
    """The depth-`D` potential, `beta = u^D - v^D`, from `u = v = alpha` (Woodworth et al. 2020).

    Gradient flow `u' = -D u^(D-1) g`, `v' = D v^(D-1) g` gives
    `(u^(2-D))' = D(D-2) g` and `(v^(2-D))' = -D(D-2) g`, so with
    `w = -D(D-2) alpha^(D-2) integral g dt` (in the span of `X^T`):
    `u = alpha (1 - w)^(-1/(D-2))`, `v = alpha (1 + w)^(-1/(D-2))`, and the link
    `beta = alpha^D h_D(w)`, `h_D(w) = (1 - w)^(-D/(D-2)) - (1 + w)^(-D/(D-2))`, `|w| < 1`.
    The potential `Q^D_alpha(beta) = alpha^D sum_i q_D(beta_i / alpha^D)` has `q_D' = h_D^{-1}`;
    in parametric form `q_D = b w - int_0^w h_D`, `b = h_D(w)`.
    Kernel: `h_D(w) = 2D/(D-2) w + ...`, `q_D(b) = (D-2)/(4D) b^2 + ...`.
    Rich: `q_D(b) = |b| - (D/2) |b|^(2/D) + ...`, so `Q^D_alpha(beta) = ||beta||_1 + O(alpha^(D-2))`.
    """
    Dn = Derivation(f"depth-{D} potential")
    a, t = alpha, sp.symbols("t", real=True)
    w, b = sp.symbols("w b", real=True)
    Sf = sp.Function("S")(t)  # integral of g
    uu = (a ** (2 - D) + D * (D - 2) * Sf) ** sp.Rational(1, 2 - D)
    vv = (a ** (2 - D) - D * (D - 2) * Sf) ** sp.Rational(1, 2 - D)
    gdot = sp.diff(Sf, t)  # = g
    Dn.identities["u_solves_flow"] = sp.simplify(sp.diff(uu, t) - (-D * uu ** (D - 1) * gdot))
    Dn.identities["v_solves_flow"] = sp.simplify(sp.diff(vv, t) - (D * vv ** (D - 1) * gdot))
    p = sp.Rational(D, D - 2)
    h = (1 - w) ** (-p) - (1 + w) ** (-p)
    beta_link = (uu**D - vv**D).subs(Sf, -w * a ** (2 - D) / (D * (D - 2)))
    Dn.identities["link"] = sp.simplify(beta_link - a**D * h)
    Dn.identities["invariant"] = sp.simplify(uu ** (2 - D) + vv ** (2 - D) - 2 * a ** (2 - D))
    H = sp.integrate(h, (w, 0, w))
    qD = b * w - H  # with b = h(w)
    hser = sp.series(h, w, 0, 3).removeO()
    Dn.identities["kernel_slope"] = sp.simplify(hser - 2 * p * w)
    # q_D(b) near 0: q'(b) = w(b) ~ b / (2p)
    Dn.identities["kernel_q"] = sp.simplify(sp.series((h * w - H), w, 0, 3).removeO() - (2 * p * w) ** 2 * (D - 2) / (4 * D))
    # rich: w -> 1 with r = 1 - w: q_D + (D/2) b^(2/D) - b -> const (bounded), leading terms cancel
    r = sp.symbols("r", positive=True)
    bq = h.subs(w, 1 - r)
    qrich = qD.subs({b: bq}).subs(w, 1 - r)
    rest = sp.simplify(qrich - bq + sp.Rational(D, 2) * bq ** sp.Rational(2, D))
    Dn.results.update(link=a**D * h, h_D=h, q_D_parametric=qD, H_D=H, rich_remainder=rest)
    lim_rest = sp.limit(rest, r, 0, "+")
    Dn.identities["rich_remainder_bounded"] = sp.S.Zero if lim_rest.is_finite else sp.S.One
    Dn.results["rich_remainder_at_inf"] = lim_rest
    Dn.notes.append(f"D={D}: beta = alpha^D h_D(w), h_D(w) = (1-w)^(-{p}) - (1+w)^(-{p}); q_D(b) = "
                    f"{sp.Rational(D - 2, 4 * D)} b^2 + ... (kernel), |b| - {sp.Rational(D, 2)} |b|^(2/{D}) "
                    f"+ O(1) (rich): Q^D_alpha -> ||beta||_1 with error O(alpha^{D - 2})")
    return Dn


def all_derivations(quick=False):
    """Every derivation, in report order (`quick` uses the smallest symbolic network n = 1, d = 2)."""
    n, d = (1, 2) if quick else (2, 3)
    out = [potential(), kernel_correction(), rich_correction()]
    out += [mirror_split(a, n, d) for a in THEORY_DRIFT]
    out += [fd_expansion(n, d), igr(), flooding(), discrete_gd(), depth(3), depth(4)]
    return out


# ---------------------------------------------------------------------------------------------
# Stochastic and stateful algorithms (issue 10)
# ---------------------------------------------------------------------------------------------

#: the per-coordinate factor of a step whose direction is `J^T g~` (SGD, label noise, flooding), and the
#: m-sharpness drift per group, in placeholder symbols (`e_G`: the group's ascent step)
g_tilde = sp.symbols("gtilde", real=True)


def uv_step():
    """Any step `theta <- theta - eta J^T g~` on `beta = u*u - v*v`, whatever `g~` is (a mini-batch gradient
    `X_B^T r_B / b`, a noisy-label gradient `X^T (r - sigma xi) / n`, flooding's `+-g`):
    `u <- u (1 - 2 eta g~)`, `v <- v (1 + 2 eta g~)`, so `u v` is multiplied by `1 - 4 eta^2 g~^2`, exactly.
    `log alpha_eff` falls by `-(1/2) log(1 - 4 eta^2 g~^2) >= 2 eta^2 g~^2` per step: larger stochastic
    gradients shrink `alpha_eff` more (Pesme et al. 2021). For label noise, `E[g~_i^2] = g_i^2 + sigma^2
    ||X_:i||^2 / n^2`, which stays positive when the loss hovers (`g -> 0`)."""
    Dn = Derivation("stochastic steps: u v factor")
    u1 = u - eta * 2 * u * g_tilde
    v1 = v - eta * (-2 * v * g_tilde)
    Dn.identities["uv_factor"] = sp.expand(u1 * v1 - u * v * (1 - 4 * eta**2 * g_tilde**2))
    sigma, xi, gi, xsq, n_ = sp.symbols("sigma xi g_i xsq n", real=True)
    # label noise, one coordinate: g~_i = g_i - sigma (X^T xi)_i / n with E[(X^T xi)_i^2] = ||X_:i||^2 = xsq
    Dn.identities["label_noise_second_moment"] = sp.expand(
        (gi - sigma * xi / n_) ** 2).subs(xi**2, xsq).subs(xi, 0) - (gi**2 + sigma**2 * xsq / n_**2)
    Dn.results.update(uv_factor=1 - 4 * eta**2 * g_tilde**2,
                      label_noise_rate=-2 * eta**2 * (gi**2 + sigma**2 * xsq / n_**2))
    Dn.notes.append("any step with direction J^T g~ multiplies u v by 1 - 4 eta^2 g~^2 (exact); label noise: "
                    "E[g~_i^2] = g_i^2 + sigma^2 ||X_:i||^2/n^2, so log alpha_eff keeps falling by about "
                    "2 eta^2 sigma^2 ||X_:i||^2/n^2 per step once the loss hovers")
    return Dn


def msharp_split(n=2, d=2):
    """The flow of per-example (m = 1) USAM/SAM on `beta = u*u - v*v` with symbolic data, split as in
    `mirror_split`: `D = (1/n) sum_k grad l_k(theta + e_k grad l_k)`, `l_k = r_k^2/2` (`e_k = rho` for USAM,
    `rho/||grad l_k||` for SAM: a positive symbol per example). With `g_k = x_k r_k` and `g_k^+ = x_k
    r_k(theta + e_k grad l_k)`: `u'/u = -2h - c`, `v'/v = 2h - c`, `h = (1/n) sum_k g_k^+` (in the span of
    `X^T`) and `c = (1/n) sum_k 4 e_k g_k g_k^+`, the per-group analogue of `4 rho g g_+`; for groups of
    `m` the same algebra gives `c = (m/n) sum_G 4 e_G g_G g_G^+` (`g_G = X_G^T r_G/m`), and `m = n` is USAM/SAM.
    """
    us = sp.symbols(f"u0:{d}", positive=True)
    vs = sp.symbols(f"v0:{d}", positive=True)
    X = sp.Matrix(n, d, lambda k, i: sp.Symbol(f"x{k}{i}", real=True))
    y = sp.symbols(f"y0:{n}", real=True)
    es = sp.symbols(f"e0:{n}", positive=True)

    def r(k, uu, vv):
        return sum(X[k, i] * (uu[i] ** 2 - vv[i] ** 2) for i in range(d)) - y[k]

    Du, Dv = [0] * d, [0] * d
    gk, gp = [], []
    for k in range(n):
        rk = r(k, us, vs)
        gl = [X[k, i] * rk for i in range(d)]  # grad_beta l_k
        up = [us[i] + es[k] * 2 * us[i] * gl[i] for i in range(d)]
        vp = [vs[i] - es[k] * 2 * vs[i] * gl[i] for i in range(d)]
        rp = r(k, up, vp)
        gk.append(gl)
        gp.append([X[k, i] * rp for i in range(d)])
        # grad_theta l_k at the perturbed point, by differentiation of l_k there
        t = sp.symbols(f"t0:{2 * d}")
        lk = r(k, t[:d], t[d:]) ** 2 / 2
        sub = dict(zip(t, up + vp))
        for i in range(d):
            Du[i] += sp.diff(lk, t[i]).subs(sub, simultaneous=True) / n
            Dv[i] += sp.diff(lk, t[d + i]).subs(sub, simultaneous=True) / n
    Dn = Derivation("m-sharpness (m = 1) mirror split")
    for i in range(d):
        ur, vr = -Du[i] / us[i], -Dv[i] / vs[i]
        h = sum(gp[k][i] for k in range(n)) / n
        c = sum(4 * es[k] * gk[k][i] * gp[k][i] for k in range(n)) / n
        Dn.identities[f"u_rate_{i}"] = sp.expand(sp.cancel(ur - (-2 * h - c)))
        Dn.identities[f"v_rate_{i}"] = sp.expand(sp.cancel(vr - (2 * h - c)))
    Dn.results.update(h=sp.Symbol("(1/n) sum_k g_k^+"), c=sp.Symbol("(m/n) sum_G 4 e_G g_G g_G^+"))
    Dn.notes.append("per-example USAM/SAM: u'/u = -2h - c, v'/v = 2h - c with h = (1/n) sum_k x_k r_k^+ in the "
                    "span of X^T and c = (1/n) sum_k 4 e_k g_k g_k^+ (e_k = rho, or rho/||grad l_k|| for SAM): "
                    "alpha_eff(inf) = alpha exp(-int c dt); groups of m: c = (m/n) sum_G 4 e_G g_G g_G^+")
    return Dn


def heavy_ball():
    """Heavy ball `m_k = beta m_{k-1} + grad L(theta_k)`, `theta_{k+1} = theta_k - eta m_k` on a quadratic
    direction `lambda theta`: `theta_{k+1} = (1 + beta - eta lambda) theta_k - beta theta_{k-1}`, whose slow
    root is `z = 1 - eta lambda/(1 - beta) + O(eta^2)`: `theta_k ~ exp(-lambda eta k/(1 - beta))`, gradient flow
    in the time `eta k/(1 - beta)`, to first order in `eta` (the fast root `~ beta` dies out)."""
    lam, beta_ = sp.symbols("lambda beta", positive=True)
    zz = sp.symbols("z")
    char = zz**2 - (1 + beta_ - eta * lam) * zz + beta_
    z1 = 1 - eta * lam / (1 - beta_)
    Dn = Derivation("heavy ball: time eta k / (1 - beta)")
    # char(z1) = O(eta^2) and d char/dz = 1 - beta != 0 at (z, eta) = (1, 0): the slow root is z1 + O(eta^2)
    at_z1 = sp.expand(sp.cancel(char.subs(zz, z1) * (1 - beta_) ** 2))
    Dn.identities["root_at_eta_0"] = char.subs({zz: 1, eta: 0})
    Dn.identities["slow_root_first_order"] = at_z1.coeff(eta, 1)
    Dn.identities["simple_root"] = sp.simplify(sp.diff(char, zz).subs({zz: 1, eta: 0}) - (1 - beta_))
    ser = z1
    Dn.results.update(slow_root=ser, time=sp.Symbol("eta k / (1 - beta)"))
    Dn.notes.append("heavy ball with momentum beta follows gradient flow in time eta k/(1 - beta), error O(eta)")
    return Dn


def stochastic_derivations():
    """The derivations of the stochastic claim group (`analysis.validate.stochastic_rows`)."""
    return [uv_step(), msharp_split(), heavy_ball()]
