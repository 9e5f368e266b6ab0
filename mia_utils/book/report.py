"""The paper's published values and the side-by-side tables the book prints.

The published tables of Kaya, Hong & Dumitras (2020) ship with the package as CSV files under
``mia_utils/reference/kaya2020/``; values there are percentages, exactly as printed.
"""

from __future__ import annotations

import math
from importlib import resources

import pandas as pd

from mia_utils.data import DATASETS

REFERENCE_TABLES = (
    "table1_hyperparameter_ranges", "table2_baselines", "tables3to5_regularization",
    "table6_combinations_cifar100", "table7_dtc_baselines", "table8_dtc_regularized_rad15", "dp_fmnist",
    "findings",
)


def published(table: str) -> pd.DataFrame:
    """One of the paper's tables (see ``REFERENCE_TABLES``) as a DataFrame of percentages."""
    if table not in REFERENCE_TABLES:
        raise ValueError(f"table: unknown table {table!r}; allowed: {', '.join(REFERENCE_TABLES)}")
    path = resources.files("mia_utils") / "reference" / "kaya2020" / f"{table}.csv"
    with path.open() as handle:
        return pd.read_csv(handle)


def _interval(estimate, digits: int = 1) -> str:
    return estimate.format(digits=digits)


def baseline_comparison(baselines: dict) -> pd.DataFrame:
    """Our baselines beside the paper's Table 2.

    ``baselines``: dataset -> :class:`mia_utils.book.replicated.Setting` of the unregularized model over
    seeds. Returns one row per dataset with the seed mean and 95 % interval (percent) of the
    training and test accuracy, the gap (points) and both advantages, the number of seeds, and the
    paper's values (``paper`` columns)."""
    paper = published("table2_baselines").set_index("dataset")
    table = []
    for dataset, setting in baselines.items():
        table.append({
            "dataset": DATASETS[dataset].title,
            "seeds": len(setting.seeds),
            "train acc (%)": _interval(setting.estimate("train_acc")),
            "test acc (%)": _interval(setting.estimate("test_acc")),
            "gap (pp)": _interval(setting.estimate("gap")),
            "Adv_Yeom (%)": _interval(setting.estimate("adv_yeom")),
            "Adv_Salem (%)": _interval(setting.estimate("adv_salem")),
            "paper acc (%)": paper.loc[dataset, "acc_pct"],
            "paper Adv_Yeom (%)": paper.loc[dataset, "adv_yeom_pct"],
            "paper Adv_Salem (%)": paper.loc[dataset, "adv_salem_pct"],
        })
    return pd.DataFrame(table).set_index("dataset")


ATTACK_TITLES = {
    "yeom": "Yeom (known average training loss)",
    "yeom_objective": "Yeom (known average training objective)",
    "loss": "Loss threshold (calibrated Yeom)",
    "confidence": "Confidence threshold",
    "entropy": "Entropy threshold",
    "modified_entropy": "Modified-entropy threshold",
    "salem": "Salem (Kaya et al.'s MLP variant)",
    "lira_online": "LiRA online",
    "lira_online_fixed_variance": "LiRA online, fixed variance",
    "lira_offline": "LiRA offline",
    "lira_offline_fixed_variance": "LiRA offline, fixed variance",
}


def attack_table(results: dict) -> pd.DataFrame:
    """One row per attack: advantage and AUC as "value ± std" in percent (bootstrap standard
    errors); TPR at 0.1 % / 1 % FPR as "value [low, high]" in percent with its 95 % Clopper-Pearson
    interval, or "not resolvable at n = 1,000" when the n non-members of the evaluation set cannot
    resolve that FPR; with what the adversary is assumed to know."""
    from mia_utils.attacks import ATTACK_KNOWLEDGE

    def tpr(estimate, n: int, digits: int) -> str:
        return estimate.format(digits=digits, exact=True) if estimate.resolvable else f"not resolvable at n = {n:,}"

    rows = []
    for name, result in results.items():
        m = result.metrics
        n = int((~result.is_member).sum())
        rows.append({
            "attack": ATTACK_TITLES.get(name, name),
            "advantage (%)": m["advantage"].format(),
            "AUC (%)": m["auc"].format(),
            "TPR @ 0.1 % FPR (%)": tpr(m["tpr_at_0.1%_fpr"], n, 2),
            "TPR @ 1 % FPR (%)": tpr(m["tpr_at_1%_fpr"], n, 1),
            "the adversary knows": ATTACK_KNOWLEDGE.get(name, ""),
        })
    return pd.DataFrame(rows).set_index("attack")


