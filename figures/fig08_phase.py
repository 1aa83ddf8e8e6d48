"""Figure 8. Phase diagram of F-GR: test error over initialization scale `alpha` and ascent step `eps`.

Claim: the test error of F-GR is set mainly by `alpha` (the kernel-to-rich
transition of gradient flow, figure 1); at fixed `gamma` a larger ascent step
`eps` lowers `alpha_eff(inf)` further (figure 3) but, because the shrinkage
concentrates on the coordinates that carry the signal (figure 2), it raises
the test error in the transition region instead of moving the transition to
larger `alpha`. Panel (b) shows the ratio to gradient flow at the same
`alpha`; white is 1.

One `dln.sweep` of `FGR(gamma, eps)` over the grid and gradient flow over `alpha`, on every core,
flows stopped at train loss `1e-8 L(0)`.
"""
import os

import numpy as np
from matplotlib.colors import LogNorm, TwoSlopeNorm

import dln

from . import _common as C

NAME = "fig08_phase"

GAMMA = 0.5
LOSS_TOL = 1e-8


def main(out_dir, quick=False, formats=None):
    alphas = np.logspace(-2, 0.5, 3) if quick else np.logspace(np.log10(C.ALPHA_MIN_SIM), 0.5, 15)
    eps = np.logspace(-2, 0.5, 3 if quick else 9)
    # gradient descent takes neither gamma nor eps: the sweep runs it once per alpha (its row repeats along eps)
    ds = dln.sweep({"problem": {"seed": 0},
                    "algorithm": {"name": ["gd", "fgr"], "gamma": GAMMA, "eps": eps.tolist()},
                    "init": {"alpha": alphas.tolist()},
                    "integrator": {"rtol": C.flow().rtol, "loss_tol": LOSS_TOL}},
                   progress=os.environ.get("DLN_NO_PROGRESS") != "1")
    ok = ds.status.isin(dln.STATUSES[:5])
    err = ds.test_loss.where(ok)
    grid, gf = err.sel(algorithm="fgr").values, err.sel(algorithm="gd").isel(eps=0).values
    failed = int((~ok.sel(algorithm="fgr")).sum() + (~ok.sel(algorithm="gd").isel(eps=0)).sum())
    ratio = grid / gf[None, :]

    def edges(x):
        lx = np.log10(x)
        mid = (lx[1:] + lx[:-1]) / 2
        return 10 ** np.concatenate([[2 * lx[0] - mid[0]], mid, [2 * lx[-1] - mid[-1]]])

    with C.figure([["err", "ratio"]], (9.5, 3.8)) as (fig, ax):
        a = ax["err"]
        m = a.pcolormesh(edges(alphas), edges(eps), grid, norm=LogNorm(vmin=np.nanmin(grid), vmax=np.nanmax(grid)),
                         cmap="viridis", shading="flat")
        fig.colorbar(m, ax=a, label=C.TEST_LABEL)
        half = gf[-1] / 2
        if np.nanmin(grid) < half < np.nanmax(grid):
            a.contour(alphas, eps, grid, levels=[half], colors="w", linewidths=1.2)
            a.plot([], [], "w-", label=f"error = {half:.2f} (half the kernel level)")
            a.legend(loc="upper left", labelcolor="w")
        a.set(xscale="log", yscale="log", xlabel=r"initialization scale $\alpha$", ylabel=r"ascent step $\epsilon$")
        a.grid(False)
        a.set_title(rf"F-GR, $\gamma={GAMMA}$", loc="right")
        a = ax["ratio"]
        lr = np.log2(ratio)
        lim = max(np.nanmax(np.abs(lr)), 1e-3)
        m = a.pcolormesh(edges(alphas), edges(eps), lr, norm=TwoSlopeNorm(0, -lim, lim), cmap="RdBu_r",
                         shading="flat")
        fig.colorbar(m, ax=a, label=r"$\log_2$(test error F-GR / gradient flow)")
        a.set(xscale="log", yscale="log", xlabel=r"initialization scale $\alpha$", ylabel=r"ascent step $\epsilon$")
        a.grid(False)
        a.set_title("red: worse than gradient flow", loc="right")
        C.panel_labels(ax, ["err", "ratio"])
        paths = C.save(fig, out_dir, NAME, formats)

    half_gf = C.crossing(alphas[::-1], gf[::-1], gf[-1] / 2)
    half_fgr = [C.crossing(alphas[::-1], row[::-1], gf[-1] / 2) for row in grid]
    worst = np.unravel_index(np.nanargmax(ratio), ratio.shape)
    notes = [
        f"gamma = {GAMMA}: alpha where the test error halves (from {C.fmt(gf[-1], 3)} at alpha = "
        f"{C.fmt(alphas[-1])}): gradient flow {C.fmt(half_gf)}; F-GR eps = {C.fmt(eps[0])}: {C.fmt(half_fgr[0])}, "
        f"eps = {C.fmt(eps[-1])}: {C.fmt(half_fgr[-1])}",
        f"F-GR / GF test error: min {C.fmt(np.nanmin(ratio), 3)}, max {C.fmt(np.nanmax(ratio), 3)} "
        f"(at alpha = {C.fmt(alphas[worst[1]])}, eps = {C.fmt(eps[worst[0]])})",
        f"runs not ok: {failed} of {grid.size + gf.size}",
    ]
    return paths + [C.write_notes(out_dir, NAME, notes)]
