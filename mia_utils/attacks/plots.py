"""Figures of membership inference attacks (seaborn / matplotlib, colour-blind-safe palette).

``results`` maps an attack's name to ``(scores, is_member)``: per-sample scores (higher = more likely
a member) and the true membership, as torch tensors or numpy arrays. Every function returns the
matplotlib Figure and leaves showing or saving it to the caller (no ``plt.show()``).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from mia_utils.attacks import metrics

MEMBER, NON_MEMBER = "members", "non-members"
#: Default x label of :func:`score_distributions`; pass the attack's own (e.g. "minus loss (nats)").
SCORE_LABEL = "attack score (higher = member)"


def _palette() -> list:
    return sns.color_palette("colorblind")


def _check_results(results: Mapping) -> None:
    if not results:
        raise ValueError("results: no attacks to plot")


def _arrays(scores, is_member) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 scores and bool membership (the checks of :mod:`mia_utils.attacks.metrics`)."""
    return metrics._validate_scores(scores, is_member)


def score_distributions(results: Mapping[str, tuple], ax_grid=None, score_label: str = SCORE_LABEL) -> Figure:
    """One panel per attack: step histograms (density) of the members' and the non-members' scores,
    on shared bins, titled by the attack's name. ``ax_grid``: axes to draw into (any array or list
    with at least one axis per attack, in order); by default a new row of panels."""
    _check_results(results)
    if ax_grid is None:
        columns = min(2, len(results))
        rows = -(-len(results) // columns)
        fig, ax_grid = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False,
                                    layout="constrained")
    axes = list(np.asarray(ax_grid, dtype=object).ravel())
    if len(axes) < len(results):
        raise ValueError(f"ax_grid: {len(axes)} axes for {len(results)} attacks")
    member_colour, non_member_colour = _palette()[:2]
    for ax, (name, (scores, is_member)) in zip(axes, results.items()):
        scores, is_member = _arrays(scores, is_member)
        finite = np.isfinite(scores)
        # Scores are often heavy-tailed: bin the central 99 % so that the bulk stays readable.
        low, high = np.percentile(scores[finite], [0.5, 99.5])
        if not high > low:
            low, high = scores[finite].min(), scores[finite].max()
        bins = np.histogram_bin_edges(scores[finite], bins="auto", range=(low, high) if high > low else None)
        if bins.size > 81:  # keep the step outlines readable for large sets
            bins = np.linspace(bins[0], bins[-1], 81)
        for mask, label, colour in ((is_member, MEMBER, member_colour), (~is_member, NON_MEMBER, non_member_colour)):
            sns.histplot(x=scores[mask & finite], bins=bins, stat="density", element="step", fill=False,
                         color=colour, label=label, ax=ax)
        ax.set_title(str(name))
        ax.set_xlabel(score_label)
        ax.set_ylabel("density (per score unit)")
        ax.legend(frameon=False)
    return axes[0].figure


def _lower_limit(results: Mapping[str, tuple]) -> float:
    """Smallest rate shown: 1e-4, or 1 / (largest class size) when that is smaller, so that every
    non-zero rate of every curve is on the plot."""
    largest = 1
    for scores, is_member in results.values():
        _, is_member = _arrays(scores, is_member)
        largest = max(largest, int(is_member.sum()), int((~is_member).sum()))
    return min(1e-4, 1.0 / largest)


def roc_curves(results: Mapping[str, tuple], ax=None, lower: float | None = None) -> Figure:
    """ROC curves of several attacks on log-log axes (false / true positive rate from ``lower`` to 1),
    the chance line y = x dashed, and a legend with each attack's AUC (:func:`metrics.roc_auc`).

    ``lower``: smallest rate shown, by default :func:`_lower_limit`; zero rates are drawn at ``lower``
    so the log scale stays valid.
    """
    _check_results(results)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.0, 4.5), layout="constrained")
    if lower is None:
        lower = _lower_limit(results)
    if not 0.0 < lower < 1.0:
        raise ValueError(f"lower: must be in (0, 1), got {lower}")
    colours = _palette()
    for i, (name, (scores, is_member)) in enumerate(results.items()):
        fpr, tpr, _ = metrics.roc_curve(scores, is_member)
        auc = metrics._trapezoid(fpr, tpr)
        ax.plot(np.clip(fpr, lower, 1.0), np.clip(tpr, lower, 1.0), color=colours[i % len(colours)],
                linewidth=1.5, label=f"{name} (AUC {auc:.3f})")
    ax.plot([lower, 1.0], [lower, 1.0], linestyle="--", color="0.5", linewidth=1.0, zorder=1.5,
            label="chance (AUC 0.500)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lower, 1.0)
    ax.set_ylim(lower, 1.0)
    ax.set_xlabel("false positive rate (fraction of non-members)")
    ax.set_ylabel("true positive rate (fraction of members)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small")
    return ax.figure

