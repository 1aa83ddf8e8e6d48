"""Figure 2. Gradient regularization lowers the effective initialization, but not uniformly.

Claim: exact GR, F-GR, B-GR and SAM all end at `alpha_eff(inf) < alpha`
(towards the rich regime, docs/theory.md), yet on the default noiseless sparse
problem their test error against `alpha` is not below gradient flow's:
`alpha_eff` shrinks most on the coordinates that carry the signal (the drift
`c = 4 gamma g g_+` is largest where `|g|` is), and a smaller `alpha_i` there
penalises exactly those coordinates in `Q_{alpha_eff}`. Panel (b) separates
the two effects: at the same geometric-mean `alpha_eff(inf)`, the
regularized runs lie above gradient flow's curve `argmin Q_alpha` (uniform
`alpha`, `dln.solve_dual`).

Each curve is the mean over seeds of the default problem (`make_problem(seed=s)`),
the band the min-max over seeds. Flows stop at train loss `1e-8 L(0)`: the
change in `beta` below that is `O(sqrt(1e-8))` relative, far below the
differences shown (SAM: `1e-6 L(0)`, see `LOSS_TOL_SAM`). One `dln.run` per algorithm family, hyperparameters as
per-run arrays over (configuration, seed, alpha).
"""
import numpy as np

import dln

from . import _common as C

NAME = "fig02_gr_rich"

GAMMA = 0.5          # GR strength of GR, F-GR, B-GR
EPS = (0.1, 1.0)     # F-GR ascent steps
EPS_B = 1.0          # B-GR ascent step
RHO = 0.02           # SAM radius
LOSS_TOL = 1e-8
#: SAM's normalized field is stiff near the minimum: stepping on from 1e-6 to 1e-8 costs 3x the steps and
#: changes its test error by < 0.2% and alpha_eff by < 0.03% (measured at alpha = 0.02 and 0.05)
LOSS_TOL_SAM = 1e-6
#: ... and where rho is comparable to alpha it creeps towards collapse for 1e4+ steps: such runs stop here
#: and are reported as not converged (excluded from the means, named in the legend)
MAX_STEPS_SAM = 2000


