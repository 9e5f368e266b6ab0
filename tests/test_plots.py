import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mia_utils.attacks import metrics, plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def make_results(n=2000):
    rng = np.random.default_rng(0)
    is_member = np.arange(n) < n // 2
    return {
        "loss threshold": (torch.from_numpy(rng.normal(size=n) + 0.4 * is_member), torch.from_numpy(is_member)),
        "perfect": (is_member.astype(float) + rng.uniform(0, 0.5, n), is_member),
        "tied": (rng.integers(0, 4, n).astype(float), is_member.astype(int)),
    }


def test_score_distributions_has_one_panel_per_attack():
    results = make_results()
    fig = plots.score_distributions(results)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.has_data()]
    assert [ax.get_title() for ax in axes] == list(results)
    palette = sns.color_palette("colorblind")
    for ax in axes:
        assert "score" in ax.get_xlabel() and "density" in ax.get_ylabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["members", "non-members"]
        # two step outlines (members, non-members) in the first two colour-blind-safe colours
        assert [line.get_drawstyle() for line in ax.lines] == ["steps-post"] * 2
        assert [to_rgb(line.get_color()) for line in ax.lines] == [to_rgb(palette[0]), to_rgb(palette[1])]
        assert [line.get_label() for line in ax.lines] == ["members", "non-members"]
    fig.canvas.draw()


def test_score_distributions_draws_into_given_axes():
    results = make_results(300)
    fig, grid = plt.subplots(2, 2)
    assert plots.score_distributions(results, ax_grid=grid) is fig
    assert [ax.get_title() for ax in grid.ravel()] == [*results, ""]
    with pytest.raises(ValueError, match="ax_grid: 2 axes for 3 attacks"):
        plots.score_distributions(results, ax_grid=grid[0])


def test_roc_curves_on_log_axes_with_chance_line_and_auc_legend():
    results = make_results()
    fig = plots.roc_curves(results)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel().startswith("false positive rate") and ax.get_ylabel().startswith("true positive rate")
    lower = min(1e-4, 1 / 1000)
    assert ax.get_xlim() == pytest.approx((lower, 1.0)) and ax.get_ylim() == pytest.approx((lower, 1.0))

    lines = ax.get_lines()
    assert len(lines) == len(results) + 1  # one per attack and the chance line
    chance = lines[-1]
    assert chance.get_linestyle() == "--"
    np.testing.assert_allclose(chance.get_xdata(), chance.get_ydata())

    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for (name, (scores, is_member)), line, label in zip(results.items(), lines, legend):
        auc = metrics.roc_auc(scores, is_member)
        assert label == f"{name} (AUC {auc:.3f})" == line.get_label()
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        # zero rates are clipped to the lower limit so the log scale stays finite
        assert np.all(x >= lower) and np.all(y >= lower) and np.all(np.isfinite(np.log(x)))
        fpr, tpr, _ = metrics.roc_curve(scores, is_member)
        np.testing.assert_allclose(x, np.clip(fpr, lower, 1))
        np.testing.assert_allclose(y, np.clip(tpr, lower, 1))
    assert legend[-1].startswith("chance")
    fig.canvas.draw()


def test_roc_curves_lower_limit_follows_the_sample_size():
    rng = np.random.default_rng(1)
    is_member = np.arange(40_000) < 20_000
    results = {"a": (rng.normal(size=40_000), is_member)}
    (ax,) = plots.roc_curves(results).axes
    assert ax.get_xlim()[0] == pytest.approx(1 / 20_000)
    fig, ax = plt.subplots()
    assert plots.roc_curves(results, ax=ax, lower=1e-3) is fig
    assert ax.get_xlim() == pytest.approx((1e-3, 1.0))


def test_plots_refuse_empty_results():
    with pytest.raises(ValueError, match="no attacks"):
        plots.roc_curves({})
    with pytest.raises(ValueError, match="no attacks"):
        plots.score_distributions({})
