"""The paper's published values and the side-by-side tables the book prints.

The published tables of Kaya, Hong & Dumitras (2020) ship with the package as CSV files under
``mia_utils/reference/kaya2020/``; values there are percentages, exactly as printed.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from mia_utils.data import DATASETS

REFERENCE_TABLES = (
    "table1_hyperparameter_ranges", "table2_baselines", "tables3to5_regularization",
    "table6_combinations_cifar100", "table7_dtc_baselines", "table8_dtc_regularized_rad15", "dp_fmnist",
)


def published(table: str) -> pd.DataFrame:
    """One of the paper's tables (see ``REFERENCE_TABLES``) as a DataFrame of percentages."""
    if table not in REFERENCE_TABLES:
        raise ValueError(f"table: unknown table {table!r}; allowed: {', '.join(REFERENCE_TABLES)}")
    path = resources.files("mia_utils") / "reference" / "kaya2020" / f"{table}.csv"
    with path.open() as handle:
        return pd.read_csv(handle)


def baseline_comparison(rows: list[dict]) -> pd.DataFrame:
    """Our baselines beside the paper's Table 2.

    ``rows``: one dict per dataset with ``dataset``, fractions ``test_acc``, ``train_acc``, and
    attack results ``yeom`` and ``salem`` (:class:`mia_utils.attacks.AttackResult`). Returns one
    row per dataset; accuracies and advantages in percent, "±" columns are bootstrap standard
    errors in percentage points, and the paper's values are the ``paper`` columns.
    """
    paper = published("table2_baselines").set_index("dataset")
    table = []
    for row in rows:
        dataset = row["dataset"]
        yeom, salem = row["yeom"].metrics["advantage"], row["salem"].metrics["advantage"]
        table.append({
            "dataset": DATASETS[dataset].title,
            "train acc (%)": 100 * row["train_acc"],
            "test acc (%)": 100 * row["test_acc"],
            "gap (pp)": 100 * (row["train_acc"] - row["test_acc"]),
            "Adv_Yeom (%)": 100 * yeom.value,
            "Adv_Yeom ±": 100 * yeom.std,
            "Adv_Salem (%)": 100 * salem.value,
            "Adv_Salem ±": 100 * salem.std,
            "paper acc (%)": paper.loc[dataset, "acc_pct"],
            "paper Adv_Yeom (%)": paper.loc[dataset, "adv_yeom_pct"],
            "paper Adv_Salem (%)": paper.loc[dataset, "adv_salem_pct"],
        })
    return pd.DataFrame(table).set_index("dataset")


ATTACK_TITLES = {
    "yeom": "Yeom (known average training loss)",
    "loss": "Loss threshold (calibrated Yeom)",
    "confidence": "Confidence threshold",
    "entropy": "Entropy threshold",
    "modified_entropy": "Modified-entropy threshold",
    "salem": "Salem (ML-Leaks MLP)",
    "lira_online": "LiRA online",
    "lira_online_fixed_variance": "LiRA online, fixed variance",
    "lira_offline": "LiRA offline",
    "lira_offline_fixed_variance": "LiRA offline, fixed variance",
}


def attack_table(results: dict) -> pd.DataFrame:
    """One row per attack: advantage, AUC and TPR at 0.1 % / 1 % FPR as "value ± std" in
    percent (bootstrap standard errors), with what the adversary is assumed to know."""
    from mia_utils.attacks import ATTACK_KNOWLEDGE

    rows = []
    for name, result in results.items():
        m = result.metrics
        rows.append({
            "attack": ATTACK_TITLES.get(name, name),
            "advantage (%)": m["advantage"].format(),
            "AUC (%)": m["auc"].format(),
            "TPR @ 0.1 % FPR (%)": m["tpr_at_0.1%_fpr"].format(digits=2),
            "TPR @ 1 % FPR (%)": m["tpr_at_1%_fpr"].format(),
            "the adversary knows": ATTACK_KNOWLEDGE.get(name, ""),
        })
    return pd.DataFrame(rows).set_index("attack")


# --- the paper's selection logic (Tables 3-5) --------------------------------------------------

SCENARIOS = ("max", "rad5", "rad15")
SCENARIO_TITLES = {"max": "Max", "rad5": "RAD<5%", "rad15": "RAD<15%"}
RAD_LIMITS = {"rad5": 0.05, "rad15": 0.15}


def result_row(mechanism: str, value, outputs: dict, seed: int = 0) -> dict:
    """Test accuracy, Yeom's and Salem's advantages (fractions) of one trained configuration,
    from its stored per-sample outputs."""
    from mia_utils.attacks import AttackInputs, salem, yeom
    from mia_utils.experiment import summary_metrics

    inputs = AttackInputs.from_outputs(outputs)
    summary = summary_metrics(outputs)
    return {"mechanism": mechanism, "value": value, "test_acc": summary["test_acc"],
            "train_acc": summary["train_acc"], "adv_yeom": yeom(inputs, n_bootstrap=0).advantage,
            "adv_salem": salem(inputs, n_bootstrap=0, seed=seed).advantage}


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


CHANGE_COLUMNS = {"d_acc_pct": "ΔAcc (%)", "d_adv_yeom_pct": "ΔAdv_Yeom (%)", "d_adv_salem_pct": "ΔAdv_Salem (%)"}


def mark_changes(scenarios: pd.DataFrame) -> pd.DataFrame:
    """Relative changes as text, per scenario: "▼" marks the largest drop in each column and
    "▲" flags an inadvertent increase of an attack's advantage."""
    marked = scenarios.copy()
    for column in CHANGE_COLUMNS:
        text = marked[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:+.1f}")
        for scenario, group in marked.groupby("scenario"):
            values = group[column].dropna()
            if len(values) and values.min() < 0:
                text[values.idxmin()] += " ▼"
        if column != "d_acc_pct":
            text[marked[column] > 0] += " ▲"
        marked[column] = text
    return marked


def scenario_table(scenarios: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Our three-scenario table beside the paper's (Tables 3-5) for ``dataset``, marked."""
    ours = mark_changes(scenarios)
    paper = published("tables3to5_regularization")
    paper = paper[paper["dataset"] == dataset].set_index(["mechanism", "scenario"])
    rows = []
    for _, row in ours.iterrows():
        key = (row["mechanism"], row["scenario"])
        entry = {"mechanism": row["mechanism"], "scenario": SCENARIO_TITLES[row["scenario"]],
                 "value": row["value"], **{title: row[column] for column, title in CHANGE_COLUMNS.items()}}
        if key in paper.index:
            published_row = paper.loc[key]
            entry.update({"paper value": published_row["value"],
                          "paper ΔAcc (%)": published_row["d_acc_pct"],
                          "paper ΔAdv_Yeom (%)": published_row["d_adv_yeom_pct"],
                          "paper ΔAdv_Salem (%)": published_row["d_adv_salem_pct"]})
        rows.append(entry)
    return pd.DataFrame(rows).set_index(["mechanism", "scenario"])
