"""Figure 5. SAM, USAM and F-GR: `gamma = eps = rho`, and where normalized SAM departs.

Claim: unnormalized SAM, `D = grad L(theta + rho grad L)`, is F-GR with
`gamma = eps = rho`, so its effective initialization follows the F-GR
prediction `log(alpha / alpha_eff(inf)) ~ rho K(rho)` and, for small `rho`,
that of exact GR with `gamma = rho`. Normalized SAM is F-GR with
`gamma = eps = rho / ||grad_theta L||`: its ascent step grows without bound as
the loss falls (panel c), so it shrinks `alpha_eff` more than USAM at the same
`rho`, and once `rho` is several times `alpha` it drives `(u, v)` to 0 without
fitting the data (marked x: the run did not converge).

Points: simulation (`dln.run`, one batched run per algorithm over `rho`,
geometric mean over coordinates). Lines: first order in `rho` along the
gradient-flow trajectory, `rho int 4 g g_+(eps) dt`
(`figures/_common.drift_integral`), with `eps = rho` (USAM) and `eps -> 0`
(GR). SAM has no such line: its ascent step `rho / ||grad L||` is not small
along the gradient-flow trajectory (it diverges as the loss falls), so there
is no first-order expansion in `rho`.
"""
import numpy as np

import dln

from . import _common as C

NAME = "fig05_sam"

ALPHA = 0.1
LOSS_TOL = 1e-8
#: SAM is stiff near its minimum: stopping at 1e-6 instead of 1e-8 changes its alpha_eff by < 0.03% (measured)
LOSS_TOL_SAM = 1e-6


