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
