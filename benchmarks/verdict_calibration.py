"""How often the verdict rule decides wrongly, and how often it finds a real effect: a simulation
from the store's own variance components.

Run from the repository root, after the profile's chapter 02, 03 and 04 runs are in the store
(``python -m mia_utils sweep --profile quick``):

    .venv/bin/python benchmarks/verdict_calibration.py [--profile quick] [--replications 2000] [--out benchmarks/results]

1. **Components.** For every setting of chapter 02's grid, chapter 03's DP grid and chapter 04's pairs
   and early stops (one family per base mechanism), and each metric a
   verdict reads (Adv_Yeom, AUC, Adv_Salem, test accuracy), the paired change against the baseline
   over its seeds: the spread of the per-seed differences (``s^2``), the paired within-seed variance
   (the bootstrap of the difference on shared resamples) and the unpaired sum ``w_a + w_b`` the
   rule used before. The ratio paired / unpaired says how much the pairing cancels.
2. **The truth to simulate.** Each comparison's true seed-to-seed variance is its moderated
   estimate (the family prior fitted on the store, combined with its own ``s^2``; at least its
   paired variance), its evaluation share the paired variance. A stress variant takes the raw
   ``s^2`` instead (noisier, so more spread between comparisons than there is).
3. **The rules** (:data:`mia_utils.attacks.evidence.RULES`) judge simulated families of the same
   comparisons at 3, 5 and 8 seeds: under the null (no effect anywhere) the rate of "holds" plus
   "contradicted" should be near 5 %; with a true fall of 2 or 3 points, the rate of "holds" is the
   power.

Writes ``results/verdict_calibration.md`` (the tables) and ``results/verdict_calibration.json``
(the components, which ``tests/test_evidence.py`` simulates again).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from mia_utils.attacks import evidence
from mia_utils.book import findings, plan, replicated
from mia_utils.book.profiles import get_profile
from mia_utils.store import ResultStore

METRICS = findings.CALIBRATED_METRICS
SEED_COUNTS = (3, 5, 8)
EFFECTS = (0.02, 0.03)


#: The chapters whose comparisons are simulated: chapter 02's grid, chapter 03's DP grid and
#: chapter 04's pairs and early stops.
CHAPTERS = ("02_regularization", "03_differential_privacy", "04_combinations")


def components(profile, store) -> dict[str, list[dict]]:
    """Metric -> :func:`mia_utils.book.findings.variance_families` of the profile's chapter 02, 03
    and 04 runs in ``store`` (read back, nothing trained: :func:`main` checks first)."""
    seeds = replicated.seed_list(profile)
    reg = findings.regularization_results(profile, "fmnist", seeds, store, confirm=False)
    dp = findings.dp_settings(profile, "fmnist", seeds, store)
    combos = [findings.combinations(profile, reg, base, store) for base in ("distillation", "random_crop")]
    return {metric: findings.variance_families(reg, dp, metric, combos) for metric in METRICS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--replications", type=int, default=2000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    profile, store = get_profile(args.profile), ResultStore()
    planned = plan.book_plan(args.profile, store=store, chapters=CHAPTERS)
    missing = planned.missing(store)
    if missing or planned.pending:
        print(f"{len(missing)} of {len(planned.runs)} runs of chapters 02-04 are not in the store {store.root}"
              f"{' (and some cannot be planned yet)' if planned.pending else ''}; "
              f"run `python -m mia_utils sweep --profile {args.profile}` first", file=sys.stderr)
        return 1
    started = time.perf_counter()
    found = components(profile, store)
    lines = [f"# Verdict rule: error rates simulated from the {args.profile} store's variance components", "",
             f"{platform.processor() or platform.machine()}; {args.replications} simulated families per cell; "
             f"profile {args.profile}, seeds of the store: {profile.seeds} (baseline {profile.baseline_seeds}).", "",
             "## The components (median over comparisons; variances in squared points)", "",
             "| metric | comparisons | seed-to-seed s² | paired within | unpaired w_a + w_b | paired / unpaired | prior (regularization) |",
             "|---|---|---|---|---|---|---|"]
    for metric, rows in found.items():
        spread = np.median([r["spread"] for r in rows]) * 1e4
        paired = np.median([r["paired"] for r in rows]) * 1e4
        unpaired = np.median([r["unpaired"] for r in rows]) * 1e4
        ratios = [r["paired"] / r["unpaired"] for r in rows]
        prior = next((r["prior"] for r in rows if r["family"] == "regularization"), "none")
        lines.append(f"| {METRICS[metric]} | {len(rows)} | {spread:.2f} | {paired:.2f} | {unpaired:.2f} | "
                     f"{np.min(ratios):.2f}-{np.max(ratios):.2f} (median {np.median(ratios):.2f}) | {prior} |")
    for truth in ("fitted", "raw"):
        title = ("the moderated components" if truth == "fitted"
                 else "the raw per-comparison s² (stress test: more spread between comparisons than there is)")
        lines += ["", f"## Rates with {title}", "",
                  "Null: the rate of holds + contradicted with no effect anywhere (nominal 5 %). Power: the rate of "
                  "holds with a true fall of 2 or 3 points in every comparison.", "",
                  "| metric | rule | " + " | ".join(f"null, {n} seeds" for n in SEED_COUNTS) + " | "
                  + " | ".join(f"power {int(100 * e)} pp, {n} seeds" for e in EFFECTS for n in SEED_COUNTS) + " |",
                  "|---|---|" + "---|" * (len(SEED_COUNTS) * (1 + len(EFFECTS)))]
        for metric, rows in found.items():
            for rule in evidence.RULES:
                rates = findings.rule_error_rates(rows, rule, SEED_COUNTS, EFFECTS, args.replications, truth)
                cells = [rates[("null", n)] for n in SEED_COUNTS] + [rates[("power", e, n)] for e in EFFECTS
                                                                      for n in SEED_COUNTS]
                lines.append(f"| {METRICS[metric]} | {rule} | " + " | ".join(f"{100 * c:.1f} %" for c in cells) + " |")
                print(lines[-1], flush=True)
    lines += ["", "## The book's rule (moderated components), family by family", "",
              "Null: the rate of holds + contradicted with no effect; power: holds with a true 3-point fall.", "",
              "| metric | family | comparisons | " + " | ".join(f"null, {n} seeds" for n in SEED_COUNTS) + " | "
              + " | ".join(f"power 3 pp, {n} seeds" for n in SEED_COUNTS) + " |",
              "|---|---|---|" + "---|" * (2 * len(SEED_COUNTS))]
    for metric, rows in found.items():
        for family in dict.fromkeys(r["family"] for r in rows):
            members = [r for r in rows if r["family"] == family]
            rates = findings.rule_error_rates(members, "moderated", SEED_COUNTS, (0.03,), args.replications)
            cells = [rates[("null", n)] for n in SEED_COUNTS] + [rates[("power", 0.03, n)] for n in SEED_COUNTS]
            lines.append(f"| {METRICS[metric]} | {family} | {len(members)} | "
                         + " | ".join(f"{100 * c:.1f} %" for c in cells) + " |")
            print(lines[-1], flush=True)
    lines += ["", f"Simulated in {time.perf_counter() - started:.0f} s."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verdict_calibration.md").write_text("\n".join(lines) + "\n")
    (out / "verdict_calibration.json").write_text(json.dumps(
        {"profile": args.profile, "components": found}, indent=1, default=float) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
