"""Figure 6. Flooding keeps regularizing after it reaches the flood level `b`.

Claim: discrete flooding, `D = sign(L - b) grad L`, descends until the loss
reaches `b` and then alternates ascent and descent steps around it; a pair of
such steps is one finite-difference GR step with ascent step `eta`
(docs/theory.md), whose drift shrinks `alpha_eff` at the rate `c = 4 gamma g g_+`
with `gamma = eta/2`, `eps = eta`. Under gradient descent (`b = 0`) `g -> 0`
and `alpha_eff` freezes; under flooding `|g|` stays of order `sqrt(b)`, so
`alpha_eff(t)` keeps falling, the faster the higher `b`.

Wide pale lines: simulation (`dln.run(..., Flooding(b), Steps(eta))`, one batched run
over `b`). Dashed: the F-GR prediction `alpha exp(-int_0^t 2 eta g (g_+ + g_-)/2 dt)`
(forward and backward differences averaged, since ascent and descent steps
alternate), integrated by the trapezoid rule over the saved states of each
run (`figures/_common.drift_integral`), independently of the step-by-step
product `prod_k (1 - 4 eta^2 g_k^2)` that the simulation realises.
"""
import numpy as np

import dln

from . import _common as C

NAME = "fig06_flooding"

ALPHA = 0.1
ETA = 0.05


def main(out_dir, quick=False, formats=None):
    problem = dln.make_problem(seed=0)
    X, y = problem.X[0], problem.y[0]
    b = np.array([0.0, 0.03, 0.1]) if quick else np.array([0.0, 0.01, 0.03, 0.1])
    T = 200.0 if quick else 1000.0
    save = np.concatenate([[0.0], np.logspace(-1, np.log10(T), 80 if quick else 200)])
    res = dln.run(problem, dln.Flooding(b), dln.Steps(ETA, max_steps=int(round(T / ETA))), alpha=ALPHA,
                  loss_tol=0, save_at=save)
    t = res.t
    pred = np.empty_like(res.saved.train_loss)
    for k in C.progress(range(len(b)), NAME):
        beta, aeff = res.saved.beta[k], res.saved.alpha_eff[k]
        logs = [np.mean(C.cumulative_drift(X, y, t[k], beta, aeff, e), axis=1) for e in (ETA, -ETA)]
        pred[k] = np.exp(-(ETA / 2) * (logs[0] + logs[1]) / 2)
    sim = C.geo_ratio(res.saved.alpha_eff, ALPHA)
    cols = ["#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7"]

    with C.figure([["loss", "aeff", "test"]], (11, 3.5)) as (fig, ax):
        for k, bk in enumerate(b):
            lab = "GD ($b=0$)" if bk == 0 else rf"flooding $b={bk:g}$"
            ax["loss"].loglog(t[k][1:], res.saved.train_loss[k][1:], color=cols[k], label=lab)
            if bk > 0:
                ax["loss"].axhline(bk, color=cols[k], ls=":", lw=0.8)
            ax["aeff"].semilogx(t[k][1:], sim[k][1:], color=cols[k], lw=4, alpha=0.3, label=lab)
            ax["aeff"].semilogx(t[k][1:], pred[k][1:], "--", color=cols[k], lw=1.2)
            ax["test"].semilogx(t[k][1:], res.saved.test_loss[k][1:], color=cols[k], label=lab)
        ax["aeff"].plot([], [], "k--", lw=1.2, label=r"F-GR drift, $\gamma=\eta/2$, $\epsilon=\pm\eta$")
        ax["loss"].set(xlabel=r"time $t=\eta k$", ylabel=r"training loss $L(\beta(t))$ (dotted: $b$)",
                       ylim=(1e-8, 1))
        ax["loss"].set_title(rf"$\alpha={ALPHA}$, $\eta={ETA}$", loc="right")
        ax["loss"].legend(loc="lower left")
        ax["aeff"].set(xlabel=r"time $t=\eta k$", ylabel=r"$\alpha_{\rm eff}(t)/\alpha$ (geometric mean over $i$)")
        ax["aeff"].legend(loc="lower left")
        ax["test"].set(xlabel=r"time $t=\eta k$", ylabel=r"test error $L_{\rm test}(\beta(t))$")
        ax["test"].legend(loc="upper right")
        C.panel_labels(ax, ["loss", "aeff", "test"])
        paths = C.save(fig, out_dir, NAME, formats)

    err = np.abs(np.log(pred[:, -1]) - np.log(sim[:, -1])) / np.maximum(np.abs(np.log(sim[:, -1])), 1e-300)
    notes = [f"alpha = {ALPHA}, eta = {ETA}, t = {T:g}: alpha_eff/alpha (sim / F-GR prediction), test error:"]
    notes += [f"  b = {bk:g}: {C.fmt(sim[k, -1], 4)} / {C.fmt(pred[k, -1], 4)} (relative error in log "
              f"{C.fmt(err[k])}), final train loss {C.fmt(res.final.train_loss[k])}, test error "
              f"{C.fmt(res.final.test_loss[k], 3)}" for k, bk in enumerate(b)]
    return paths + [C.write_notes(out_dir, NAME, notes)]
