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
    """Our baselines beside Table 2.

    ``rows``: one dict per dataset with ``dataset`` and fractions ``test_acc``, ``train_acc``,
    ``adv_yeom`` (and optionally ``adv_salem``). Returns percentages, one row per dataset,
    with the paper's ``acc``, ``adv_yeom`` and ``adv_salem`` as ``paper_*`` columns.
    """
    paper = published("table2_baselines").set_index("dataset")
    table = []
    for row in rows:
        dataset = row["dataset"]
        entry = {
            "dataset": DATASETS[dataset].title,
            "train acc (%)": 100 * row["train_acc"],
            "test acc (%)": 100 * row["test_acc"],
            "gap (pp)": 100 * (row["train_acc"] - row["test_acc"]),
            "Adv_Yeom (%)": 100 * row["adv_yeom"],
            "paper acc (%)": paper.loc[dataset, "acc_pct"],
            "paper Adv_Yeom (%)": paper.loc[dataset, "adv_yeom_pct"],
            "paper Adv_Salem (%)": paper.loc[dataset, "adv_salem_pct"],
        }
        if "adv_salem" in row:
            entry["Adv_Salem (%)"] = 100 * row["adv_salem"]
        table.append(entry)
    return pd.DataFrame(table).set_index("dataset")
