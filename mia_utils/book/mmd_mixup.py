"""Chapter 07, MMD + mix-up (Li et al. 2021): its settings over seeds and its verdicts: does it lower
Adv_Yeom and the gap against the baseline (:func:`mmd_versus_baseline`, seed by seed), and does it
leak less than each paper mechanism at matched accuracy (:func:`matched_accuracy_comparison`)."""

from __future__ import annotations

from dataclasses import dataclass

from mia_utils import experiment
from mia_utils.attacks.evidence import INCONCLUSIVE, combine_verdicts
from mia_utils.book.generalization import METRIC_NAMES
from mia_utils.book.replicated import Setting
from mia_utils.book.verdicts import (
    RelatedFinding,
    difference_finding,
    nan_estimate,
    selection_level,
)


def mmd_defense(params: dict) -> dict:
    """Chapter 07's defense as mechanism values, from its validated parameters."""
    return {"mixup": params["mixup_alpha"], "mmd": params["mmd_lambda"]}


#: Chapter 07's two MMD schedules: the MMD term in every step's loss (the book's headline), and
#: Li et al.'s code's gated pass between epochs (:class:`mia_utils.defenses.mmd.GatedMMD`).
MMD_SCHEDULES = {"every step": "mmd", "authors' code": "mmd_gated"}


def mmd_setting_configs(profile, dataset: str, params: dict, seeds, schedule: str = "every step") -> list:
    """Chapter 07's MMD + mix-up targets, one per seed in ``seeds``: the setting ``mmd = λ`` (or
    ``mmd_gated = λ`` for ``schedule`` "authors' code", :data:`MMD_SCHEDULES`) with mix-up
    underneath (:func:`mia_utils.book.replicated.setting_configs`), so that it pairs seed by seed with the
    baseline and the regularization chapter's settings."""
    from mia_utils.book import replicated

    defense = mmd_defense(params)
    return replicated.setting_configs(profile, dataset, MMD_SCHEDULES[schedule], defense["mmd"], seeds,
                                  {"mixup": defense["mixup"]})


def mmd_setting(profile, dataset: str, params: dict, seeds, store=None, schedule: str = "every step") -> Setting:
    """Train (or read back) and evaluate :func:`mmd_setting_configs`, as a :class:`Setting`."""
    from mia_utils.book import replicated

    defense = mmd_defense(params)
    return replicated.run_setting(profile, dataset, MMD_SCHEDULES[schedule], defense["mmd"], seeds, store,
                              {"mixup": defense["mixup"]})


def evaluated_setting(run: experiment.Run, profile, mechanism: str, value=None, store=None) -> Setting:
    """One trained run as a one-seed :class:`mia_utils.book.replicated.Setting`, evaluated (and cached)
    exactly as :func:`mia_utils.book.replicated.run_setting` evaluates its runs, so it pairs with them."""
    from mia_utils.attacks import evaluation

    config = run.config
    metrics_ = evaluation.evaluate(run, n_bootstrap=profile.bootstrap, seed=config.seed, store=store)
    return Setting(mechanism, value, (config.seed,), [metrics_], [run.provenance.get("mechanisms", {})], [config],
                   [None], int(not run.from_store))


def setting_difference(claim: str, setting: Setting, reference: Setting, metric: str, expected: str = "decrease",
                       candidates: int = 1, nan_text: str = "not measurable") -> RelatedFinding:
    """:func:`difference_finding` of ``setting - reference`` on ``metric``, seed by seed (they must
    share their seeds), at the Bonferroni level for ``candidates``."""
    if setting.seeds != reference.seeds:
        raise ValueError(f"reference: seeds {reference.seeds} differ from the setting's {setting.seeds}")
    return difference_finding(claim, setting.values(metric), reference.values(metric), setting.variances(metric),
                              reference.variances(metric), expected, selection_level(candidates), candidates,
                              nan_text)


def mmd_versus_baseline(baseline: Setting, defended: Setting,
                        metrics_=("adv_yeom", "gap")) -> dict[str, RelatedFinding]:
    """Li et al.'s claim that MMD + mix-up lowers each of ``metrics_`` below the baseline's:
    :func:`setting_difference` (defended - baseline, expected to decrease) per metric, and
    ``"all"``, which holds when every one holds (:func:`combined_verdict`)."""
    out = {m: setting_difference(f"MMD + mix-up lowers {METRIC_NAMES.get(m, m)}", defended, baseline, m)
           for m in metrics_}
    states = [f.verdict for f in out.values()]
    summary = ", ".join(f"{METRIC_NAMES.get(m, m)} {f.verdict}" for m, f in out.items())
    names = " and ".join(METRIC_NAMES.get(m, m) for m in metrics_)
    out["all"] = RelatedFinding(f"MMD + mix-up lowers both {names}", combine_verdicts(states),
                                nan_estimate(), summary)
    return out


@dataclass(frozen=True)
class MatchedComparison:
    """One paper mechanism against MMD + mix-up at matched accuracy: its least-leaking
    ``setting`` among the ``candidates`` at least as accurate as MMD + mix-up (None: none is),
    and the ``finding`` that MMD + mix-up leaks less than it."""

    mechanism: str
    setting: Setting | None
    candidates: int
    finding: RelatedFinding


def matched_accuracy_comparison(defended: Setting, settings: list[Setting], mechanisms,
                                metric: str = "adv_yeom") -> list[MatchedComparison]:
    """Li et al.'s claim that MMD + mix-up (``defended``) leaks less than each of the paper's
    ``mechanisms`` at matched accuracy. Per mechanism: among its ``settings`` whose mean test
    accuracy is at least the defense's, the one with the lowest ``metric``; the verdict reads
    ``defended - chosen`` on ``metric`` (paired by seed; expected below 0), at the Bonferroni
    level for the number of candidates it was chosen from (:func:`selection_level`). holds: MMD +
    mix-up leaks less; contradicted: the mechanism does. No setting as accurate: inconclusive."""
    budget = defended.mean("test_acc")
    out = []
    for mechanism in mechanisms:
        pool = [s for s in settings if s.mechanism == mechanism and s.mean("test_acc") >= budget - 1e-12]
        claim = f"MMD + mix-up leaks less than {mechanism.replace('_', ' ')} at matched accuracy"
        if not pool:
            finding = RelatedFinding(claim, INCONCLUSIVE, nan_estimate(),
                                     "no setting of it is at least as accurate as MMD + mix-up")
            out.append(MatchedComparison(mechanism, None, 0, finding))
            continue
        best = min(pool, key=lambda s: s.mean(metric))
        finding = setting_difference(f"{claim} ({best.label})", defended, best, metric, "decrease", len(pool))
        out.append(MatchedComparison(mechanism, best, len(pool), finding))
    return out
