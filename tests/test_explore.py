"""The explorer (`dln explore`): move each widget and check the drawn data against the model.

Headless tests run under Agg with `background=False` (every simulation inside
the callback: deterministic); one test drives the worker thread with a gated
simulation to check that a stale result is not drawn. The screenshot test
(`-m xvfb`) opens the real TkAgg window on a virtual screen.

Problems are small (n = 10, d = 30) and the simulated test-loss curve is cut
to one or two alphas, so that the module runs in seconds.
"""
import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backend_bases import MouseEvent  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

import dln  # noqa: E402
import dln.cli  # noqa: E402
from dln import explore as explore_fn  # noqa: E402  (the function; dln.explore is re-exported)
from dln.explore import LOSS_TOL  # noqa: E402
import dln.explore  # noqa: E402,F401  (module in sys.modules)

EXPLORE_MODULE = sys.modules["dln.explore"]

SMALL = dict(n=10, d=30, s=2)
SAVE_AT = np.logspace(-4, 4, 9)
#: figures the (stubbed) Agg canvas was asked to draw, in order
DRAWS = []


def small_problem(seed=0):
    return dln.make_problem(seed=seed, **SMALL)


@pytest.fixture
def open_explorer(monkeypatch):
    """`open_explorer(**kw) -> (fig, widgets)` on the small problem, closed after the test.

    These tests check the artists' data, not pixels, so the Agg canvas only counts its draws
    (under Agg `draw_idle` renders at once, and a render of the whole window costs more than
    the simulations these tests run); `test_cli_save_renders_every_panel` and the screenshot
    test render for real.
    """
    figs = []
    monkeypatch.setattr(FigureCanvasAgg, "draw", lambda canvas, *a, **k: DRAWS.append(canvas.figure))

    def make(**kw):
        opts = dict(SMALL, background=False, sim_alphas=[], save_at=SAVE_AT, figsize=(8, 6))
        opts.update(kw)
        fig, widgets = explore_fn(**opts)
        figs.append(fig)
        return fig, widgets

    yield make
    for fig in figs:
        fig.explorer.close()
        plt.close(fig)


def stems(fig):
    """Heights of the stems (the gradient-flow limit argmin Q_alpha) as drawn."""
    return np.asarray(fig.explorer.artists["stems"].markerline.get_ydata(), float)


def drawn(fig, name):
    line = fig.explorer.artists[name]
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)


def interp_error(problem, beta):
    return np.abs(problem.X[0] @ beta - problem.y[0]).max()


def gap_tolerance(problem, fig):
    """How far a converged run's beta(inf) may sit from argmin Q_{alpha_eff(inf)}.

    The run stops with a residual of RMS `r = sqrt(2 L_final)` (`L_final <= LOSS_TOL L0`);
    the first-order correction that removes it is a row-space vector of size at most
    `r / sigma_min(X / sqrt(n))`. The factor 3 covers the mirror metric `diag(alpha_eff^2 cosh)`
    that weights the correction (measured ratio about 0.5 on this problem).
    """
    train = drawn(fig, "train")[1]
    r = np.sqrt(2 * train[-1])
    smin = np.linalg.svd(problem.X[0] / np.sqrt(problem.n), compute_uv=False).min()
    return 3 * r / smin


def click(button):
    """Press and release the mouse in the middle of a Button, as a user would."""
    canvas = button.ax.figure.canvas
    x, y = button.ax.transAxes.transform((0.5, 0.5))
    for name in ("button_press_event", "button_release_event"):
        canvas.callbacks.process(name, MouseEvent(name, canvas, x, y, button=1))


