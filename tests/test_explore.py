"""The explorer (`dln explore`): move each widget and check the drawn data against the model.

Headless tests run under Agg with `background=False` (every simulation inside
the callback: deterministic); one test drives the worker thread with a gated
simulation to check that a stale result is not drawn. The screenshot test
(`-m xvfb`) opens the real TkAgg window on a virtual screen.

The registry tests iterate `dln.ALGORITHMS` and the wrappers: every declared
hyperparameter has its generated control, and every algorithm runs (flow and
steps) with small work caps. They branch on capabilities (`flow`, `mirror`,
`drift_free`), never on names.

Problems are small (n = 10, d = 30) and the simulated test-loss curve is cut
to one or two alphas, so that the module runs in seconds.
"""
import concurrent.futures as cf
import json
import os
import re
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
from dln._hyper import Hyper  # noqa: E402
from dln.algorithms import example  # noqa: E402
from dln.explore import ETA, INTEGRATORS, LOSS_TOL  # noqa: E402
import dln.explore  # noqa: E402,F401  (module in sys.modules)
from dln.stochastic import WRAPPERS  # noqa: E402

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
        w["gr"]["gamma"].set_val(g)
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
    assert w["fgr"]["gamma"] is w["gr"]["gamma"]  # one declaration, one control: F-GR starts at GR's gamma
    w["algorithm"].set_active(list(dln.ALGORITHMS).index("fgr"))
    dev = {}
    for e in (0.4, 0.05):
        w["fgr"]["eps"].set_val(e)
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


def test_radio_buttons_select_the_algorithm_and_each_flow_limit_obeys_the_mirror_theory(open_explorer):
    # gamma = eps = rho, so that F-GR(gamma, eps) and USAM(rho) are the same flow (docs/theory.md)
    fig, w = open_explorer(algorithm="gd", gamma=0.15, eps=0.15, rho=0.15, alpha=0.3, max_discrete_steps=50)
    p = small_problem()
    names = list(dln.ALGORITHMS)
    assert [t.get_text() for t in w["algorithm"].labels] == names  # the registry, stochastic algorithms included
    final = {}
    for k, name in reversed(list(enumerate(names))):  # ends on gd, which was drawn first: it is redrawn
        w["algorithm"].set_active(k)
        assert w["algorithm"].value_selected == name
        s = fig.explorer.setting()
        assert type(s.algorithm) is dln.ALGORITHMS[name]
        assert fig.explorer.title.get_text().startswith(type(s.algorithm).__name__ + "(")
        if not (s.algorithm.flow and s.algorithm.mirror):
            continue  # the mirror theory is a statement about flows of the GR family
        sim = fig.explorer.current()["sim"]
        assert sim.status == "converged", sim.message
        final[name] = sim.alpha_eff
        # every flow of the family keeps beta = 2 alpha_eff^2 sinh(X^T nu): the limit is argmin Q_{alpha_eff(inf)}
        theory = dln.solve_dual(p, sim.alpha_eff[None]).beta[0]
        assert np.abs(drawn(fig, "sim_beta")[1] - theory).max() <= gap_tolerance(p, fig), name
        # a drift-free flow keeps alpha_eff at alpha; the others end below it: towards the rich regime
        mean = drawn(fig, "aeff_mean")[1]
        if s.algorithm.drift_free():
            np.testing.assert_allclose(sim.alpha_eff, 0.3, rtol=1e-12)
        else:
            assert mean[-1] < 0.3
    assert {"gd", "gr", "fgr", "bgr", "usam", "sam"} <= set(final)
    np.testing.assert_allclose(final["usam"], final["fgr"], rtol=1e-12)  # USAM(rho) = F-GR(rho, rho)
    distinct = [final[n] for n in ("gr", "fgr", "bgr", "sam")]
    for a in range(len(distinct)):
        for b in range(a):
            assert np.abs(np.log(distinct[a] / distinct[b])).max() > 1e-6  # each button runs its own flow


