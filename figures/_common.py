"""Shared helpers of the figure scripts: layout, atomic saving, notes, progress, theory pieces.

Every figure script `figNN_name.py` has `main(out_dir, quick=False, formats=None)`
that returns the paths it wrote. Figures are drawn under the style `STYLE`
(mathtext, no LaTeX install) and saved atomically: `savefig` to a temporary
file in the output directory, then `os.replace`.
"""
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dln._io import atomic_path

#: formats written when none are asked for
DEFAULT_FORMATS = ("png", "pdf")
#: formats `savefig` is asked for (checked by the CLI)
ALLOWED_FORMATS = ("png", "pdf", "svg")

#: rcParams of every figure: print-sized fonts, no LaTeX, deterministic output
STYLE = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 7.5,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "lines.linewidth": 1.4, "lines.markersize": 4,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "legend.frameon": False,
    "text.usetex": False, "mathtext.fontset": "dejavusans", "savefig.dpi": 150,
    "figure.dpi": 100, "svg.hashsalt": "dln",
}

#: one colour per algorithm, the same in every figure (colour-blind safe, Okabe-Ito)
COLORS = {"GF": "#000000", "GR": "#0072B2", "F-GR": "#D55E00", "B-GR": "#009E73", "SAM": "#CC79A7",
          "USAM": "#E69F00", "IGR": "#56B4E9", "GD": "#999999", "theory": "#555555"}

#: smallest alpha simulated to convergence (the flow's cost grows slowly as alpha falls)
ALPHA_MIN_SIM = 1e-3


def flow(**kw):
    """The figures' integrator: `dln.Flow(rtol=1e-6)`. On the default problem this moves `beta(inf)` by
    < 1e-6 and `log alpha_eff(inf)` by < 1e-6 from `rtol = 1e-9` (measured), far below what the figures
    resolve and below the effect of stopping at train loss `1e-8 L(0)`, in 4-5x fewer steps."""
    import dln
    return dln.Flow(**{"rtol": 1e-6, **kw})

#: test error label (the test loss of the default problem)
TEST_LABEL = r"test error $L_{\rm test}(\beta_\infty)$"