# --- the paper's selection logic (Tables 3-5) --------------------------------------------------

SCENARIOS = ("max", "rad5", "rad15")
SCENARIO_TITLES = {"max": "Max", "rad5": "RAD<5%", "rad15": "RAD<15%"}
RAD_LIMITS = {"rad5": 0.05, "rad15": 0.15}


def relative_change(value: float, baseline: float) -> float:
    """(value - baseline) / baseline in percent; NaN when the baseline is not positive."""
    return 100.0 * (value - baseline) / baseline if baseline > 0 else float("nan")


def select_scenarios(rows: pd.DataFrame, baseline: dict) -> pd.DataFrame:
    """The paper's three settings per mechanism, with relative changes over the baseline.

    ``rows``: one row per (mechanism, value) with ``test_acc``, ``adv_yeom``, ``adv_salem``
    (fractions); ``baseline``: the same keys for the unregularized model. Per mechanism:
    ``max`` is the value with the highest accuracy; ``rad5`` / ``rad15`` the value with the
    smallest Yeom advantage among those whose relative accuracy drop (RAD) is under 5 % / 15 %
    (ties broken by higher accuracy). A scenario no value satisfies is left out. Returns one row
    per (mechanism, scenario) with the chosen value, its metrics, ``rad_pct`` and the relative
    changes ``d_acc_pct``, ``d_adv_yeom_pct``, ``d_adv_salem_pct`` (percent).
    """
    required = {"mechanism", "value", "test_acc", "adv_yeom", "adv_salem"}
    missing = required - set(rows.columns)
    if missing:
        raise ValueError(f"rows: missing columns {sorted(missing)}")
    base_acc = baseline["test_acc"]
    chosen = []
    for mechanism, group in rows.groupby("mechanism", sort=False):
        group = group.assign(rad=(base_acc - group["test_acc"]) / base_acc)
        picks = {"max": group.sort_values(["test_acc", "adv_yeom"], ascending=[False, True]).iloc[0]}
        for scenario, limit in RAD_LIMITS.items():
            within = group[group["rad"] < limit]
            if len(within):
                picks[scenario] = within.sort_values(["adv_yeom", "test_acc"], ascending=[True, False]).iloc[0]
        for scenario in SCENARIOS:
            if scenario not in picks:
                continue
            row = picks[scenario]
            chosen.append({
                "mechanism": mechanism, "scenario": scenario, "value": row["value"],
                "test_acc": row["test_acc"], "adv_yeom": row["adv_yeom"], "adv_salem": row["adv_salem"],
                "rad_pct": 100.0 * row["rad"],
                "d_acc_pct": relative_change(row["test_acc"], base_acc),
                "d_adv_yeom_pct": relative_change(row["adv_yeom"], baseline["adv_yeom"]),
                "d_adv_salem_pct": relative_change(row["adv_salem"], baseline["adv_salem"]),
            })
    return pd.DataFrame(chosen)


CHANGE_METRICS = {"test_acc": "ΔAcc", "adv_yeom": "ΔAdv_Yeom", "adv_salem": "ΔAdv_Salem"}


def _paper_cells(dataset: str):
    paper = published("tables3to5_regularization")
    return paper[paper["dataset"] == dataset].set_index(["mechanism", "scenario"])


