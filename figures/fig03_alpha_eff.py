"""Figure 3. The effective initialization `alpha_eff(inf) = alpha exp(-int_0^inf c dt)`.

Claim: every GR-family flow keeps the mirror structure, with drift
`c = 4 gamma g g_+` (docs/theory.md), so `alpha_eff(inf) / alpha` falls below 1 as
`gamma` grows, faster for the forward difference (F-GR, `g_+` taken after an
ascent step `eps`) than for exact GR (`eps -> 0`), and slower, even above 1 for
large `eps`, for the backward one (B-GR). Points: `alpha_eff(inf) / alpha`
from simulation (`dln.run`, geometric mean over the `d` coordinates). Lines:
the first-order-in-`gamma` prediction `exp(-gamma K(eps))`, with
`K(eps) = mean_i int_0^inf 4 g_i g_{+,i} dt` integrated (trapezoid rule) along
the *gradient-flow* trajectory: exact in `eps`, first order in `gamma`
(written from the formulas in `figures/_common.drift_integral`, not from
`dln`'s algorithms). Panel (c): the same per coordinate, which shows that the
shrinkage is largest on the support of `beta*`.
"""
import numpy as np

import dln

from . import _common as C

NAME = "fig03_alpha_eff"

ALPHA = 0.1
GAMMA = 1.0          # for the eps sweep
EPS = 0.1            # for the gamma sweep
LOSS_TOL = 1e-10


def gf_trajectory(problem, alpha, quick):
    """Gradient flow saved on a log grid (from t = 0) until it has converged."""
    t = np.concatenate([[0.0], np.logspace(-4, 4, 120 if quick else 300)])
    res = dln.run(problem, dln.GD(), C.flow(), alpha=alpha, save_at=t, loss_tol=LOSS_TOL)
    return t, res.saved.beta[0], res.saved.alpha_eff[0], res