def test_reset_button_restores_every_widget(open_explorer):
    fig, w = open_explorer(algorithm="gr", gamma=0.05, eps=0.1, alpha=0.3, eta=0.02, max_steps=30,
                           max_discrete_steps=30)
    first = stems(fig)
    start = fig.explorer.setting()
    w["alpha"].set_val(-3.0)
    w["gr"]["gamma"].set_val(0.3)
    w["fgr"]["eps"].set_val(0.2)
    w["fgr"]["normalized"].set_active(0)
    w["seed"].set_val(2)
    w["eta"].set_val(-1.0)
    w["integrator"].set_active(1)
    w["wrappers"].set_active(len(WRAPPERS) - 1)
    w["algorithm"].set_active(list(dln.ALGORITHMS).index("fgr"))
    assert repr(fig.explorer.setting().algorithm) != repr(start.algorithm)
    n_draws = len(DRAWS)
    click(w["reset"])
    assert (w["alpha"].val, w["gr"]["gamma"].val, w["fgr"]["eps"].val, w["seed"].val) == (np.log10(0.3), 0.05, 0.1, 0)
    assert w["algorithm"].value_selected == "gr" and w["integrator"].value_selected == "flow"
    assert not any(w["wrappers"].get_status()) and not any(w["fgr"]["normalized"].get_status())
    np.testing.assert_array_equal(stems(fig), first)
    now = fig.explorer.setting()
    assert (now.seed, now.name, repr(now.algorithm), repr(now.integrator), now.alpha) == \
        (0, "gr", "GR(gamma=0.05)", repr(start.integrator), 10 ** np.log10(0.3))
    assert w["eta"].val == pytest.approx(np.log10(0.02))
    assert DRAWS[n_draws:] and DRAWS[-1] is fig


class _Idle(cf.Executor):
    """A worker that never runs anything: the window is built and every control moved, no simulation."""

    def submit(self, fn, /, *args, **kwargs):
        return cf.Future()


def _shown(fig):
    """Declarations whose controls are visible."""
    return {h for h, widget in fig.explorer.control_widgets.items() if widget.ax.get_visible()}


def test_every_declared_hyperparameter_has_its_generated_control(open_explorer):
    """The controls follow from the declarations: one per declaration, shared by the classes that declare
    it, over a range the declaration accepts that holds its example; selecting an algorithm (or checking a
    wrapper) shows exactly its controls; the `eta` slider shows whenever the run is in steps."""
    fig, w = open_explorer(background=_Idle())
    ex = fig.explorer
    n = small_problem().n
    offered = [*dln.ALGORITHMS.items(), *((c.__name__, c) for c in WRAPPERS)]
    for owner, cls in offered:
        for h in (h for h in cls.hyper if h.kind != "algorithm"):
            widget, c = w[owner][h.name], ex.controls[h]
            assert widget is ex.control_widgets[h] and owner in c.owners
            if h.kind == "bool":
                assert [t.get_text() for t in widget.labels] == [h.name]
                continue
            ends = (c.value(widget.valmin), c.value(widget.valmax))
            assert all(h.check(v) == v for v in ends), (owner, h.name, ends)
            assert ends[0] <= h.example <= ends[1], (owner, h.name)
            assert widget.valinit == pytest.approx(c.position(h.example))
            assert c.log == (widget.label.get_text() == f"log10 {h.name}")
            assert not c.log or ends[1] >= 100 * ends[0] > 0  # a log slider where the range spans decades
            if h.divides:
                assert c.values and all(n % v == 0 for v in c.values)
    for k, (name, cls) in enumerate(dln.ALGORITHMS.items()):
        w["algorithm"].set_active(k)
        assert _shown(fig) == {h for h in cls.hyper if h.kind != "algorithm"}, name
        # a discrete-only algorithm runs in steps whatever the integrator buttons say
        assert w["eta"].ax.get_visible() == (not example(cls).flow), name
    w["integrator"].set_active(INTEGRATORS.index("steps"))
    assert w["eta"].ax.get_visible()
    # each wrapper alone, around an algorithm that every wrapper takes
    base_name = next(k for k, cls in dln.ALGORITHMS.items() if all(_accepts(c, example(cls)) for c in WRAPPERS))
    w["algorithm"].set_active(list(dln.ALGORITHMS).index(base_name))
    base = _shown(fig)
    for i, wrapper in enumerate(WRAPPERS):
        w["wrappers"].set_active(i)
        assert _shown(fig) == base | {h for h in wrapper.hyper if h.kind != "algorithm"}, wrapper.__name__
        assert fig.explorer.setting().algorithm.__class__ is wrapper
        w["wrappers"].set_active(i)
    eta = w["eta"]
    assert [ex.eta.value(eta.valmin), ex.eta.value(eta.valmax)] == list(EXPLORE_MODULE.slider_range(ETA)[:2])