def families(S, A, quick=False):
    """(labels, colours, styles, algorithm, (loss_tol, max_steps)) per batched run; configurations ordered
    as the labels."""
    return [
        (["GF", rf"GR $\gamma={GAMMA}$"], ["GF", "GR"], ["o-", "s-"], dln.GR(C.per_config([0.0, GAMMA], S, A)),
         (LOSS_TOL, None)),
        ([rf"F-GR $\gamma={GAMMA}$, $\epsilon={e}$" for e in EPS] + [rf"B-GR $\gamma={GAMMA}$, $\epsilon={EPS_B}$"],
         ["F-GR"] * len(EPS) + ["B-GR"], ["^-", "v--", "D-"],
         dln.FGR(GAMMA, C.per_config(list(EPS) + [-EPS_B], S, A)), (LOSS_TOL, None)),
        ([rf"SAM $\rho={RHO}$"], ["SAM"], ["P-"], dln.SAM(RHO), (LOSS_TOL_SAM, MAX_STEPS_SAM // (2 if quick else 1))),
    ]


def main(out_dir, quick=False, formats=None):
    seeds = [0, 1] if quick else [0, 1, 2, 3, 4]
    alphas = np.logspace(-2, 1, 4) if quick else np.logspace(np.log10(C.ALPHA_MIN_SIM), 1, 13)
    S, A = len(seeds), len(alphas)
    base = dln.make_problem(seed=seeds)
    curves = []  # (label, colour, style, err (S, A), ratio (S, A), status (S, A))
    for labels, cols, styles, alg, (tol, cap) in C.progress(families(S, A, quick), NAME):
        k = len(labels)
        problem, sidx, alpha = C.stacked(base, k, alphas)
        res = dln.run(problem, alg, C.flow(**({"max_steps": cap} if cap else {})), alpha=alpha, loss_tol=tol)
        done = (res.status == "converged")[:, None]  # the limit beta(inf) only where the run interpolates
        err = C.test_error(base, sidx, np.where(done, res.final.beta, np.nan)).reshape(k, S, A)
        ratio = C.geo_ratio(res.final.alpha_eff, alpha).reshape(k, S, A)
        status = res.status.reshape(k, S, A)
        curves += [(labels[i], cols[i], styles[i], err[i], ratio[i], status[i]) for i in range(k)]

    grid = np.logspace(np.log10(alphas[0]) - 1, np.log10(alphas[-1]), 40)
    dp, dsidx, dalpha = C.stacked(base, 1, grid)
    dual = dln.solve_dual(dp, dalpha)
    dual_err = C.test_error(base, dsidx, dual.beta).reshape(S, -1).mean(axis=0)

    with C.figure([["err", "eff"]], (9, 3.6)) as (fig, ax):
        for label, col, style, err, ratio, status in curves:
            m, lo, hi = C.nan_stats(err)
            failed = (status != "converged").any(axis=0)
            m, lo, hi = (np.where(failed, np.nan, x) for x in (m, lo, hi))  # a mean over all seeds or none
            if failed.any():
                label += rf" ({', '.join(sorted(set(status[:, failed].ravel()) - {'converged'}))} at $\alpha\leq${alphas[failed].max():.2g})"
            ax["err"].loglog(alphas, m, style, color=C.COLORS[col], label=label, mfc="none" if "--" in style else None)
            ax["err"].fill_between(alphas, lo, hi, color=C.COLORS[col],
                                   alpha=0.12, lw=0)
            ax["eff"].loglog(alphas * np.exp(C.nan_stats(np.log(ratio))[0]), m, style[0], color=C.COLORS[col],
                             mfc="none" if "--" in style else None)
        ax["eff"].loglog(grid, dual_err, color="k", lw=1, label=r"$\arg\min\,Q_\alpha$, uniform $\alpha$ (dual)")
        ax["err"].set(xlabel=r"initialization scale $\alpha$", ylabel=C.TEST_LABEL + f", mean of {S} seeds")
        ax["err"].legend(loc="lower right", ncol=1)
        ax["eff"].set(xlabel=r"effective scale $\bar\alpha_{\rm eff}(\infty)$ (geometric mean over $i$)",
                      ylabel=C.TEST_LABEL, xlim=(alphas[0] / 3, alphas[-1] * 1.5))
        ax["eff"].legend(loc="lower right")
        C.panel_labels(ax, ["err", "eff"])
        paths = C.save(fig, out_dir, NAME, formats)

    ref = C.nan_stats(curves[0][3])[0][-1]
    notes = [f"mean test error at alpha = {C.fmt(alphas[-1])} (kernel side): GF {C.fmt(ref)}; "
             f"alpha where the mean error falls to half of that ({C.fmt(ref / 2)}):"]
    for label, _, _, err, ratio, status in curves:
        m = np.where((status != "converged").any(axis=0), np.nan, C.nan_stats(err)[0])
        bad = int(np.sum(status != "converged"))
        notes.append(f"  {strip(label)}: alpha_1/2 = {C.fmt(C.crossing(alphas[::-1], m[::-1], ref / 2))}; "
                     f"error at alpha = {C.fmt(alphas[0])}: {C.fmt(m[0])}; at alpha = {C.fmt(alphas[A // 2])}: "
                     f"{C.fmt(m[A // 2])}; mean alpha_eff/alpha at alpha = {C.fmt(alphas[0])}: "
                     f"{C.fmt(np.exp(C.nan_stats(np.log(ratio[:, :1]))[0][0]))}" + (f"; {bad} runs failed" if bad else ""))
    return paths + [C.write_notes(out_dir, NAME, notes)]


def strip(label):
    """A legend label without mathtext, for the notes."""
    for a, b in ((r"$\gamma=", "gamma="), (r"$\epsilon=", "eps="), (r"$\rho=", "rho="), ("$", "")):
        label = label.replace(a, b)
    return label