def _style():
    from cycler import cycler
    st = dict(STYLE)
    st["axes.prop_cycle"] = cycler(color=["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                          "#56B4E9", "#F0E442", "#000000"])
    return st


@contextmanager
def figure(mosaic, size):
    """`plt.subplot_mosaic(mosaic, layout="constrained")` under `STYLE`; yields `(fig, axd)`
    and closes the figure afterwards."""
    import matplotlib.pyplot as plt
    with plt.rc_context(_style()):
        fig, axd = plt.subplot_mosaic(mosaic, figsize=size, layout="constrained")
        try:
            yield fig, axd
        finally:
            plt.close(fig)


def panel_labels(axd, order=None):
    """Bold `(a)`, `(b)`, ... in the top-left corner of each panel."""
    for i, k in enumerate(order or sorted(axd)):
        axd[k].set_title(f"({chr(97 + i)})", loc="left", fontweight="bold")


def save(fig, out_dir, name, formats=None):
    """Write `fig` as `out_dir/name.FORMAT` for each format, atomically; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats or DEFAULT_FORMATS:
        target = out / f"{name}.{fmt}"
        # no creation date in the metadata, so a rerun writes identical bytes
        meta = {"CreationDate": None} if fmt == "pdf" else ({"Date": None} if fmt == "svg" else None)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, metadata=meta)
        paths.append(target)
    return paths


def write_notes(out_dir, name, lines):
    """Write the figure's numbers (one claim per line) to `out_dir/name.txt`, atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.txt"
    with atomic_path(target) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return target


def progress(iterable, desc, total=None):
    """A tqdm progress bar over the long loops of a figure (nested under the CLI's bar)."""
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False, position=1, dynamic_ncols=True,
                disable=os.environ.get("DLN_NO_PROGRESS") == "1")


def geo_ratio(alpha_eff, alpha):
    """Geometric mean over coordinates of `alpha_eff / alpha`: `exp(mean_i log(alpha_eff_i / alpha))`.

    alpha_eff : ndarray, shape (..., d);  alpha : float or ndarray broadcasting to shape (...,)
    """
    a = np.asarray(alpha, float)[..., None]
    return np.exp(np.mean(np.log(alpha_eff / a), axis=-1))


def theta_from(beta, alpha_eff):
    """`(u, v)` of the squares model from `beta = u^2 - v^2` and `alpha_eff^2 = u v`.

    `u^2 = (beta + sqrt(beta^2 + 4 alpha_eff^4)) / 2`, `v = alpha_eff^2 / u`.
    """
    a2 = alpha_eff ** 2
    u = np.sqrt((beta + np.sqrt(beta * beta + 4 * a2 * a2)) / 2)
    return u, a2 / u


def drift_rate(X, y, beta, alpha_eff, eps):
    """The F-GR drift per unit `gamma`, `4 g g_+`, at saved squares-model states, shape (S, d).

    `g = X^T (X beta - y) / n` and `g_+ = g(beta(theta + eps grad_theta L))`, with
    `theta + eps grad L = (u (1 + 2 eps g), v (1 - 2 eps g))` (docs/theory.md); `eps < 0`
    is B-GR and `eps = 0` gives the exact-GR drift `4 g^2`. Written from the
    formulas, not from `dln`'s algorithms, so that it is an independent check.

    X : ndarray, shape (n, d);  y : ndarray, shape (n,)
    beta, alpha_eff : ndarray, shape (S, d)
    """
    n = X.shape[0]
    g = (beta @ X.T - y) @ X / n
    u, v = theta_from(beta, alpha_eff)
    up, vp = u * (1 + 2 * eps * g), v * (1 - 2 * eps * g)
    gp = ((up * up - vp * vp) @ X.T - y) @ X / n
    return 4 * g * gp


def cumulative_drift(X, y, t, beta, alpha_eff, eps):
    """`int_0^{t_s} 4 g g_+ dt` per coordinate at each save time (trapezoid rule), shape (S, d):
    `log(alpha / alpha_eff(t_s))` predicted per unit `gamma`. `t` (S,) increasing from 0."""
    c = drift_rate(X, y, beta, alpha_eff, eps)
    steps = (c[1:] + c[:-1]) / 2 * np.diff(t)[:, None]
    return np.concatenate([np.zeros((1, c.shape[1])), np.cumsum(steps, axis=0)])


def drift_integral(X, y, t, beta, alpha_eff, eps):
    """`int_0^{t_S} 4 g g_+ dt` per coordinate along a saved trajectory, shape (d,):
    `log(alpha / alpha_eff)` at the last save predicted per unit `gamma` (see `drift_rate`)."""
    return cumulative_drift(X, y, t, beta, alpha_eff, eps)[-1]


def crossing(x, y, level):
    """The first `x` at which `y` crosses `level`, by linear interpolation in `log x`; NaN if none."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    s = np.sign(y - level)
    k = np.nonzero(s[:-1] * s[1:] <= 0)[0]
    if not k.size:
        return np.nan
    i = k[0]
    if y[i + 1] == y[i]:
        return float(x[i])
    f = (level - y[i]) / (y[i + 1] - y[i])
    return float(np.exp(np.log(x[i]) + f * (np.log(x[i + 1]) - np.log(x[i]))))


def fmt(x, digits=2):
    """A number for notes: `3.2e-03` style for small/large values, else fixed."""
    if not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if 1e-2 <= abs(x) < 1e3 else f"{x:.{digits - 1}e}"


def stacked(base, n_cfg, alphas):
    """A batch ordered (configuration, seed, alpha) over the seeds stacked in `base`.

    Returns `(problem, seed_index, alpha)`: `problem` holds the training data of
    each run (no test set, so a batch does not copy the test matrices),
    `seed_index` (B,) the row of `base` each run uses, `alpha` (B,) its scale;
    `B = n_cfg * base.P * len(alphas)`. Reshape per-run outputs to
    `(n_cfg, base.P, len(alphas))`.
    """
    import dln
    S, A = base.P, len(alphas)
    idx = np.tile(np.repeat(np.arange(S), A), n_cfg)
    return dln.Problem(base.X[idx], base.y[idx]), idx, np.tile(np.asarray(alphas, float), n_cfg * S)


def per_config(values, S, A):
    """A hyperparameter per configuration, repeated over the (seed, alpha) runs: shape (n_cfg * S * A,)."""
    return np.repeat(np.asarray(values, float), S * A)


def test_error(base, seed_index, beta):
    """Test loss `||X_test beta - y_test||^2 / (2 m)` of each run on its seed's problem, shape (B,)."""
    out = np.full(beta.shape[0], np.nan)
    for s in np.unique(seed_index):
        rows = seed_index == s
        out[rows] = base[int(s)].loss(beta[rows], test=True)
    return out


def nan_stats(a):
    """Mean, min and max over axis 0 ignoring NaN (failed runs); NaN where a column has no finite entry."""
    a = np.asarray(a, float)
    ok = np.isfinite(a)
    n = ok.sum(axis=0)
    has = n > 0
    mean = np.where(has, np.where(ok, a, 0).sum(axis=0) / np.maximum(n, 1), np.nan)
    lo = np.where(has, np.where(ok, a, np.inf).min(axis=0), np.nan)
    hi = np.where(has, np.where(ok, a, -np.inf).max(axis=0), np.nan)
    return mean, lo, hi


def thumbnail(src, out_dir, width=640):
    """A small copy of the PNG `src` (`width` pixels wide, palette-quantized) in `out_dir`, written
    atomically: the README gallery. Returns its path."""
    from PIL import Image
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / Path(src).name
    with Image.open(src) as im:
        im = im.convert("RGB")
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        im = im.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        with atomic_path(target) as tmp:
            im.save(tmp, format="PNG", optimize=True)
    return target