def test_a_declared_explore_range_sets_the_slider():
    """`Hyper.explore_range` overrides the slider derived from the bounds; without it the range follows
    from `lo`, `hi` and `example`."""
    h = Hyper("lam", "a scale", lo=0, lo_open=True, example=0.5, explore_range=(1e-3, 10))
    c = EXPLORE_MODULE.make_control(h, ("x",))
    assert (c.lo, c.hi, c.log, c.init) == (1e-3, 10.0, True, 0.5)
    assert c.value(c.position(0.5)) == 0.5  # a value set through a log slider comes back unchanged
    assert EXPLORE_MODULE.slider_range(Hyper("lam", "a scale", lo=0, lo_open=True, example=0.5)) == (0.005, 50.0, True)
    assert EXPLORE_MODULE.slider_range(Hyper("g", "a weight", lo=0, example=0.1)) == (0.0, 1.0, False)
    assert EXPLORE_MODULE.make_control(h, value=20.0).hi == 20.0  # a given start outside widens the slider
    with pytest.raises(ValueError, match="explore_range"):
        Hyper("lam", "a scale", explore_range=(1.0, 1.0))


def test_every_registered_algorithm_runs_headless_in_flow_and_in_steps(open_explorer):
    """One short run per algorithm and integrator button: it runs in steps exactly when the steps button is
    on or the algorithm has no flow, the title names it, and discrete saves sit on t = eta k."""
    fig, w = open_explorer(alpha=0.3, sim_alphas=[0.3], max_steps=40, max_discrete_steps=60, eta=0.05)
    ex = fig.explorer
    for b, integrator in enumerate(INTEGRATORS):
        w["integrator"].set_active(b)
        for k, name in enumerate(dln.ALGORITHMS):
            w["algorithm"].set_active(k)
            now = ex.current()
            s, sim = now["setting"], now["sim"]
            assert isinstance(s.algorithm, dln.ALGORITHMS[name]) and s.error is None
            steps = integrator == "steps" or not s.algorithm.flow
            assert isinstance(s.integrator, dln.Steps if steps else dln.Flow), name
            assert isinstance(sim, EXPLORE_MODULE.Trajectory), (name, sim)
            assert sim.status in dln.STATUSES and isinstance(now["curve"], EXPLORE_MODULE.Curve)
            assert ex.title.get_text().startswith(EXPLORE_MODULE.describe(s.algorithm)
                                                  + (", steps eta = 0.05" if steps else ", flow"))
            assert sim.status in ex.status.get_text()
            if steps:
                k_t = sim.t / 0.05
                np.testing.assert_allclose(k_t, np.round(k_t), atol=1e-9)


def test_a_combination_the_library_refuses_is_not_run_and_the_status_says_why(open_explorer):
    fig, w = open_explorer(algorithm="gd", alpha=0.3, max_steps=30)
    ex = fig.explorer
    refused = [(name, i) for name, cls in dln.ALGORITHMS.items() for i, c in enumerate(WRAPPERS)
               if not _accepts(c, example(cls))]
    name, i = refused[0]
    w["algorithm"].set_active(list(dln.ALGORITHMS).index(name))
    w["wrappers"].set_active(i)
    now = ex.current()
    assert now["setting"].algorithm is None and now["sim"] is None and not now["pending"]
    assert f"not run: {now['setting'].error}" in ex.status.get_text() and WRAPPERS[i].__name__ in now["setting"].error
    assert ex.status.get_color() == "tab:red"
    assert np.all(np.isnan(drawn(fig, "sim_beta")[1]))  # nothing simulated is drawn; the GF prediction is
    np.testing.assert_allclose(stems(fig), dln.solve_dual(small_problem(), 0.3).beta[0], atol=1e-12)


