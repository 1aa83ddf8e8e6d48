"""Figure 7. Implicit gradient regularization: gradient descent follows the modified flow to O(eta^2).

Claim (Barrett & Dherin 2021): gradient descent with step `eta` stays
`O(eta)` from gradient flow but `O(eta^2)` from the flow of
`L + (eta/4) ||grad L||^2`, i.e. exact GR with `gamma = eta/2`
(`dln.IGR(eta)`), at a fixed time `T`. Panel (a): `||beta_GD(T) - beta(T)||`
against `eta` on log axes, with least-squares slopes (expected 1 and 2).
Panel (b): the effective initialization, which gradient flow conserves: both
gradient descent (`u v` times `1 - 4 eta^2 g^2` per step) and the modified
flow (drift `c = 2 eta g^2`) shrink it by `O(eta)`, and they agree to `O(eta^2)`.

One batched `Steps(eta)` run over all `eta` (each `eta = T / 2^k`, so `T` is a
step), one batched `Flow` run of `IGR(eta)`, one gradient flow; flows with
`rtol = 1e-10` (quick: `1e-8`), whose own error at `T` (2e-11, ~2e-9 measured
against `rtol = 1e-12`) is far below the smallest error shown.
"""
import numpy as np

import dln

from . import _common as C

NAME = "fig07_igr"

ALPHA = 0.3
T = 4.0


def slope(x, y):
    """Least-squares slope of `log y` on `log x`."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def main(out_dir, quick=False, formats=None):
    problem = dln.make_problem(seed=0)
    k = np.arange(6, 10 if quick else 14)
    eta = T / 2.0 ** k
    flow = dln.Flow(rtol=1e-8 if quick else 1e-10, atol=1e-15, max_time=T)
    jobs = C.progress(["GD", "GF", "IGR"], NAME)
    gd = dln.run(problem, dln.GD(), dln.Steps(eta, max_steps=int(2 ** k[-1])), alpha=ALPHA, save_at=[T],
                 loss_tol=0)
    jobs.update()
    gf = dln.run(problem, dln.GD(), flow, alpha=ALPHA, save_at=[T], loss_tol=0)
    jobs.update()
    igr = dln.run(problem, dln.IGR(eta), flow, alpha=ALPHA, save_at=[T], loss_tol=0)
    jobs.update()
    jobs.close()
    assert np.allclose(gd.t[:, 0], T) and np.allclose(igr.t[:, 0], T)
    b_gd, b_gf, b_igr = gd.saved.beta[:, 0], gf.saved.beta[:, 0], igr.saved.beta[:, 0]
    e_gf = np.linalg.norm(b_gd - b_gf, axis=1)
    e_igr = np.linalg.norm(b_gd - b_igr, axis=1)
    s_gf, s_igr = slope(eta, e_gf), slope(eta, e_igr)
    lg = lambda r: -np.log(C.geo_ratio(r.saved.alpha_eff[:, 0], ALPHA))  # noqa: E731
    a_gd, a_igr = lg(gd), lg(igr)
    e_a = np.abs(a_gd - a_igr)

    with C.figure([["err", "aeff"]], (8.5, 3.5)) as (fig, ax):
        a = ax["err"]
        a.loglog(eta, e_gf, "o", color=C.COLORS["GF"], label=rf"GD vs gradient flow, slope {s_gf:.2f}")
        a.loglog(eta, e_igr, "s", color=C.COLORS["IGR"], label=rf"GD vs modified flow IGR($\eta$), slope {s_igr:.2f}")
        for e, s, col in ((e_gf, s_gf, "GF"), (e_igr, s_igr, "IGR")):
            c = np.exp(np.mean(np.log(e) - s * np.log(eta)))
            a.loglog(eta, c * eta ** s, "-", color=C.COLORS[col], lw=0.8)
        a.set(xlabel=r"step size $\eta$", ylabel=rf"$\|\beta_{{\rm GD}}(T)-\beta(T)\|$, $T={T:g}$")
        a.set_title(rf"$\alpha={ALPHA}$", loc="right")
        a.legend(loc="upper left")
        a = ax["aeff"]
        a.loglog(eta, a_gd, "o", color=C.COLORS["GD"], label="gradient descent (discrete)")
        a.loglog(eta, a_igr, "+", color=C.COLORS["IGR"], ms=8, label=r"modified flow IGR($\eta$)")
        a.loglog(eta, e_a, "s", mfc="none", color=C.COLORS["IGR"],
                 label=rf"difference, slope {slope(eta, e_a):.2f}")
        a.plot([], [], " ", label=r"gradient flow: 0 ($\alpha_{\rm eff}$ conserved)")
        a.set(xlabel=r"step size $\eta$", ylabel=r"$\log(\alpha/\alpha_{\rm eff}(T))$, mean over $i$")
        a.legend(loc="upper left")
        C.panel_labels(ax, ["err", "aeff"])
        paths = C.save(fig, out_dir, NAME, formats)

    notes = [
        f"alpha = {ALPHA}, T = {T:g}, eta = {C.fmt(eta[-1])} .. {C.fmt(eta[0])}: fitted slope of "
        f"||beta_GD - beta_GF|| = {s_gf:.3f} (expect 1), of ||beta_GD - beta_IGR|| = {s_igr:.3f} (expect 2)",
        f"at eta = {C.fmt(eta[-1])}: error vs GF {C.fmt(e_gf[-1])}, vs IGR {C.fmt(e_igr[-1])} "
        f"({C.fmt(e_gf[-1] / e_igr[-1])}x smaller)",
        f"log(alpha/alpha_eff(T)): GD {C.fmt(a_gd[-1])} vs IGR flow {C.fmt(a_igr[-1])} at eta = {C.fmt(eta[-1])}; "
        f"difference slope {slope(eta, e_a):.3f}",
    ]
    return paths + [C.write_notes(out_dir, NAME, notes)]