def test_import_dln_does_not_need_a_display():
    out = subprocess.run([sys.executable, "-c", "import sys, dln; print('matplotlib.pyplot' in sys.modules, "
                          "callable(dln.explore))"], capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": "TkAgg", "DISPLAY": ""})
    assert out.stdout.split() == ["False", "True"]


def test_alpha_slider_moves_the_gradient_flow_limit(open_explorer):
    fig, w = open_explorer(algorithm="gd", alpha=0.1, max_steps=30)
    p = small_problem()
    l1, l2 = dln.min_l1(p)[0], dln.min_l2(p)[0]
    gaps = {}
    for la in (3.0, -2.0, -6.0, -8.0):
        w["alpha"].set_val(la)
        a = 10.0 ** la
        b = stems(fig)
        # the stems are the dual solution for this alpha, and it interpolates the data
        np.testing.assert_allclose(b, dln.solve_dual(p, a).beta[0], rtol=0, atol=1e-12)
        assert interp_error(p, b) <= 1e-10
        # the marker on the test-loss curve sits at the current alpha, at the stems' test loss
        mx, my = drawn(fig, "gf_marker")
        assert mx[0] == pytest.approx(a, rel=1e-12)
        assert my[0] == pytest.approx(p.loss(b[None], test=True)[0], rel=1e-12)
        gaps[la] = np.abs(b - l1).max()
        if la == 3.0:
            # kernel regime: Q_alpha = ||beta||^2 / (4 alpha^2) (1 + O((beta/alpha^2)^2)), so the
            # minimiser is the min-l2 interpolator up to ~1e-12 and the dual's tolerance
            np.testing.assert_allclose(b, l2, rtol=0, atol=1e-9)
    # rich regime: the gap to min-l1 closes as alpha -> 0, at the slow rate 1/log(1/alpha^2)
    assert gaps[-8.0] < gaps[-6.0] < gaps[-2.0]
    assert gaps[-8.0] <= np.abs(l1).max() / np.log(1e16)


def test_gradient_flow_keeps_alpha_eff_flat_and_lands_on_the_prediction(open_explorer):
    fig, w = open_explorer(algorithm="gd", alpha=0.3, sim_alphas=[0.1, 3.0])
    w["alpha"].set_val(-1.0)
    t, mean = drawn(fig, "aeff_mean")
    # GF: m = log(u v)/2 has m' = 0 exactly; the flow integrates m, so only round-off moves it
    np.testing.assert_allclose(mean, 0.1, rtol=1e-12)
    np.testing.assert_allclose(drawn(fig, "aeff_min")[1], 0.1, rtol=1e-12)
    np.testing.assert_allclose(drawn(fig, "aeff_max")[1], 0.1, rtol=1e-12)
    assert t.size > 3 and np.all(np.diff(t) > 0)
    train = drawn(fig, "train")[1]
    assert train[-1] <= LOSS_TOL * train[0]
    # the algorithm's simulated limit (crosses) sits on the stems
    sim = drawn(fig, "sim_beta")[1]
    assert np.abs(sim - stems(fig)).max() <= gap_tolerance(small_problem(), fig)
    assert drawn(fig, "sim_marker")[0][0] == pytest.approx(0.1)
    # the simulated curve (one batched run over sim_alphas) lies on the dual's: GD's limit is argmin Q_alpha.
    # |L_test(b1) - L_test(b2)| <= ||grad L_test|| ||b1 - b2||,
    # ||grad L_test|| <= sqrt(2 L_test) sigma_max(X_test / sqrt(m)), ||b1 - b2||_2 <= sqrt(d) max|b1 - b2|
    p = small_problem()
    alphas, err = drawn(fig, "sim_curve")
    gf = dln.solve_dual(p, alphas).beta
    gf_err = p.loss(gf, test=True)
    smax = np.linalg.svd(p.X_test[0] / np.sqrt(p.X_test.shape[1]), compute_uv=False).max()
    bound = np.sqrt(2 * gf_err) * smax * np.sqrt(p.d) * gap_tolerance(p, fig) * 2
    assert np.all(np.abs(err - gf_err) <= bound), (err, gf_err, bound)
    assert np.all(np.isnan(drawn(fig, "sim_curve_capped")[1]))  # both runs converged: none drawn hollow


def test_gamma_slider_lowers_alpha_eff_for_GR(open_explorer):
    fig, w = open_explorer(algorithm="gr", gamma=0.0, alpha=0.3)
    p = small_problem()
    finals = []
    for g in (0.0, 0.1, 0.4):
        w["gamma"].set_val(g)
        _, mean = drawn(fig, "aeff_mean")
        finals.append(mean[-1])
        # GR: every coordinate has drift c = 4 gamma g_i^2 >= 0, so alpha_eff_i(t) never grows;
        # 1e-7 is the slack of the solver's local error control (rtol 1e-6 in log theta per step)
        for k in ("aeff_min", "aeff_mean", "aeff_max"):
            assert np.all(np.diff(np.log(drawn(fig, k)[1])) <= 1e-7), k
        # mirror structure: beta(inf) = argmin Q_{alpha_eff(inf)}, whatever gamma did to alpha_eff
        theory = dln.solve_dual(p, fig.explorer.current()["sim"].alpha_eff[None]).beta[0]
        assert np.abs(drawn(fig, "sim_beta")[1] - theory).max() <= gap_tolerance(p, fig)
    assert finals[0] == pytest.approx(0.3, rel=1e-12)
    assert finals[0] > finals[1] > finals[2]  # stronger GR, smaller alpha_eff(inf): towards the rich regime



def test_eps_slider_moves_FGR_away_from_GR_linearly(open_explorer):
    fig, w = open_explorer(algorithm="gr", gamma=0.2, alpha=0.3)
    log_gr = np.log(drawn(fig, "aeff_mean")[1][-1])
    w["algorithm"].set_active(list(EXPLORE_MODULE.ALGORITHMS).index("fgr"))
    dev = {}
    for e in (0.4, 0.05):
        w["eps"].set_val(e)
        mean = drawn(fig, "aeff_mean")[1]
        # F-GR's drift 4 gamma g g_plus is >= 0 while g_plus ~ g: alpha_eff decreases (to solver slack)
        assert np.all(np.diff(np.log(mean)) <= 1e-7)
        assert mean[-1] < 0.3
        dev[e] = np.log(mean[-1]) - log_gr
    # F-GR = GR + O(eps): the gap in log alpha_eff(inf) shrinks in proportion to eps
    assert abs(dev[0.4]) / abs(dev[0.05]) == pytest.approx(0.4 / 0.05, rel=0.2)


def test_seed_slider_draws_the_new_problem(open_explorer):
    fig, w = open_explorer(algorithm="gd", alpha=0.3, max_steps=30)
    before = stems(fig)
    w["seed"].set_val(3)
    p3 = small_problem(3)
    b = stems(fig)
    assert not np.allclose(b, before)
    assert interp_error(p3, b) <= 1e-10  # the stems interpolate the new data
    x, star = drawn(fig, "beta_star")
    support = np.isfinite(star)
    np.testing.assert_array_equal(support, p3.beta_star[0] != 0)
    np.testing.assert_array_equal(star[support], p3.beta_star[0][support])
    l1 = drawn(fig, "l1")[1]
    assert interp_error(p3, np.nan_to_num(l1)) <= 1e-8  # min-l1 drawn on its support is the new problem's


def test_radio_buttons_select_the_algorithm_and_each_limit_obeys_the_mirror_theory(open_explorer):
    # gamma = eps, so that F-GR(gamma, eps) and USAM(rho = gamma) are the same flow (docs/theory.md)
    fig, w = open_explorer(algorithm="gd", gamma=0.15, eps=0.15, alpha=0.3)
    p = small_problem()
    names = list(EXPLORE_MODULE.ALGORITHMS)
    final = {}
    for k, name in reversed(list(enumerate(names))):  # ends on gd, which was drawn first: it is redrawn
        w["algorithm"].set_active(k)
        assert w["algorithm"].value_selected == name
        assert EXPLORE_MODULE.FORMULAS[name].split("(")[0] in fig.explorer.title.get_text()
        sim = fig.explorer.current()["sim"]
        assert sim.status == "converged", sim.message
        final[name] = sim.alpha_eff
        # every flow of the family keeps beta = 2 alpha_eff^2 sinh(X^T nu): the limit is argmin Q_{alpha_eff(inf)}
        theory = dln.solve_dual(p, sim.alpha_eff[None]).beta[0]
        assert np.abs(drawn(fig, "sim_beta")[1] - theory).max() <= gap_tolerance(p, fig), name
        # and for the GR family with gamma > 0 it ends at a smaller alpha_eff: towards the rich regime
        mean = drawn(fig, "aeff_mean")[1]
        assert mean[-1] < 0.3 or name == "gd"
    np.testing.assert_allclose(final["gd"], 0.3, rtol=1e-12)
    np.testing.assert_allclose(final["usam"], final["fgr"], rtol=1e-12)  # USAM(rho) = F-GR(rho, rho)
    distinct = [final[n] for n in ("gr", "fgr", "bgr", "sam")]
    for a in range(len(distinct)):
        for b in range(a):
            assert np.abs(np.log(distinct[a] / distinct[b])).max() > 1e-6  # each button runs its own flow


def test_reset_button_restores_every_widget(open_explorer):
    fig, w = open_explorer(algorithm="gr", gamma=0.05, eps=0.1, alpha=0.3, max_steps=30)
    first = stems(fig)
    w["alpha"].set_val(-3.0)
    w["gamma"].set_val(0.3)
    w["eps"].set_val(0.2)
    w["seed"].set_val(2)
    w["algorithm"].set_active(0)
    n_draws = len(DRAWS)
    click(w["reset"])
    assert (w["alpha"].val, w["gamma"].val, w["eps"].val, w["seed"].val) == (np.log10(0.3), 0.05, 0.1, 0)
    assert w["algorithm"].value_selected == "gr"
    np.testing.assert_array_equal(stems(fig), first)
    assert fig.explorer.setting() == (0, "gr", 0.05, 0.1, 10 ** np.log10(0.3))
    assert DRAWS[n_draws:] and DRAWS[-1] is fig


def test_worker_draws_the_prediction_first_and_discards_stale_results(open_explorer, monkeypatch):
    """A gated simulation: nothing finishes until the test opens the gate."""
    gate = threading.Event()
    started = []
    real = EXPLORE_MODULE.simulate

    def gated(problem, algorithm, alpha, **kw):
        started.append(alpha)
        gate.wait(20)
        return real(problem, algorithm, alpha, **kw)

    monkeypatch.setattr(EXPLORE_MODULE, "simulate", gated)
    pool = cf.ThreadPoolExecutor(max_workers=2)  # threads see the gated simulate; worker processes would not
    fig, w = open_explorer(algorithm="gd", alpha=0.3, background=pool, max_steps=50)
    ex = fig.explorer
    try:
        for la in (-1.0, 0.0):
            w["alpha"].set_val(la)
            # the gradient-flow prediction is drawn at once; the simulated crosses wait
            np.testing.assert_allclose(stems(fig), dln.solve_dual(small_problem(), 10.0 ** la).beta[0], atol=1e-12)
            assert np.all(np.isnan(drawn(fig, "sim_beta")[1]))
            assert "simulating" in ex.status.get_text()
    finally:
        gate.set()
    cf.wait(list(ex._futures.values()), timeout=30)
    ex._timer._on_timer()  # what the window's event loop does every POLL_MS
    assert ex.poll in [c[0] for c in ex._timer.callbacks]  # the poll stays registered (returns None, not 0)
    assert ex.current()["sim"] is not None and not ex.current()["pending"]
    # what is drawn is the run for alpha = 1 (the last slider position), not an older one
    assert started[-1] == pytest.approx(1.0)
    t, mean = drawn(fig, "aeff_mean")
    np.testing.assert_allclose(mean, 1.0, rtol=1e-12)
    assert "simulating" not in ex.status.get_text()
    pool.shutdown()


def test_bad_input_names_the_argument():
    for kw, name in ((dict(alpha=1e4), "`alpha`"), (dict(alpha=0.0), "`alpha`"),
                     (dict(algorithm="adam"), "`algorithm`"), (dict(background="gpu"), "`background`"),
                     (dict(gamma=-1.0), "`gamma`"), (dict(eps=0.0), "`eps`"), (dict(seed=21), "`seed`"),
                     (dict(max_steps=0), "`max_steps`"), (dict(sim_alphas=[-1.0]), "`sim_alphas`"),
                     (dict(problem=dln.make_problem(n=5, d=8, s=1, seed=[0, 1])), "`problem`")):
        with pytest.raises(dln.InputError, match=name):
            explore_fn(**kw)


def test_cli_save_renders_every_panel(tmp_path, capsys):
    """`dln explore --save` renders the window with Agg; every panel has its data drawn."""
    out = tmp_path / "explorer.png"
    assert dln.cli.main(["explore", "--n", "10", "--d", "30", "--s", "2", "--curve-points", "0",
                         "--alpha", "0.3", "--save", str(out)]) == 0
    assert list(tmp_path.iterdir()) == [out]  # written atomically: no temporary file left
    fig = plt.figure(figsize=(13, 8.5))  # the window's size and layout, to find the panels in the image
    boxes = {k: list(ax.get_window_extent().bounds) for k, ax in EXPLORE_MODULE.panels(fig).items()}
    size = fig.canvas.get_width_height()
    plt.close(fig)
    check_panels(out, boxes, size)
    assert dln.cli.main(["explore", "--data", "x.npz", "--n", "3"]) == 2
    assert "exclude each other" in capsys.readouterr().err


#: colours each panel must show (matplotlib's tab10): data drawn, not just empty axes
PANEL_COLORS = {
    "beta": {"stems (GF limit)": (31, 119, 180), "beta*": (214, 39, 40), "simulated limit": (255, 127, 14)},
    "err": {"GF curve": (31, 119, 180), "algorithm's curve": (255, 127, 14)},
    "aeff": {"alpha_eff(t)": (148, 103, 189)},
    "loss": {"train loss": (0, 0, 0), "test loss": (214, 39, 40)},
}


def check_panels(png, boxes, size):
    """Every panel of the image `png` holds pixels of each of its data colours.

    `boxes`: panel -> (x0, y0, width, height) in display pixels (origin bottom left) of a
    canvas of `size` = (width, height) pixels.
    """
    from PIL import Image
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    W, H = size
    assert img.shape[:2] == (H, W), "image is not the window's size"
    for name, (x0, y0, w, h) in boxes.items():
        inner = img[int(H - y0 - h) + 3:int(H - y0) - 3, int(x0) + 3:int(x0 + w) - 3]
        for what, rgb in PANEL_COLORS[name].items():
            # 40 levels covers anti-aliasing at a line's edge; a 1.5 px line has exact-colour centre pixels
            near = np.abs(inner - np.array(rgb)).max(axis=-1) <= 40
            assert near.sum() >= 15, f"panel {name!r}: no {what} drawn ({near.sum()} pixels)"


WINDOW_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import matplotlib
    kw, png = json.loads(sys.argv[1]), sys.argv[2]
    try:
        import tkinter  # noqa: F401
        matplotlib.use("TkAgg")
    except ImportError:  # no Tk: the window's figure rendered by Agg instead (same layout, same pixels)
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import dln
    fig, widgets = dln.explore(**kw)
    ex = fig.explorer
    from PIL import features
    # the screenshot needs Tk and Pillow's X11 grab (XCB); without them the same figure is rendered by Agg
    tk = matplotlib.get_backend().lower() == "tkagg" and features.check("xcb")
    if tk:
        plt.show(block=False)
        deadline = time.time() + 120
        while time.time() < deadline:  # the canvas timer polls the worker; wait for the simulated answer
            plt.pause(0.1)
            now = ex.current()
            if now["sim"] is not None and not now["pending"] and (now["curve"] is not None or not ex.sim_alphas.size):
                break
        w = fig.canvas.get_tk_widget()
        w.update()  # let Tk apply pending geometry (the screen's dpi), then render and paint synchronously
        fig.canvas.draw()
        w.update()
        from PIL import ImageGrab
        x, y = w.winfo_rootx(), w.winfo_rooty()
        screen = ImageGrab.grab(xdisplay=os.environ["DISPLAY"])  # the whole screen, cropped here to the canvas
        screen.crop((x, y, x + w.winfo_width(), y + w.winfo_height())).save(png)
    else:
        ex.wait(60)
        fig.savefig(png)
    boxes = {k: list(a.get_window_extent().bounds) for k, a in ex.ax.items()}
    size = fig.canvas.get_width_height(physical=True)
    print(json.dumps(dict(backend=matplotlib.get_backend(), boxes=boxes, size=size, status=ex.status.get_text())))
""")


def xvfb_display():
    """Start Xvfb on a free display; returns `(process, ':N')`, or skips the test with the reason."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not on PATH: install it (Debian: apt-get install -y xvfb) to run the screenshot test")
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1400x1000x24", "-dpi", "100",
                             "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        proc.wait()
        pytest.skip("Xvfb did not start (no display number reported)")
    return proc, f":{number}"


def screenshot(png, display, **kw):
    """Open the explorer's window on `display`, take a screenshot into `png`; returns the script's report."""
    env = {**os.environ, "DISPLAY": display}
    env.pop("MPLBACKEND", None)
    out = subprocess.run([sys.executable, "-c", WINDOW_SCRIPT, json.dumps(kw), str(png)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.xvfb
def test_window_screenshot_shows_every_panel(tmp_path):
    """The real window (TkAgg) on a virtual screen: every panel shows its data.

    Without Tk (or without Pillow's XCB screen grab) the script renders the same figure with Agg
    after the worker's results are in; the report says which backend drew it.
    """
    proc, display = xvfb_display()
    try:
        png = tmp_path / "window.png"
        rep = screenshot(png, display, **SMALL, algorithm="fgr", gamma=0.2, eps=0.1, alpha=0.3,
                         sim_alphas=[0.3], save_at=list(SAVE_AT))
    finally:
        proc.terminate()
        proc.wait(10)
    assert "simulation: converged" in rep["status"]
    check_panels(png, rep["boxes"], rep["size"])
