"""Figure 9. Per-example SAM and mini-batch noise shrink `alpha_eff` further than their full-batch forms.

Claim: every discrete step whose direction is `J^T g~` multiplies `u v` by
`1 - 4 eta^2 g~^2` (docs/theory.md), and per-example (m = 1) perturbations and
mini-batch gradients are larger than the full-batch ones. So, from the same
initialization, 1-SAM/1-USAM end at a smaller `alpha_eff(inf)` than full-batch
SAM/USAM as `rho` grows, and reach a lower test error on the sparse default
problem (Andriushchenko & Flammarion 2022: 1-SAM, not full-batch SAM, finds the
sparse solutions); SGD ends at a smaller `alpha_eff(inf)` than GD at the same
`eta`, the more so the smaller the batch (Pesme et al. 2021), up to its
stability limit.

(a, b) test error and `alpha_eff(inf)` (geometric mean over coordinates, over
`alpha`) against `rho`, discrete steps `eta = 0.02` from `alpha = 0.1`;
(c, d) the same against `eta` for GD and SGD with a few batch sizes. Lines:
mean over problem seeds (sample seeds differ per run); bands: min to max;
a point is drawn only where every seed ended in a usable state (converged or at
the step cap), and runs that diverged or collapsed are counted in the notes.
"""
import numpy as np

import dln

from . import _common as C

NAME = "fig09_stochastic"

ALPHA = 0.1
ETA = 0.02


def _runs(make, values, seeds, integrator, **kw):
    """One batched run of `make(values repeated per seed)` on the stacked default problems; returns the
    Result and the values axis (V, S)."""
    V, S = len(values), len(seeds)
    prob = dln.make_problem(seed=np.tile(seeds, V).tolist())
    per = np.repeat(values, S)
    res = dln.run(prob, make(per), integrator(per), alpha=ALPHA, sample_seed=np.arange(V * S), **kw)
    return res, V, S


def _stats(res, V, S):
    """Mean, min and max over seeds of the test error and alpha_eff(inf)/alpha, NaN where a seed failed;
    and the number of failed runs per value."""
    ok = res.ok.reshape(V, S)
    err = res.final.test_loss.reshape(V, S)
    with np.errstate(all="ignore"):
        ae = C.geo_ratio(res.final.alpha_eff, ALPHA).reshape(V, S)
    out = {}
    for k, a in (("err", err), ("aeff", ae)):
        good = ok.all(axis=1)
        out[k] = [np.where(good, f(a, axis=1), np.nan) for f in (np.mean, np.min, np.max)]
    out["failed"] = (~ok).sum(axis=1)
    return out


def _draw(ax, x, st, key, color, label, style="-"):
    mean, lo, hi = st[key]
    ax.plot(x, mean, style, color=color, marker="o", label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)


def main(out_dir, quick=False, formats=None):
    seeds = [0, 1] if quick else [0, 1, 2, 3]
    rhos = np.array([0.005, 0.02, 0.05]) if quick else np.array([0.005, 0.01, 0.02, 0.05, 0.1])
    etas = np.array([0.01, 0.04]) if quick else np.array([0.005, 0.01, 0.02, 0.04, 0.08])
    batches = [10] if quick else [5, 10, 20]
    cap = 4000 if quick else 30000
    tol = 1e-3 if quick else 1e-6
    steps = lambda eta: dln.Steps(eta, max_steps=cap)  # noqa: E731
    fixed = lambda _: steps(ETA)  # noqa: E731
    sharp = {"SAM": lambda r: dln.SAM(r), "1-SAM": lambda r: dln.MSharpness(dln.SAM(r), 1),
             "USAM": lambda r: dln.USAM(r), "1-USAM": lambda r: dln.MSharpness(dln.USAM(r), 1)}
    cols = {"SAM": C.COLORS["SAM"], "1-SAM": C.COLORS["SAM"], "USAM": C.COLORS["USAM"], "1-USAM": C.COLORS["USAM"]}
    st_rho = {k: _stats(*_runs(f, rhos, seeds, fixed, loss_tol=tol)) for k, f in C.progress(sharp.items(), NAME)}
    noisy = {"GD": lambda e: dln.GD(), **{f"SGD b={b}": (lambda e, b=b: dln.SGD(b)) for b in batches}}
    st_eta = {k: _stats(*_runs(f, etas, seeds, steps, loss_tol=tol)) for k, f in C.progress(noisy.items(), NAME)}
    ecols = ["#000000", "#0072B2", "#D55E00", "#009E73"]

    with C.figure([["err_rho", "aeff_rho", "err_eta", "aeff_eta"]], (14, 3.6)) as (fig, ax):
        for k, st in st_rho.items():
            style = "-" if k.startswith("1-") else "--"
            for key in ("err", "aeff"):
                _draw(ax[f"{key}_rho"], rhos, st, key, cols[k], k + ("" if k.startswith("1-") else " (full batch)"),
                      style)
        for (k, st), c in zip(st_eta.items(), ecols):
            for key in ("err", "aeff"):
                _draw(ax[f"{key}_eta"], etas, st, key, c, k)
        for key, xl in (("err_rho", r"$\rho$"), ("aeff_rho", r"$\rho$"), ("err_eta", r"$\eta$"), ("aeff_eta", r"$\eta$")):
            ax[key].set_xscale("log")
            ax[key].set_xlabel(xl)
        ax["err_rho"].set(ylabel=C.TEST_LABEL)
        ax["aeff_rho"].set(ylabel=r"$\alpha_{\rm eff}(\infty)/\alpha$ (geometric mean)", yscale="log")
        ax["err_eta"].set(ylabel=C.TEST_LABEL)
        ax["aeff_eta"].set(ylabel=r"$\alpha_{\rm eff}(\infty)/\alpha$ (geometric mean)", yscale="log")
        ax["err_rho"].set_title(rf"$\alpha={ALPHA}$, $\eta={ETA}$", loc="right")
        ax["err_eta"].set_title(rf"$\alpha={ALPHA}$", loc="right")
        ax["err_rho"].legend(loc="best")
        ax["err_eta"].legend(loc="best")
        C.panel_labels(ax, ["err_rho", "aeff_rho", "err_eta", "aeff_eta"])
        paths = C.save(fig, out_dir, NAME, formats)

    notes = [f"alpha = {ALPHA}, {len(seeds)} problem seeds, steps to loss {tol:g} L0 or {cap} steps; "
             "test error and alpha_eff(inf)/alpha (geometric mean), means over seeds:"]
    for label, xs, table in (("rho", rhos, st_rho), ("eta", etas, st_eta)):
        for k, st in table.items():
            notes.append(f"  {k}: " + "; ".join(
                f"{label}={x:g}: {C.fmt(st['err'][0][i], 3)}, {C.fmt(st['aeff'][0][i], 4)}"
                + (f" ({st['failed'][i]} failed)" if st["failed"][i] else "") for i, x in enumerate(xs)))
    return paths + [C.write_notes(out_dir, NAME, notes)]
