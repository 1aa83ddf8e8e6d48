"""Figure 4. Trajectories at small `alpha`: incremental (saddle-to-saddle) learning, GF against F-GR.

Claim: from a small initialization the coordinates of `beta(t)` are learned
one after another, each after a plateau of the training loss whose length
grows like `log(1/alpha)` (saddle-to-saddle dynamics; the default
problem's inputs with planted coefficients of distinct sizes, `BETA_STAR`); `alpha_eff(t)` stays
at `alpha` under gradient flow (`c = 0`) and falls under F-GR, coordinate by
coordinate, mostly while a coordinate is being learned (`c = 4 gamma g g_+`
is large where `|g|` is), which delays the jumps and leaves the largest coordinates with the
smallest `alpha_eff`. (Near `beta = 0`, `u'/u = -2 g - 4 gamma g^2 + O(eps)`: a
coordinate escapes only while `2 gamma |g_i| < 1`; with `gamma = 0.5` the
largest coordinate here is never learned.)
One batched `dln.run` of `FGR(gamma=[0, gamma], eps)` (`gamma = 0` is
gradient flow), saved on a logarithmic time grid.
"""
import numpy as np

import dln

from . import _common as C

NAME = "fig04_trajectories"

#: the planted coefficients: distinct magnitudes, so that the coordinates are learned one at a time
BETA_STAR = (1.0, -0.5, 0.25, -0.125, 0.0625)


def staircase_problem(seed=0):
    """The default problem's inputs (`make_problem(seed)`) with `beta*` on its support replaced by
    `BETA_STAR`, largest first, and `y = X beta*` recomputed (noiseless)."""
    p = dln.make_problem(seed=seed)
    support = np.nonzero(p.beta_star[0])[0]
    bs = np.zeros(p.d)
    bs[support] = BETA_STAR
    return dln.Problem(p.X[0], p.X[0] @ bs, p.X_test[0], p.X_test[0] @ bs, bs)

GAMMA, EPS = 0.1, 0.5
LOSS_TOL = 1e-8


def main(out_dir, quick=False, formats=None):
    alpha = 1e-2 if quick else 1e-4
    problem = staircase_problem()
    support = np.nonzero(problem.beta_star[0])[0]
    t = np.logspace(-1, 4.5, 120 if quick else 400)
    res = dln.run(problem, dln.FGR(np.array([0.0, GAMMA]), EPS), C.flow(), alpha=alpha, save_at=t,
                  loss_tol=LOSS_TOL)
    beta, loss, aeff = res.saved.beta, res.saved.train_loss, res.saved.alpha_eff
    tmax = min(t[-1], 2 * res.t_final.max())
    cols = [C.COLORS[k] for k in ("GR", "F-GR", "B-GR", "SAM", "USAM", "IGR")]
    names = ["GF", rf"F-GR $\gamma={GAMMA}$, $\epsilon={EPS}$"]

    with C.figure([["b0", "b1"], ["loss", "aeff"]], (9, 6)) as (fig, ax):
        for k, key in enumerate(("b0", "b1")):
            a = ax[key]
            other = np.setdiff1d(np.arange(problem.d), support)
            a.semilogx(t, beta[k][:, other], color="0.75", lw=0.5)
            for j, i in enumerate(support):
                a.semilogx(t, beta[k][:, i], color=cols[j % len(cols)], lw=1.5,
                           label=rf"$\beta_{{{i}}}$, $\beta^*_{{{i}}}={problem.beta_star[0, i]:g}$")
            a.plot([], [], color="0.75", lw=0.5, label=r"$\beta_i$ off the support")
            a.set(xlabel=r"time $t$", ylabel=r"$\beta_i(t)$", xlim=(t[0], tmax))
            a.set_title(f"{names[k]}, " + rf"$\alpha={alpha:g}$", loc="right")
            if k == 0:
                a.legend(loc="upper left", ncol=1)
        a = ax["loss"]
        for k, (col, ls) in enumerate((("GF", "-"), ("F-GR", "--"))):
            a.loglog(t, loss[k], ls, color=C.COLORS[col], label=names[k])
            a.loglog(t, res.saved.test_loss[k], ls, color=C.COLORS[col], lw=0.8, alpha=0.6)
        a.plot([], [], "k-", lw=0.8, alpha=0.6, label="(thin: test loss)")
        a.set(xlabel=r"time $t$", ylabel=r"training loss $L(\beta(t))$", xlim=(t[0], tmax))
        a.legend(loc="lower left")
        a = ax["aeff"]
        a.loglog(t, C.geo_ratio(aeff[0], alpha), "-", color=C.COLORS["GF"], label=r"GF (conserved: $c=0$)")
        a.loglog(t, C.geo_ratio(aeff[1], alpha), "--", color=C.COLORS["F-GR"], lw=2,
                 label="F-GR, geometric mean over $i$")
        for j, i in enumerate(support):
            a.loglog(t, aeff[1][:, i] / alpha, color=cols[j % len(cols)], lw=1)
        a.plot([], [], color="0.3", lw=1, label="F-GR, support coordinates")
        a.set(xlabel=r"time $t$", ylabel=r"$\alpha_{\rm eff}(t)/\alpha$", xlim=(t[0], tmax))
        a.legend(loc="lower left")
        C.panel_labels(ax, ["b0", "b1", "loss", "aeff"])
        paths = C.save(fig, out_dir, NAME, formats)

    def jumps(b):
        """Time at which each support coordinate reaches half its final value."""
        fin = b[-1, support]
        return [t[np.argmax(np.abs(b[:, i]) >= abs(f) / 2)] for i, f in zip(support, fin)]

    notes = [
        f"alpha = {alpha:g}: time to reach half the final value per support coordinate {list(map(int, support))}: "
        f"GF {[C.fmt(x) for x in jumps(beta[0])]}, F-GR {[C.fmt(x) for x in jumps(beta[1])]}",
        f"converged at t = GF {C.fmt(res.t_final[0])}, F-GR {C.fmt(res.t_final[1])}; final test loss GF "
        f"{C.fmt(res.final.test_loss[0])}, F-GR {C.fmt(res.final.test_loss[1])}",
        f"alpha_eff(inf)/alpha under F-GR: geometric mean {C.fmt(C.geo_ratio(res.final.alpha_eff[1], alpha), 3)}, "
        f"support coordinates {[C.fmt(x, 2) for x in res.final.alpha_eff[1, support] / alpha]}; GF "
        f"{C.fmt(C.geo_ratio(res.final.alpha_eff[0], alpha), 6)}",
    ]
    return paths + [C.write_notes(out_dir, NAME, notes)]