def main(out_dir, quick=False, formats=None):
    problem = dln.make_problem(seed=0)
    X, y = problem.X[0], problem.y[0]
    rho = np.array([0.01, 0.1, 1.0]) if quick else np.logspace(-3, 0, 10)
    rho_line = np.logspace(-3.3, 0.2, 40)
    ts = np.concatenate([[0.0], np.logspace(-4, 3, 120 if quick else 250)])
    cap = C.flow(max_time=200.0, max_steps=800 if quick else 4000)

    jobs = ["GF", "GR", "USAM", "SAM"]
    bar = C.progress(jobs, NAME)
    gf = dln.run(problem, dln.GD(), C.flow(), alpha=ALPHA, save_at=ts, loss_tol=1e-10)
    bar.update()
    runs = {"GR": dln.run(problem, dln.GR(rho), C.flow(), alpha=ALPHA, loss_tol=LOSS_TOL)}
    bar.update()
    runs["USAM"] = dln.run(problem, dln.USAM(rho), C.flow(), alpha=ALPHA, loss_tol=LOSS_TOL)
    bar.update()
    runs["SAM"] = dln.run(problem, dln.SAM(rho), cap, alpha=ALPHA, loss_tol=LOSS_TOL_SAM, save_at=ts)
    bar.update()
    bar.close()

    t, beta, aeff = ts, gf.saved.beta[0], gf.saved.alpha_eff[0]
    Km = lambda e: np.mean(C.drift_integral(X, y, t, beta, aeff, e))  # noqa: E731
    theory = {"GR": rho_line * Km(0.0), "USAM": np.array([r * Km(r) for r in rho_line])}
    labels = {"GR": r"exact GR, $\gamma=\rho$", "USAM": r"USAM $\equiv$ F-GR, $\gamma=\epsilon=\rho$",
              "SAM": r"SAM, $\gamma=\epsilon=\rho/\|\nabla L\|$"}
    marks = {"GR": "s", "USAM": "^", "SAM": "o"}
    ok = {k: r.status == "converged" for k, r in runs.items()}

    with C.figure([["aeff", "err", "eps"]], (11, 3.5)) as (fig, ax):
        a = ax["aeff"]
        for k, r in runs.items():
            val = -np.log(C.geo_ratio(r.final.alpha_eff, ALPHA))
            if k in theory:
                a.loglog(rho_line, theory[k], color=C.COLORS[k], lw=1)
            a.loglog(rho[ok[k]], val[ok[k]], marks[k], color=C.COLORS[k], mfc="none", label=labels[k])
            bad = ~ok[k] & np.isfinite(val) & (val > 0)
            if bad.any():
                a.loglog(rho[bad], val[bad], "x", color=C.COLORS[k], ms=7, mew=1.5, label=f"{k}: not converged")
        a.plot([], [], color="0.3", lw=1, label="first order along GF")
        a.set(xlabel=r"radius $\rho$", ylabel=r"$\log(\alpha/\alpha_{\rm eff}(\infty))$, mean over $i$",
              ylim=(1e-5, None))
        a.set_title(rf"$\alpha={ALPHA}$", loc="right")
        a.legend(loc="upper left")

        a = ax["err"]
        a.axhline(gf.final.test_loss[0], color="k", lw=1, label="gradient flow")
        for k, r in runs.items():
            err = r.final.test_loss
            a.semilogx(rho[ok[k]], err[ok[k]], marks[k] + "-", color=C.COLORS[k], mfc="none", label=labels[k])
            if (~ok[k]).any():
                a.semilogx(rho[~ok[k]], np.minimum(err[~ok[k]], 1.0), "x", color=C.COLORS[k], ms=7, mew=1.5,
                           label=f"{k}: not converged (loss {r.final.train_loss[~ok[k]].min():.1g}+)")
        a.set(xlabel=r"radius $\rho$", ylabel=C.TEST_LABEL)
        a.legend(loc="upper left")

        a = ax["eps"]
        sam = runs["SAM"]
        show = [i for i in range(len(rho)) if rho[i] in (rho[0], rho[len(rho) // 2], rho[-1])]
        for j, i in enumerate(show):
            col = ["#0072B2", "#009E73", "#CC79A7"][j % 3]
            live = sam.t[i] <= sam.t_final[i]  # later saves repeat the final state
            a.loglog(sam.t[i][live], rho[i] / sam.saved.grad_norm[i][live], color=col,
                     label=rf"SAM $\rho={rho[i]:.2g}$ ({sam.status[i]})")
            a.axhline(rho[i], color=col, ls="--", lw=0.8)
        a.plot([], [], "k--", lw=0.8, label=r"USAM: $\epsilon=\rho$")
        a.set(xlabel=r"time $t$", ylabel=r"ascent step $\epsilon(t)=\rho/\|\nabla_\theta L\|$", xlim=(1e-2, 3e2))
        a.legend(loc="upper left")
        C.panel_labels(ax, ["aeff", "err", "eps"])
        paths = C.save(fig, out_dir, NAME, formats)

    val = {k: -np.log(C.geo_ratio(r.final.alpha_eff, ALPHA)) for k, r in runs.items()}
    rel = np.abs(val["USAM"] / val["GR"] - 1)
    depart = rho[np.argmax(np.abs(val["SAM"] / val["USAM"] - 1) > 0.5)] if np.any(
        np.abs(val["SAM"] / val["USAM"] - 1) > 0.5) else np.nan
    notes = [
        f"alpha = {ALPHA}: USAM vs exact GR (gamma = rho), relative gap in log(alpha/alpha_eff): "
        f"{C.fmt(rel[0])} at rho = {C.fmt(rho[0])} -> {C.fmt(rel[-1])} at rho = {C.fmt(rho[-1])}",
        f"SAM departs from USAM by > 50% in log(alpha/alpha_eff) from rho = {C.fmt(depart)}; "
        f"SAM/USAM ratio at rho = {C.fmt(rho[0])}: {C.fmt(val['SAM'][0] / val['USAM'][0])}, at rho = "
        f"{C.fmt(rho[-1])}: {C.fmt(val['SAM'][-1] / val['USAM'][-1])}",
        f"SAM runs not converged: rho = {[C.fmt(r) for r in rho[~ok['SAM']]]} (statuses "
        f"{list(map(str, runs['SAM'].status[~ok['SAM']]))}, alpha_eff/alpha "
        f"{[C.fmt(x) for x in C.geo_ratio(runs['SAM'].final.alpha_eff, ALPHA)[~ok['SAM']]]})",
        f"test error GF {C.fmt(gf.final.test_loss[0], 3)}; at rho = {C.fmt(rho[-1])}: GR "
        f"{C.fmt(runs['GR'].final.test_loss[-1], 3)}, USAM {C.fmt(runs['USAM'].final.test_loss[-1], 3)}, "
        f"SAM {C.fmt(runs['SAM'].final.test_loss[-1], 3)}",
    ]
    return paths + [C.write_notes(out_dir, NAME, notes)]
