"""Figure 1. The potential `q` and the kernel-to-rich transition of gradient flow.

Claim: `Q_alpha(beta) = sum_i alpha^2 q(beta_i / alpha^2)` behaves like
`||beta||_2^2 / (4 alpha^2)` for large `alpha` (since `q(z) ~ z^2/4` near 0) and
like a weighted l1 norm for small `alpha` (`q(z) ~ |z| (log|z| - 1)` at
infinity), so the limit of gradient flow moves from the minimum-l2 to the
minimum-l1 interpolator as `alpha` goes from 1e2 to 1e-6, and on the default
sparse problem its test error falls from the kernel level to ~0.

Lines: `argmin Q_alpha` among interpolators (`dln.solve_dual`); points:
gradient flow simulated (`dln.run`, `Flow`, stopped at train loss
`1e-14 L(0)`, `rtol = 1e-6`).
"""
import numpy as np

import dln

from . import _common as C

NAME = "fig01_potential"


def main(out_dir, quick=False, formats=None):
    problem = dln.make_problem(seed=0)
    z = np.logspace(-3, 4, 300)
    alphas = np.logspace(-6, 2, 17 if quick else 49)
    sim_alphas = np.logspace(-2, 2, 3) if quick else np.logspace(-5, 2, 15)

    dual = dln.solve_dual(problem, alphas)
    b1, b2 = dln.min_l1(problem)[0], dln.min_l2(problem)[0]
    res = dln.run(problem, dln.GD(), C.flow(), alpha=sim_alphas, loss_tol=1e-14)

    def dist(beta, ref):
        return np.linalg.norm(beta - ref, axis=-1) / np.linalg.norm(ref)

    test = lambda beta: problem.loss(np.atleast_2d(beta), test=True)  # noqa: E731
    err_dual, err_sim = test(dual.beta), res.final.test_loss
    err_l1, err_l2 = test(b1)[0], test(b2)[0]
    half = C.crossing(alphas, err_dual, err_dual[-1] / 2)

    with C.figure([["q", "dist", "err"]], (10, 3.2)) as (fig, ax):
        a = ax["q"]
        a.loglog(z, dln.q(z), color="k", lw=2, label=r"$q(z)=2-\sqrt{4+z^2}+z\,\mathrm{arcsinh}(z/2)$")
        a.loglog(z, z ** 2 / 4, "--", color=C.COLORS["GR"], label=r"$z^2/4$ (kernel, $\ell_2$)")
        a.loglog(z, z, ":", color=C.COLORS["F-GR"], label=r"$|z|$ ($\ell_1$ shape)")
        big = z > 3
        a.loglog(z[big], z[big] * (np.log(z[big]) - 1), "-.", color=C.COLORS["B-GR"], lw=1,
                 label=r"$|z|(\log|z|-1)$")
        a.set(xlabel=r"$z=\beta_i/\alpha^2$", ylabel="potential", ylim=(1e-7, 1e5))
        a.legend(loc="upper left")

        a = ax["dist"]
        for ref, lab, col in ((b1, r"to min-$\ell_1$: $\|\beta_\infty-\beta_{\ell_1}\|/\|\beta_{\ell_1}\|$", "F-GR"),
                              (b2, r"to min-$\ell_2$: $\|\beta_\infty-\beta_{\ell_2}\|/\|\beta_{\ell_2}\|$", "GR")):
            a.loglog(alphas, dist(dual.beta, ref), color=C.COLORS[col], label=lab)
            a.loglog(sim_alphas, dist(res.final.beta, ref), "o", mfc="none", color=C.COLORS[col])
        a.plot([], [], "o", mfc="none", color="k", label="gradient flow (simulated)")
        a.annotate(r"floor: stop at $L\leq10^{-14}L(0)$, solver rtol $10^{-6}$", (sim_alphas[-1], 1e-7), xytext=(0, 6),
                   textcoords="offset points", ha="right", fontsize=7)
        a.plot([], [], "-", color="k", label=r"$\arg\min\,Q_\alpha$ (dual)")
        a.set(xlabel=r"initialization scale $\alpha$", ylabel="relative distance")
        a.legend(loc="lower right")

        a = ax["err"]
        a.loglog(alphas, err_dual, color="k", label=r"$\arg\min\,Q_\alpha$ (dual)")
        a.loglog(sim_alphas, err_sim, "o", mfc="none", color="k", label="gradient flow (simulated)")
        a.axhline(err_l2, ls="--", color=C.COLORS["GR"], lw=1, label=r"min-$\ell_2$ interpolator")
        if np.isfinite(half):
            a.axvline(half, color="0.6", lw=0.8)
            a.annotate(rf"error halved at $\alpha\approx${half:.2g}", (half, err_dual[-1] / 2), xytext=(-4, -14),
                       textcoords="offset points", fontsize=7.5, ha="right")
        a.set(xlabel=r"initialization scale $\alpha$", ylabel=C.TEST_LABEL)
        a.legend(loc="lower right", title=rf"min-$\ell_1$: {err_l1:.0e} (exact recovery)" if err_l1 < 1e-12
                 else None, title_fontsize=7.5)
        C.panel_labels(ax, ["q", "dist", "err"])
        paths = C.save(fig, out_dir, NAME, formats)

    gap = np.max(np.abs(res.final.beta - dln.solve_dual(problem, sim_alphas).beta))
    notes = [
        f"test error of GF limit: {fmt_arr(err_dual[[0, -1]])} at alpha = 1e-6 / 1e2 "
        f"(min-l1 {C.fmt(err_l1)}, min-l2 {C.fmt(err_l2)}); halves at alpha = {C.fmt(half)}",
        f"distance to min-l1 at alpha=1e-6: {C.fmt(dist(dual.beta[0], b1))}; "
        f"to min-l2 at alpha=1e2: {C.fmt(dist(dual.beta[-1], b2))}",
        f"simulated GF vs dual prediction: max |beta diff| = {C.fmt(gap)} over alpha in "
        f"[{C.fmt(sim_alphas[0])}, {C.fmt(sim_alphas[-1])}]; statuses {sorted(map(str, set(res.status)))}",
    ]
    return paths + [C.write_notes(out_dir, NAME, notes)]


def fmt_arr(a):
    return " / ".join(C.fmt(x) for x in a)