def scenario_table(results) -> pd.DataFrame:
    """Our three-scenario table (Tables 3-5; the paper's own values are :func:`paper_scenario_table`,
    kept apart so that each fits the page).

    ``results``: :class:`mia_utils.book.findings.RegularizationResults`. One row per (mechanism,
    scenario) the selection picked (on the selection seeds' means): the setting as the paper writes
    it (``T = 2``), the paired change of accuracy and of both advantages against the same seeds'
    baseline, measured on the confirmation seeds (:meth:`~mia_utils.book.findings.RegularizationResults.judged`) (relative to the
    baseline's mean, in percent, where the baseline's interval excludes zero; otherwise absolute,
    in points, marked "pp"), and whether Adv_Yeom fell (the verdict of its paired change)."""
    from mia_utils.attacks.evidence import verdict
    from mia_utils.defenses import setting_text

    base = results.baseline
    rows = []
    for _, pick in results.scenarios.iterrows():
        setting = results.judged(pick["mechanism"], pick["scenario"])
        entry = {"mechanism": pick["mechanism"], "scenario": SCENARIO_TITLES[pick["scenario"]],
                 "setting": setting_text(pick["mechanism"], pick["value"])}
        for metric, title in CHANGE_METRICS.items():
            entry[title] = setting.change_text(base, metric)
        entry["Adv_Yeom lowered?"] = verdict(setting.change(base, "adv_yeom"), "decrease")
        rows.append(entry)
    return pd.DataFrame(rows).set_index(["mechanism", "scenario"])


def paper_scenario_table(results) -> pd.DataFrame:
    """The paper's Tables 3-5 for the rows :func:`scenario_table` shows, in the same order: the
    paper's setting and its relative changes of accuracy and both advantages (percent, as printed).
    Rows the paper does not report are left out."""
    from mia_utils.defenses import setting_text

    paper = _paper_cells(results.dataset)
    rows = []
    for _, pick in results.scenarios.iterrows():
        key = (pick["mechanism"], pick["scenario"])
        if key in paper.index:
            cell = paper.loc[key]
            rows.append({"mechanism": pick["mechanism"], "scenario": SCENARIO_TITLES[pick["scenario"]],
                         "setting": setting_text(pick["mechanism"], cell["value"]), "ΔAcc (%)": cell["d_acc_pct"],
                         "ΔAdv_Yeom (%)": cell["d_adv_yeom_pct"], "ΔAdv_Salem (%)": cell["d_adv_salem_pct"]})
    columns = ["mechanism", "scenario", "setting", "ΔAcc (%)", "ΔAdv_Yeom (%)", "ΔAdv_Salem (%)"]
    return pd.DataFrame(rows, columns=columns).set_index(["mechanism", "scenario"])


READING_METRICS = {"adv_yeom": "(a) clean loss", "adv_yeom_objective": "(b) training objective"}


SIGNAL_READINGS = ("signal removed", "threshold moved", "undecided", "no fall")


def auc_reading(auc_change) -> str:
    """What a paired AUC change (a :class:`~mia_utils.attacks.evidence.SeedEstimate`) shows:
    ``"fell"`` (its fall holds), ``"unchanged or rose"`` (equivalent to zero within
    ``MARGINS["auc"]`` by two one-sided tests, or a rise that holds), or ``"undecided"``."""
    from mia_utils.attacks.evidence import CONTRADICTED, HOLDS, MARGINS, equivalent, verdict

    state = verdict(auc_change, "decrease")
    if state == HOLDS:
        return "fell"
    if state == CONTRADICTED or equivalent(auc_change, MARGINS["auc"]):
        return "unchanged or rose"
    return "undecided"


def signal_reading(advantage_state: str, auc_state: str) -> str:
    """What the threshold-free AUC says about a fall of Yeom's advantage (``advantage_state``, the
    verdict of its predicted decrease; ``auc_state``, :func:`auc_reading`): ``"signal removed"``
    when the AUC fell too, ``"threshold moved"`` when the AUC is shown unchanged (within the
    margin) or risen, ``"undecided"`` when the AUC shows neither (an underpowered interval is not
    evidence of no change), and ``"no fall"`` when the advantage's fall is not shown."""
    from mia_utils.attacks.evidence import HOLDS

    if advantage_state != HOLDS:
        return "no fall"
    return {"fell": "signal removed", "unchanged or rose": "threshold moved"}.get(auc_state, "undecided")