def test_steps_start_at_a_stable_eta_and_a_diverging_run_says_so(open_explorer):
    fig, w = open_explorer(algorithm="gd", alpha=0.3, steps=True, sim_alphas=[0.3, 30.0])
    ex = fig.explorer
    p = small_problem()
    eta = ex.setting().integrator.eta
    sim = ex.current()["sim"]
    assert sim.status == "converged", sim.message
    assert interp_error(p, drawn(fig, "sim_beta")[1]) <= 1e-3
    # the library's own stable step size (a diverged run's message gives it) is above the start
    big = dln.run(p, dln.GD(), dln.Steps(100.0, max_steps=50), alpha=0.3)
    assert big.status[0] == "diverged"
    limit = float(re.search(r"try eta < ([0-9.e+-]+)", big.message[0]).group(1))
    assert 0.1 * limit < eta < limit
    # the curve: alpha = 30 diverges at this eta and is left out, alpha = 0.3 converged
    curve = ex.current()["curve"]
    assert np.isfinite(curve.error[0]) and curve.converged[0] and np.isnan(curve.error[1])
    w["eta"].set_val(w["eta"].valmax)
    line = ex.status.get_text()
    assert "simulation: diverged" in line and "try eta <" in line and ex.status.get_color() == "tab:red"


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
    refused = [(dict(algorithm=name, **{EXPLORE_MODULE.keyword(h): h.example for h in EXPLORE_MODULE.hypers(w)}),
                f"{w.__name__}") for name, cls in dln.ALGORITHMS.items() for w in WRAPPERS
               if not _accepts(w, example(cls))]
    assert refused  # the library refuses some combinations (m-sharpness of GD): explore() says so at once
    for kw, name in ((dict(alpha=1e4), "`alpha`"), (dict(alpha=0.0), "`alpha`"),
                     (dict(algorithm="adam"), "`algorithm`"), (dict(background="gpu"), "`background`"),
                     (dict(gamma=-1.0), "`gamma`"), (dict(eps=0.0), "`eps`"), (dict(seed=21), "`seed`"),
                     (dict(igr_eta=-1.0), "`igr_eta`"), (dict(adam_beta=0.9), "`adam_beta`"),
                     (dict(gamma=[0.1, 0.2]), "`gamma`"), (dict(eta=0.0), "`eta`"), (dict(steps="yes"), "`steps`"),
                     (dict(batch_size=3, **SMALL), "`batch_size`"),
                     (dict(max_discrete_steps=0), "`max_discrete_steps`"),
                     (dict(max_steps=0), "`max_steps`"), (dict(sim_alphas=[-1.0]), "`sim_alphas`"),
                     (dict(figsize="x"), "`figsize`"), (dict(figsize=(0, 3)), "`figsize`"),
                     (dict(problem=dln.make_problem(n=5, d=8, s=1, seed=[0, 1])), "`problem`"), *refused[:1]):
        with pytest.raises(dln.InputError, match=name):
            explore_fn(**kw)


def _accepts(wrapper, algorithm):
    try:
        wrapper(algorithm, **{h.name: h.example for h in EXPLORE_MODULE.hypers(wrapper)})
    except dln.InputError:
        return False
    return True


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


def test_cli_takes_the_declared_hyperparameter_flags(tmp_path, capsys):
    """`dln explore` has a flag per declared hyperparameter (those of `dln simulate`), a wrapper's flag checks
    the wrapper, `--steps --eta` start in steps, and errors name the flag."""
    with pytest.raises(SystemExit):
        dln.cli.main(["explore", "--help"])
    helptext = capsys.readouterr().out
    for cls in [*dln.ALGORITHMS.values(), *WRAPPERS]:
        for h in cls.hyper:
            if h.kind not in ("algorithm", "bool") or cls in WRAPPERS and h.kind == "bool":
                assert h.cli in helptext, h.cli
    assert "--steps" in helptext and "--eta" in helptext and "--max-discrete-steps" in helptext
    out = tmp_path / "momentum.png"
    assert dln.cli.main(["explore", "--n", "10", "--d", "30", "--s", "2", "--curve-points", "0", "--algorithm", "gd",
                         "--momentum", "0.5", "--steps", "--eta", "0.02", "--max-discrete-steps", "200",
                         "--save", str(out)]) == 0
    assert out.stat().st_size > 0
    capsys.readouterr()
    for argv, flag in ((["--eps", "0"], "`--eps`"), (["--igr-eta", "-1"], "`--igr-eta`"),
                       (["--batch-size", "3", "--n", "10"], "`--batch-size`"),
                       (["--algorithm", "adam"], "`--algorithm`"),
                       (["--algorithm", "gd", "--m", "2", "--n", "10"], "MSharpness")):
        assert dln.cli.main(["explore", *argv, "--save", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert flag in err and err.count("\n") == 1, err


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