def main(out_dir, quick=False, formats=None):
    problem = dln.make_problem(seed=0)
    X, y = problem.X[0], problem.y[0]
    support = problem.beta_star[0] != 0
    eps_sim = np.logspace(-2, np.log10(3), 3 if quick else 8)
    gam_sim = np.logspace(-2, np.log10(3), 3 if quick else 8)
    eps_line = np.logspace(-2.3, np.log10(4), 60)
    gam_line = np.logspace(-2.3, np.log10(4), 60)

    steps = ["gf", "eps", "gamma"]
    bar = C.progress(steps, NAME)
    t, beta, aeff, gf = gf_trajectory(problem, ALPHA, quick)
    bar.update()
    K = lambda e: C.drift_integral(X, y, t, beta, aeff, e)  # noqa: E731, per coordinate, per unit gamma
    Km = lambda e: np.mean(K(e))  # noqa: E731
    # one batched run over eps > 0 (F-GR) and eps < 0 (B-GR)
    eps_all = np.concatenate([eps_sim, -eps_sim])
    r_eps = dln.run(problem, dln.FGR(GAMMA, eps_all), C.flow(), alpha=ALPHA, loss_tol=LOSS_TOL)
    bar.update()
    # one batched run over gamma for exact GR, F-GR and B-GR
    G = len(gam_sim)
    r_gr = dln.run(problem, dln.GR(gam_sim), C.flow(), alpha=ALPHA, loss_tol=LOSS_TOL)
    r_fd = dln.run(problem, dln.FGR(np.tile(gam_sim, 2), np.repeat([EPS, -EPS], G)), C.flow(), alpha=ALPHA,
                   loss_tol=LOSS_TOL)
    bar.update()
    bar.close()
    ratio = lambda r: C.geo_ratio(r.final.alpha_eff, ALPHA)  # noqa: E731

    with C.figure([["eps", "gamma", "coord"]], (11, 3.5)) as (fig, ax):
        a = ax["eps"]
        re = ratio(r_eps)
        a.semilogx(eps_line, np.exp(-GAMMA * np.array([Km(e) for e in eps_line])), color=C.COLORS["F-GR"],
                   label=r"F-GR, first order: $e^{-\gamma K(\epsilon)}$")
        a.semilogx(eps_line, np.exp(-GAMMA * np.array([Km(-e) for e in eps_line])), color=C.COLORS["B-GR"],
                   label=r"B-GR, first order: $e^{-\gamma K(-\epsilon)}$")
        a.semilogx(eps_sim, re[:len(eps_sim)], "^", color=C.COLORS["F-GR"], label="F-GR (simulated)")
        a.semilogx(eps_sim, re[len(eps_sim):], "v", color=C.COLORS["B-GR"], label="B-GR (simulated)")
        a.axhline(np.exp(-GAMMA * Km(0.0)), ls="--", lw=1, color=C.COLORS["GR"], label=r"exact GR ($\epsilon\to0$)")
        a.axhline(1, color="k", lw=0.8, label="gradient flow")
        a.set(xlabel=r"ascent step $\epsilon$", ylabel=r"$\alpha_{\rm eff}(\infty)/\alpha$ (geometric mean over $i$)")
        a.set_title(rf"$\alpha={ALPHA}$, $\gamma={GAMMA}$", loc="right")
        a.legend(loc="upper left")

        a = ax["gamma"]
        for lab, col, mk, e, rr in (("exact GR", "GR", "s", 0.0, ratio(r_gr)),
                                    (rf"F-GR $\epsilon={EPS}$", "F-GR", "^", EPS, ratio(r_fd)[:G]),
                                    (rf"B-GR $\epsilon={EPS}$", "B-GR", "v", -EPS, ratio(r_fd)[G:])):
            a.loglog(gam_line, gam_line * Km(e), color=C.COLORS[col], lw=1)
            a.loglog(gam_sim, -np.log(rr), mk, color=C.COLORS[col], mfc="none", label=lab)
        a.plot([], [], color="0.3", lw=1, label=r"first order: $\gamma K(\epsilon)$")
        a.set(xlabel=r"GR strength $\gamma$", ylabel=r"$\log(\alpha/\alpha_{\rm eff}(\infty)) = \int_0^\infty c\,dt$")
        a.set_title(rf"$\alpha={ALPHA}$", loc="right")
        a.legend(loc="upper left")

        a = ax["coord"]
        i = len(eps_sim) // 2
        pred = np.exp(-GAMMA * K(eps_sim[i]))
        sim = r_eps.final.alpha_eff[i] / ALPHA
        a.loglog(pred[~support], sim[~support], ".", color="0.5", label="off the support")
        a.loglog(pred[support], sim[support], "o", color=C.COLORS["F-GR"], label=r"support of $\beta^*$")
        lo = min(pred.min(), sim.min()) * 0.9
        a.loglog([lo, 1.05], [lo, 1.05], "k-", lw=0.8)
        a.set(xlabel=r"first order $e^{-\gamma K_i(\epsilon)}$", ylabel=r"simulated $\alpha_{{\rm eff},i}(\infty)/\alpha$")
        a.set_title(rf"per coordinate, F-GR $\gamma={GAMMA}$, $\epsilon={eps_sim[i]:.2g}$", loc="right")
        a.legend(loc="upper left")
        C.panel_labels(ax, ["eps", "gamma", "coord"])
        paths = C.save(fig, out_dir, NAME, formats)

    rg = ratio(r_gr)
    notes = [
        f"alpha = {ALPHA}, gamma = {GAMMA}: alpha_eff/alpha = {C.fmt(re[0], 3)} (F-GR eps {C.fmt(eps_sim[0])}) -> "
        f"{C.fmt(re[len(eps_sim) - 1], 3)} (F-GR eps {C.fmt(eps_sim[-1])}); B-GR {C.fmt(re[len(eps_sim)], 3)} -> "
        f"{C.fmt(re[-1], 3)}; exact-GR first order {C.fmt(np.exp(-GAMMA * Km(0.0)), 3)}",
        f"first-order prediction vs simulation, max |log ratio| error: eps sweep "
        f"{C.fmt(np.max(np.abs(np.log(re) + GAMMA * np.array([Km(e) for e in eps_all]))))}; "
        f"exact GR at gamma = {C.fmt(gam_sim[0])}: {C.fmt(abs(np.log(rg[0]) + gam_sim[0] * Km(0.0)))}, "
        f"at gamma = {C.fmt(gam_sim[-1])}: {C.fmt(abs(np.log(rg[-1]) + gam_sim[-1] * Km(0.0)))}",
        f"per coordinate (F-GR eps {eps_sim[i]:.2g}): alpha_eff/alpha on the support {C.fmt(np.median(sim[support]), 3)} "
        f"(median) vs off it {C.fmt(np.median(sim[~support]), 3)}",
        f"statuses: {sorted(map(str, set(np.concatenate([gf.status, r_eps.status, r_gr.status, r_fd.status]))))}",
    ]
    return paths + [C.write_notes(out_dir, NAME, notes)]