def yeom_readings(results) -> pd.DataFrame:
    """Both readings of Yeom's threshold for every selected (mechanism, scenario), with the
    threshold-free metrics beside them.

    Columns: the absolute Adv_Yeom under reading (a) and (b), the loss AUC and TPR at 0.1 % FPR
    (seed means with 95 % intervals, percent), the paired change of each reading against the
    baseline with its verdict ("decrease" predicted), the AUC's reading (:func:`auc_reading`), what
    the AUC says (:func:`signal_reading` for each reading), and the paper's ΔAdv_Yeom. Every
    selected setting is read on the confirmation seeds (``results.judged``)."""
    from mia_utils.attacks.evidence import verdict
    from mia_utils.defenses import setting_text

    paper = _paper_cells(results.dataset)
    base = results.baseline
    rows = [{"mechanism": "baseline", "scenario": "", "value": "",
             **{f"Adv_Yeom {t} (%)": _interval(base.estimate(m)) for m, t in READING_METRICS.items()},
             "AUC (%)": _interval(base.estimate("auc")),
             "TPR @ 0.1 % FPR (%)": _tpr_text(base), "paper ΔAdv_Yeom (%)": float("nan")}]
    for _, pick in results.scenarios.iterrows():
        setting = results.judged(pick["mechanism"], pick["scenario"])
        auc_state = auc_reading(setting.change(base, "auc"))
        entry = {"mechanism": pick["mechanism"], "scenario": SCENARIO_TITLES[pick["scenario"]],
                 "value": setting_text(pick["mechanism"], pick["value"])}
        for metric, title in READING_METRICS.items():
            change = setting.change(base, metric)
            entry[f"Adv_Yeom {title} (%)"] = _interval(setting.estimate(metric))
            entry[f"Δ {title}"] = setting.change_text(base, metric)
            entry[f"{title} lowered?"] = verdict(change, "decrease")
        entry["AUC (%)"] = _interval(setting.estimate("auc"))
        entry["AUC"] = auc_state
        entry["TPR @ 0.1 % FPR (%)"] = _tpr_text(setting)
        for metric, title in READING_METRICS.items():
            entry[f"AUC says ({title[1]})"] = signal_reading(entry[f"{title} lowered?"], auc_state)
        key = (pick["mechanism"], pick["scenario"])
        entry["paper ΔAdv_Yeom (%)"] = paper.loc[key, "d_adv_yeom_pct"] if key in paper.index else float("nan")
        rows.append(entry)
    return pd.DataFrame(rows).set_index(["mechanism", "scenario"])


