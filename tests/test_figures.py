"""`dln figures`: every figure script runs in its quick form under Agg, writes its files atomically
and deterministically, and the CLI names bad input; the figures' theory helpers match their formulas."""
import importlib

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import dln  # noqa: E402
from figures import _common as C  # noqa: E402
from figures import cli as fcli  # noqa: E402

FIGURES = fcli.available()


def test_the_figures_of_the_issues_exist():
    """Eight theory figures, and fig09 (stochastic algorithms, issue 10)."""
    assert [f[:5] for f in FIGURES] == [f"fig0{i}" for i in range(1, 10)]


@pytest.mark.parametrize("name", FIGURES)
def test_figure_quick_smoke(name, tmp_path, monkeypatch):
    """`main(out_dir, quick=True)` writes a non-empty PNG and its notes, and nothing else is left behind."""
    monkeypatch.setenv("DLN_NO_PROGRESS", "1")
    mod = importlib.import_module(f"figures.{name}")
    assert mod.__doc__ and "Claim" in mod.__doc__, "the docstring names the claim the figure shows"
    paths = mod.main(tmp_path, quick=True, formats=("png",))
    assert {p.name for p in paths} == {f"{name}.png", f"{name}.txt"}
    png = (tmp_path / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    notes = (tmp_path / f"{name}.txt").read_text()
    assert notes.strip() and "nan" not in notes.lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths), "no temporary files left"


def test_save_is_atomic_and_deterministic(tmp_path):
    """A rerun writes identical bytes (no creation date in PNG/PDF), replacing the old file in place."""
    def draw():
        with C.figure([["a"]], (2, 2)) as (fig, ax):
            ax["a"].loglog([1, 10], [1, 100], label=r"$\alpha_{\rm eff}$")
            ax["a"].legend()
            return C.save(fig, tmp_path, "f", ("png", "pdf"))

    first = {p.name: p.read_bytes() for p in draw()}
    second = {p.name: p.read_bytes() for p in draw()}
    assert first == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]


def test_save_leaves_no_temporary_file_on_failure(tmp_path):
    with C.figure([["a"]], (2, 2)) as (fig, _):
        with pytest.raises(ValueError):
            C.save(fig, tmp_path, "f", ("nosuchformat",))
    assert list(tmp_path.iterdir()) == []


def test_cli_resolves_names_numbers_and_short_names():
    assert fcli.resolve(["3", "07", "flooding", "fig01_potential"]) == [
        "fig03_alpha_eff", "fig07_igr", "fig06_flooding", "fig01_potential"]
    assert fcli.resolve(None) == FIGURES
    assert fcli.formats("PNG, pdf") == ("png", "pdf")


@pytest.mark.parametrize("argv, flag", [(["--only", "fig99"], "`--only`"), (["--format", "jpg"], "`--format`"),
                                        (["--format", ","], "`--format`"),
                                        (["--format", "pdf", "--thumbnails", "g"], "`--thumbnails`")])
def test_cli_bad_input_is_one_line_naming_the_flag(cli, argv, flag, tmp_path):
    code, out, err = cli("figures", "--out", tmp_path, *argv)
    assert code == 2 and flag in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_thumbnail_is_small_and_atomic(tmp_path):
    with C.figure([["a"]], (8, 3)) as (fig, ax):
        ax["a"].plot(np.sin(np.linspace(0, 20, 500)))
        (src,) = C.save(fig, tmp_path / "full", "f", ("png",))
    th = C.thumbnail(src, tmp_path / "thumbs", width=300)
    from PIL import Image
    with Image.open(th) as im:
        assert im.width == 300
    assert th.stat().st_size < 100_000 and [p.name for p in th.parent.iterdir()] == ["f.png"]


def test_cli_list(cli):
    code, out, _ = cli("figures", "--list", "--only", "1", "8")
    assert code == 0 and out.startswith("fig01_potential: Figure 1.") and "fig08_phase" in out


def test_theta_from_inverts_the_squares_model(rng):
    u, v = rng.uniform(0.01, 2, (2, 5, 7))
    uu, vv = C.theta_from(u * u - v * v, np.sqrt(u * v))
    np.testing.assert_allclose(uu, u, rtol=1e-12)
    np.testing.assert_allclose(vv, v, rtol=1e-12)


def test_drift_rate_matches_the_algorithm_split(rng):
    """The figures' drift `4 g g_+` is the `-(u'/u + v'/v)/2` part of dln's F-GR direction (docs/theory.md
    mirror split), at a random state: two independent routes to the same number."""
    p = dln.make_problem(n=6, d=15, s=2, seed=3, n_test=0)
    theta = rng.uniform(0.2, 1.0, (1, 2, 15))
    beta = theta[:, 0] ** 2 - theta[:, 1] ** 2
    aeff = np.sqrt(theta[:, 0] * theta[:, 1])
    for gamma, eps in ((0.3, 0.2), (0.3, -0.2), (0.7, 1e-3)):
        D = dln.direction(dln.FGR(gamma, eps), dln.Objective(p, dln.Squares()), theta)
        c = (D[:, 0] / theta[:, 0] + D[:, 1] / theta[:, 1]) / 2
        np.testing.assert_allclose(gamma * C.drift_rate(p.X[0], p.y[0], beta, aeff, eps), c, rtol=1e-10, atol=1e-14)
    g = p.grad(beta)[0]
    np.testing.assert_allclose(C.drift_rate(p.X[0], p.y[0], beta, aeff, 0.0), 4 * g * g, rtol=1e-13)


def test_cumulative_drift_is_the_trapezoid_rule():
    """On a trajectory frozen at one state the drift integral is exactly rate * t."""
    p = dln.make_problem(n=5, d=9, s=2, seed=4, n_test=0)
    beta = np.tile(np.linspace(-0.3, 0.4, 9), (4, 1))
    aeff = np.full((4, 9), 0.5)
    t = np.array([0.0, 0.5, 2.0, 3.0])
    rate = C.drift_rate(p.X[0], p.y[0], beta[:1], aeff[:1], 0.1)
    np.testing.assert_allclose(C.cumulative_drift(p.X[0], p.y[0], t, beta, aeff, 0.1), t[:, None] * rate,
                               rtol=1e-13)


def test_crossing_interpolates_in_log_x():
    x = np.logspace(-3, 1, 5)
    y = np.log10(x)                      # linear in log x: the crossing is exact
    assert C.crossing(x, y, -1.5) == pytest.approx(10 ** -1.5, rel=1e-12)
    assert np.isnan(C.crossing(x, y, 5.0))


def test_geo_ratio():
    assert C.geo_ratio(np.array([[0.5, 2.0], [1.0, 4.0]]), np.array([1.0, 2.0])) == pytest.approx([1.0, 1.0])
