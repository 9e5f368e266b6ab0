"""Chapter 01's computations (mia_utils.book.baselines) on hand-made settings, runs and attack results."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mia_utils.attacks import attack_result
from mia_utils.book import baselines, replicated, report

ATTACKS = ("yeom", "loss", "confidence", "entropy", "modified_entropy", "salem", "lira_online", "lira_offline")
GLUE_KEYS = ["lead_dataset", "n_seeds", "lead_test_acc", "lead_train_acc", "lead_gap", "lead_adv_yeom",
             "lead_adv_salem", "lead_adv_yeom_mean", "lead_adv_salem_mean", "lead_paper_acc", "lead_paper_adv_yeom",
             "lead_paper_adv_salem", "lead_members", "lead_eval", "lead_adversary", "lead_threshold", "lead_tpr",
             "lead_fpr", "lead_yeom_auc", "lead_yeom_low_tpr", "lead_lira_auc", "lead_lira_low_tpr",
             "lead_best_low_fpr_attack", "lead_best_low_tpr", "n_shadows", "n_bootstrap", "first_seed",
             "lead_shadow_images"]


def setting(values: dict, seeds=(0, 1)) -> replicated.Setting:
    """A baseline whose metric ``m`` has the per-seed values ``values[m]`` (fractions)."""
    evaluations = [{m: {"value": v[i], "variance": 1e-6} for m, v in values.items()} for i in range(len(seeds))]
    return replicated.Setting(replicated.BASELINE, None, tuple(seeds), evaluations)


def attacks(n_per_side: int, perfect: str | None = None, seed: int = 0) -> dict:
    """Every attack of :data:`ATTACKS` on ``n_per_side`` members and non-members: noisy scores
    (members a little higher), or perfectly separated for ``perfect``. Yeom's threshold is -0.5
    on the minus-loss scale (0.5 nats)."""
    rng = np.random.default_rng(seed)
    is_member = torch.tensor([True] * n_per_side + [False] * n_per_side)
    out = {}
    for name in ATTACKS:
        if name == perfect:
            scores = torch.where(is_member, 1.0, -1.0).double() + torch.tensor(rng.random(2 * n_per_side)) * 0.1
        else:
            scores = torch.tensor(rng.normal(size=2 * n_per_side)) + 0.3 * is_member
        threshold = -0.5 if name == "yeom" else 0.0
        out[name] = attack_result(name, scores, scores >= threshold, threshold, is_member, n_bootstrap=0, seed=0)
    return out


def fake_run(n_members=500, n_eval=50, epochs=3, seed=0):
    rng = np.random.default_rng(seed)
    outputs = {"eval_logits": torch.tensor(rng.normal(size=(2 * n_eval, 10))),
               "eval_labels": torch.tensor(rng.integers(0, 10, 2 * n_eval)),
               "eval_is_member": torch.tensor([True] * n_eval + [False] * n_eval)}
    outputs.update(member_losses=torch.full((n_members,), 0.5), adv_logits=outputs["eval_logits"],
                   adv_labels=outputs["eval_labels"], adv_is_member=outputs["eval_is_member"])
    history = [{"epoch": e, "train_acc": 0.5 + 0.1 * e, "test_acc": 0.5 + 0.05 * e} for e in range(1, epochs + 1)]
    config = SimpleNamespace(n_members=n_members, n_eval=n_eval, n_adversary=2 * n_eval)
    return SimpleNamespace(config=config, outputs=outputs, history=history)


def shadows(*sizes):
    return [SimpleNamespace(config=SimpleNamespace(is_shadow=False, n_members=n)) for n in sizes]


def results(datasets=("fmnist",), n_per_side=50, perfect=None) -> baselines.Baselines:
    base = setting({"test_acc": [0.80, 0.82], "train_acc": [0.95, 0.97], "gap": [0.15, 0.15],
                    "adv_yeom": [0.10, 0.12], "adv_salem": [0.05, 0.07]})
    entries = {d: baselines.DatasetBaseline(d, base, fake_run(n_eval=n_per_side), shadows(1490, 1517, 1502),
                                            attacks(n_per_side, perfect)) for d in datasets}
    return baselines.Baselines(entries, (0, 1), n_shadows=3, n_bootstrap=50)


def test_key_values_glues_every_name_with_known_values():
    values = baselines.key_values(results())
    assert list(values) == GLUE_KEYS
    assert values["lead_dataset"] == "Fashion-MNIST" and values["n_seeds"] == 2
    assert values["lead_adv_yeom_mean"] == pytest.approx(11.0) and values["lead_adv_salem_mean"] == pytest.approx(6.0)
    assert values["lead_test_acc"].startswith("81.0 [")
    paper = report.published("table2_baselines").set_index("dataset").loc["fmnist"]
    assert values["lead_paper_acc"] == float(paper["acc_pct"])
    assert (values["lead_members"], values["lead_eval"], values["lead_adversary"]) == (500, 100, 200)
    assert values["lead_threshold"] == 0.5  # minus Yeom's threshold on the score scale: nats
    assert values["lead_shadow_images"] == "1,490 to 1,517"
    assert (values["n_shadows"], values["n_bootstrap"], values["first_seed"]) == (3, 50, 0)
    # 50 non-members cannot resolve 0.1 % FPR: no attack is the strongest there
    assert values["lead_best_low_fpr_attack"] == "none (not resolvable)"
    assert values["lead_yeom_low_tpr"] == values["lead_best_low_tpr"] == "not resolvable at n = 50"


def test_the_strongest_attack_at_low_fpr_is_found_when_resolvable():
    found = results(n_per_side=2000, perfect="salem")
    assert baselines.best_low_fpr_attack(found.lead.attacks) == "salem"
    values = baselines.key_values(found)
    assert values["lead_best_low_fpr_attack"] == report.ATTACK_TITLES["salem"]
    assert values["lead_best_low_tpr"].startswith("100.00 [")
    assert baselines.best_low_fpr_attack(attacks(50)) is None


def test_describe_and_attack_tables_follow_the_datasets():
    two = results(datasets=("fmnist", "cifar10"))
    assert two.describe().splitlines() == [
        f"{title}: 2 target model(s) (seeds 0, 1) and 3 shadow models for seed 0"
        for title in ("Fashion-MNIST", "CIFAR-10")]
    tables = two.attack_tables()
    assert list(tables) == ["Fashion-MNIST", "CIFAR-10"]
    assert list(tables["CIFAR-10"].index) == [report.ATTACK_TITLES[name] for name in ATTACKS]
    assert list(two.settings()) == ["fmnist", "cifar10"] and two.lead.dataset == "fmnist"


def test_figures_have_one_panel_per_dataset_and_the_shown_attacks():
    two = results(datasets=("fmnist", "cifar10"))
    figures = baselines.score_figures(two)
    assert list(figures) == ["loss_histogram", "score_distributions"]
    assert all(isinstance(fig, Figure) for fig in figures.values())
    histogram_titles = [ax.get_title() for ax in figures["loss_histogram"].axes]
    assert histogram_titles == [f"{t}: Adv_Yeom = {100 * two.lead.attacks['yeom'].advantage:.1f} %"
                                for t in ("Fashion-MNIST", "CIFAR-10")]
    assert [ax.get_title() for ax in figures["score_distributions"].axes] == [
        report.ATTACK_TITLES[name] for name in baselines.SCORES_SHOWN]
    labels = baselines.roc_figure(two).axes[0].get_legend_handles_labels()[1]
    assert len(labels) == len(baselines.ROC_SHOWN) + 1 and labels[-1].startswith("chance")
    curves = baselines.training_curves_figure(two)
    assert [ax.get_title() for ax in curves.axes] == ["dataset = Fashion-MNIST", "dataset = CIFAR-10"]
    plt.close("all")


def test_run_baselines_wires_seeds_epochs_shadows_and_bootstrap(monkeypatch):
    calls = []
    profile = SimpleNamespace(shadow_models=6, bootstrap=25,
                              base_config=lambda dataset, seed, epochs: ("config", dataset, seed, epochs))
    monkeypatch.setattr(replicated, "run_baseline", lambda p, d, seeds, store=None: ("setting", d, seeds))
    monkeypatch.setattr(baselines.experiment, "run", lambda config, store=None: fake_run())
    monkeypatch.setattr(baselines.experiment, "shadow_outputs",
                        lambda config, count, store=None: calls.append((config, count)) or ("logits", "in", []))
    monkeypatch.setattr(baselines, "run_attacks", lambda inputs, logits, trained_in, n_bootstrap, seed:
                        {"n_bootstrap": n_bootstrap, "seed": seed})
    monkeypatch.setattr(baselines, "related_shadow_count", lambda params: params["shadow_models"] or 6)
    params = {"datasets": ["fmnist", "cifar10"], "epochs": 0, "shadow_models": 0, "profile": "smoke"}
    found = baselines.run_baselines(profile, params, (3, 4))
    assert list(found.datasets) == ["fmnist", "cifar10"] and found.seeds == (3, 4)
    assert (found.n_shadows, found.n_bootstrap) == (6, 25)
    assert calls == [(("config", "fmnist", 3, None), 6), (("config", "cifar10", 3, None), 6)]
    assert found.lead.setting == ("setting", "fmnist", (3, 4))
    assert found.lead.attacks == {"n_bootstrap": 25, "seed": 3}
    found = baselines.run_baselines(profile, {**params, "epochs": 7, "shadow_models": 4}, (0,))
    assert calls[-1] == (("config", "cifar10", 0, 7), 4) and found.n_shadows == 4