def reading_views(readings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`yeom_readings` as two tables narrow enough for the page: the two readings of Yeom's
    advantage (value, change and verdict of each), and what the threshold-free measures say (AUC
    and its verdict, TPR at 0.1 % FPR, the reading of each, and the paper's ΔAdv_Yeom)."""
    advantage = [c for c in readings.columns if c.startswith(("Adv_Yeom", "Δ ", "(")) or c == "value"]
    short = {}
    for title in READING_METRICS.values():  # "(a) clean loss" -> "(a)": the text names each reading
        letter = title.split()[0]
        short.update({f"Adv_Yeom {title} (%)": f"Adv_Yeom {letter} (%)", f"Δ {title}": f"Δ {letter}",
                      f"{title} lowered?": f"{letter} lowered?"})
    return readings[advantage].rename(columns=short), readings[[c for c in readings.columns if c not in advantage]]


def paper_table6(dataset_table: str = "table6_combinations_cifar100") -> pd.DataFrame:
    """The paper's Table 6 as the page shows it: one row per (base mechanism, row), the base's
    and the row's values folded into the labels, and the three relative changes (percent)."""
    from mia_utils.defenses import setting_text

    paper = published(dataset_table)
    rows = []
    for _, cell in paper.iterrows():
        row = cell["row"] if pd.isna(cell["row_value"]) else f"+ {cell['row']} ({setting_text(cell['row'], cell['row_value'])})"
        rows.append({"base": f"{cell['base']}, {setting_text(cell['base'], cell['base_value'])}", "row": row,
                     "ΔAcc (%)": cell["d_acc_pct"],
                     "ΔAdv_Yeom (%)": cell["d_adv_yeom_pct"], "ΔAdv_Salem (%)": cell["d_adv_salem_pct"]})
    return pd.DataFrame(rows).set_index(["base", "row"])


def threshold_moved(readings: pd.DataFrame, reading: str = "a", state: str = "threshold moved") -> list[str]:
    """Mechanisms (in order) for which :func:`yeom_readings` reads ``state`` (one of
    :data:`SIGNAL_READINGS`; default: Yeom's advantage under ``reading``, "a" or "b", fell while the
    loss AUC is shown unchanged or risen) in at least one scenario."""
    if state not in SIGNAL_READINGS:
        raise ValueError(f"state: must be one of {', '.join(SIGNAL_READINGS)}, got {state!r}")
    column = f"AUC says ({reading})"
    moved = readings[readings[column] == state] if column in readings else readings.iloc[:0]
    return list(dict.fromkeys(moved.index.get_level_values(0)))


def _tpr_text(setting) -> str:
    estimate = setting.estimate("tpr_at_0.1%_fpr")
    if math.isnan(estimate.mean):
        return f"not resolvable at n = {int(setting.evaluations[0]['n_nonmembers']['value']):,}"
    return estimate.format(digits=2)


def reading_agreement(results) -> pd.DataFrame:
    """For each reading of Yeom's threshold, in how many selected cells our verdict agrees with
    the sign of the paper's ΔAdv_Yeom (a fall the paper reports and we confirm, or a rise), is
    contradicted, or is inconclusive. One row per reading."""
    from mia_utils.attacks.evidence import CONTRADICTED, HOLDS, verdict

    paper = _paper_cells(results.dataset)
    base = results.baseline
    rows = []
    for metric, title in READING_METRICS.items():
        counts = {"agrees": 0, "disagrees": 0, "inconclusive": 0}
        for _, pick in results.scenarios.iterrows():
            key = (pick["mechanism"], pick["scenario"])
            if key not in paper.index or paper.loc[key, "d_adv_yeom_pct"] == 0:
                continue
            expected = "decrease" if paper.loc[key, "d_adv_yeom_pct"] < 0 else "increase"
            state = verdict(results.judged(*key).change(base, metric), expected)
            counts["agrees" if state == HOLDS else "disagrees" if state == CONTRADICTED else "inconclusive"] += 1
        rows.append({"reading": title, **counts, "cells": sum(counts.values())})
    return pd.DataFrame(rows).set_index("reading")


def reading_summary(agreement: pd.DataFrame) -> str:
    """One sentence naming the reading of Yeom's threshold whose verdicts agree with the paper's
    signs in more cells (:func:`reading_agreement`), or saying that neither does."""
    counts = agreement["agrees"]
    parts = [f"reading {name} agrees in {row['agrees']} of {row['cells']} cells "
             f"({row['disagrees']} contradicted, {row['inconclusive']} inconclusive)" for name, row in agreement.iterrows()]
    if counts.nunique() == 1:
        lead = "Neither reading reproduces the paper's pattern better than the other"
    else:
        lead = f"Reading {counts.idxmax()} reproduces the paper's pattern more closely"
    return f"{lead}: {'; '.join(parts)}."


def settings_table(settings, baseline, symbol: str = "value") -> pd.DataFrame:
    """One row per :class:`mia_utils.book.replicated.Setting`: test accuracy, Adv_Yeom and Adv_Salem as
    seed means with 95 % intervals (percent), and the paired changes of accuracy and Adv_Yeom
    against ``baseline`` (see :meth:`mia_utils.book.replicated.Setting.change_text`), indexed by the
    setting's value under the name ``symbol``. DP runs also get their mean ε and δ."""

    from mia_utils.defenses import number_text

    rows = []
    for setting in settings:
        row = {symbol: number_text(setting.value)}
        epsilons = [f["dp_epsilon"] for f in setting.facts if "dp_epsilon" in f]
        if epsilons:
            row["ε (mean over seeds)"] = float(sum(epsilons) / len(epsilons))
            row["δ"] = setting.facts[0]["dp_delta"]
        row.update({"test acc (%)": _interval(setting.estimate("test_acc")),
                    "Adv_Yeom (%)": _interval(setting.estimate("adv_yeom")),
                    "Adv_Salem (%)": _interval(setting.estimate("adv_salem")),
                    "ΔAcc": setting.change_text(baseline, "test_acc"),
                    "ΔAdv_Yeom": setting.change_text(baseline, "adv_yeom")})
        rows.append(row)
    return pd.DataFrame(rows).set_index(symbol)


def combination_table(combo, baseline) -> pd.DataFrame:
    """Table 6's rows for one base mechanism (:class:`mia_utils.book.findings.Combinations`; the page
    names the base above the table): the base alone at RAD<5% and RAD<15%, each pair, and the base
    stopped early after each E, indexed by that row's label; test
    accuracy and Adv_Yeom as seed means with 95 % intervals, and the paired changes of accuracy,
    Adv_Yeom and Adv_Salem against ``baseline`` (see :func:`settings_table`)."""

    from mia_utils.defenses import setting_text

    labelled = [(f"single, {SCENARIO_TITLES[scenario]} ({setting_text(combo.base, setting.value)})", setting)
                for scenario, setting in combo.singles.items()]
    labelled += [(f"+ {partner} ({setting_text(partner, setting.value)})", setting)
                 for partner, setting in combo.pairs.items()]
    labelled += [(f"+ early stopping ({setting_text('early_stopping', epoch)})", setting)
                 for epoch, setting in combo.early.items()]
    rows = []
    for label, setting in labelled:
        row = {"row": label,
               "test acc (%)": _interval(setting.estimate("test_acc")),
               "Adv_Yeom (%)": _interval(setting.estimate("adv_yeom"))}
        for metric, title in (("test_acc", "ΔAcc"), ("adv_yeom", "ΔAdv_Yeom"), ("adv_salem", "ΔAdv_Salem")):
            row[title] = setting.change_text(baseline, metric)
        rows.append(row)
    return pd.DataFrame(rows).set_index("row")


def paper_epsilons(profile_name: str = "paper", dataset: str = "fmnist") -> pd.DataFrame:
    """The paper's DP-SGD epsilons (its Section 4 text, ``dp_fmnist.csv``) beside what Opacus'
    RDP and PRV accountants certify for the same noise multipliers in the paper's Fashion-MNIST
    setup: the ``profile_name`` profile's members, batch size and epochs, Poisson rate
    q = batch / N, int(1/q) steps per epoch and delta = 1 / (10 N) (:func:`mia_utils.defenses.dp.delta_for`). One row per
    sigma_DP with ``paper``, ``rdp`` and ``prv`` (NaN where the PRV grid would be too large,
    :func:`mia_utils.defenses.dp.epsilon_prv`), so a reader can see which accountant the paper's figures resemble."""
    from opacus.accountants import RDPAccountant

    from mia_utils.book.profiles import get_profile
    from mia_utils.defenses.dp import delta_for, epsilon_prv, sample_rate_for

    profile = get_profile(profile_name)
    n = profile.sizes[dataset].n_members
    q = sample_rate_for(n, profile.batch_size)
    steps = int(1 / q) * profile.epochs
    delta = delta_for(n)
    rows = []
    for _, row in published("dp_fmnist").iterrows():
        sigma = float(row["sigma_dp"])
        accountant = RDPAccountant()
        accountant.history = [(sigma, q, steps)]
        rows.append({"sigma_dp": sigma, "paper": float(row["epsilon_approx"]),
                     "rdp": float(accountant.get_epsilon(delta)), "prv": epsilon_prv(sigma, q, steps, delta)})
    frame = pd.DataFrame(rows)
    frame["closest"] = [closest_accountant(r.paper, {"RDP": r.rdp, "PRV": r.prv}) for r in frame.itertuples()]
    return frame


def closest_accountant(paper: float, epsilons: dict) -> str:
    """The name in ``epsilons`` (accountant -> epsilon; NaN: not computed) whose epsilon is nearest
    to ``paper`` on a log scale (ratios, not differences, since epsilons span five decades)."""
    known = {name: value for name, value in epsilons.items() if value == value and value > 0}
    if not known or not paper > 0:
        return "none"
    return min(known, key=lambda name: abs(math.log(known[name] / paper)))


def low_fpr_text(estimate, n_nonmembers: int) -> str:
    """A true-positive rate at a low false-positive rate as the book prints it: the estimate with
    its exact interval (%), or why it cannot be read at ``n_nonmembers`` non-members."""
    if estimate.resolvable:
        return estimate.format(digits=2, exact=True) + " %"
    return f"not resolvable at n = {n_nonmembers:,}"
