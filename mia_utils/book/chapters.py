"""Chapters (parameterized notebooks) and their parameters.

Each chapter declares its parameters with type, default, meaning and allowed values. The CLI
validates ``-p name value`` overrides against this before papermill starts a kernel, and every
notebook's second cell calls :func:`validate` on its own parameters, so a bad value fails
before any training with a message naming the parameter, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from mia_utils.book.profiles import PROFILES, get_profile
from mia_utils.data import DATASETS, dataset_available
from mia_utils.defenses import MECHANISM_ORDER

#: The repository's root (where ``_toc.yml`` and ``notebooks/`` are), and where executed chapters go.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXECUTED = Path("book") / "executed"


def toc_chapters(root: Path = PROJECT_ROOT) -> list[str]:
    """Names of the executed notebooks ``_toc.yml`` lists (``book/executed/NAME``), in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                value = node.get(key)
                if isinstance(value, str) and value.startswith(str(EXECUTED) + "/"):
                    found.append(Path(value).stem)
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


class ParameterError(ValueError):
    """A notebook parameter is invalid. The message names it, its value and what is allowed."""


@dataclass(frozen=True)
class Param:
    """A notebook parameter: ``kind`` is one of int, float, str, list[str]."""

    name: str
    kind: str
    default: object
    meaning: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices)) + (" (a list)" if self.kind == "list[str]" else "")
        if self.minimum is not None or self.maximum is not None:
            low = "-inf" if self.minimum is None else self.minimum
            high = "inf" if self.maximum is None else self.maximum
            return f"{self.kind} in [{low}, {high}]"
        return self.kind

    def parse(self, text: str):
        """Parse a command-line string into this parameter's type."""
        try:
            if self.kind == "int":
                return int(text)
            if self.kind == "float":
                return float(text)
            if self.kind == "list[str]":
                return [item.strip() for item in text.split(",") if item.strip()]
            return text
        except ValueError:
            raise ParameterError(f"parameter {self.name!r}: got {text!r}; allowed: {self.allowed()}") from None

    def check(self, value) -> None:
        def fail(why=""):
            raise ParameterError(f"parameter {self.name!r}: got {value!r}{why}; allowed: {self.allowed()}")

        if self.kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
            fail(" (not an integer)")
        if self.kind == "float" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            fail(" (not a number)")
        if self.kind == "str" and not isinstance(value, str):
            fail(" (not a string)")
        if self.kind == "list[str]":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                fail(" (not a list of names)")
            if self.choices is not None and any(v not in self.choices for v in value):
                fail()
        elif self.choices is not None and value not in self.choices:
            fail()
        if self.minimum is not None and value < self.minimum:
            fail()
        if self.maximum is not None and value > self.maximum:
            fail()


COMMON = (
    Param("profile", "str", "quick", "named set of sizes (see the setup page)", choices=tuple(PROFILES)),
    Param("datasets", "list[str]", [], "datasets to run; empty means every dataset of the profile",
          choices=tuple(DATASETS)),
    Param("seed", "int", 0, "seed of the membership split and of training", minimum=0, maximum=2**31 - 1),
)


@dataclass(frozen=True)
class Chapter:
    """A parameterized notebook. ``summary``: the chapter collects the others' results (the
    findings page), so ``run`` executes it after them whatever its place in the table of contents."""

    name: str
    title: str
    params: tuple[Param, ...]
    summary: bool = False

    @property
    def notebook(self) -> Path:
        return Path("notebooks") / f"{self.name}.ipynb"

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise ParameterError(f"parameter {name!r} is unknown for chapter {self.name}; "
                             f"allowed: {', '.join(p.name for p in self.params)}")


CHAPTERS: dict[str, Chapter] = {
    "00_primer": Chapter("00_primer", "A primer: membership inference in one model", (
        COMMON[0], COMMON[2],
        Param("members", "int", 0, "training images (members); 0 keeps the primer's default for the profile "
              "(smoke 300, quick 1000, paper 5000)", minimum=0, maximum=60_000),
        Param("epochs", "int", 0, "training epochs; 0 keeps the profile's value", minimum=0, maximum=1000),
        Param("width", "float", 0.0, "network width multiplier (1.0 = the paper's channels; at least 0.0625); "
              "0 keeps the profile's value", minimum=0.0, maximum=16.0),
    )),
    "01_baselines": Chapter("01_baselines", "Baselines: how much do unregularized models leak?", COMMON + (
        Param("epochs", "int", 0, "training epochs; 0 keeps the profile's value", minimum=0, maximum=1000),
        Param("shadow_models", "int", 0, "LiRA's shadow models K (even); 0 keeps the profile's value",
              minimum=0, maximum=256),
    )),
}


PAPER_MECHANISMS = MECHANISM_ORDER  # the paper's eight, in its order
CHAPTERS["02_regularization"] = Chapter(
    "02_regularization", "Regularization against membership inference (Tables 3-5)", COMMON + (
        Param("mechanisms", "list[str]", [], "mechanisms to sweep; empty means all eight of the paper",
              choices=PAPER_MECHANISMS),
    ))


CHAPTERS["03_differential_privacy"] = Chapter(
    "03_differential_privacy", "Differential privacy: the formal defense, at what cost?", COMMON)


CHAPTERS["04_combinations"] = Chapter("04_combinations", "Combining mechanisms (Table 6)", COMMON)


CHAPTERS["05_distance_to_confident"] = Chapter(
    "05_distance_to_confident", "Distance to confident (Tables 7, 8 and Figure 1)", COMMON + (
        Param("dtc_samples", "int", 0, "members and non-members per set measured; 0 keeps the profile's value",
              minimum=0, maximum=60_000),
    ))


RELATED_SHADOWS = Param("shadow_models", "int", 0, "LiRA's population models per configuration (even, at least 4; "
                        "each is a target in turn, the others its shadow models); 0 keeps the profile's count",
                        minimum=0, maximum=256)

CHAPTERS["06_generalization_lira"] = Chapter(
    "06_generalization_lira", "Generalization and LiRA: does the gap predict vulnerability?", COMMON + (
        RELATED_SHADOWS,))

CHAPTERS["07_mmd_mixup"] = Chapter(
    "07_mmd_mixup", "MMD + mix-up: a defense aimed at the gap", COMMON + (
        Param("mixup_alpha", "float", 1.0, "mix-up's Beta(alpha, alpha) parameter", minimum=0.01, maximum=10.0),
        Param("mmd_lambda", "float", 1.0, "weight lambda of the MMD^2 penalty", minimum=0.0, maximum=100.0),
        RELATED_SHADOWS,
    ))

CHAPTERS["08_prediction_scores_ood"] = Chapter(
    "08_prediction_scores_ood", "Prediction scores on data no model has seen", (
        COMMON[0], COMMON[2],
        Param("ood_samples", "int", 0, "images per out-of-distribution set; 0 means the profile's evaluation "
              "size", minimum=0, maximum=5_000),
    ))


#: Chapter 09's defaults per profile, used where its parameter is 0: the augmented queries K of the
#: augmentation-aware attack, the members and non-members per side that the query attacks
#: (augmentation-aware, translation) attack, those the boundary-distance search attacks (and as many
#: of the adversary's own, to fit its threshold), and the recipe-aware RMIA's reference models that
#: did not train on each sample (``aware_references`` m; 2 m models are trained per defended setting,
#: so that each sample is OUT for exactly m of them). Quick's 500 boundary samples per side resolve
#: an advantage of the gap attack's size; quick's m = 2 was chosen by measurement on the baseline's
#: shadow models (RMIA's advantage and AUC with 1, 2 and 4 OUT models per sample: 2 is within a
#: point of 4, 1 falls below; the chapter shows the measurement).
STRONGER_DEFAULTS = {
    "smoke": {"augmentations": 2, "query_samples": 100, "boundary_samples": 20, "aware_references": 1},
    "quick": {"augmentations": 8, "query_samples": 500, "boundary_samples": 500, "aware_references": 2},
    "paper": {"augmentations": 20, "query_samples": 3_000, "boundary_samples": 500, "aware_references": 4},
}
#: The smallest nonzero value of a parameter (0 keeps the default), so that no value yields a
#: degenerate model or measurement: the primer's members (a quarter of them evaluated on each
#: side) and width (the smoke profile's 1/16, the narrowest network the book trains); chapter 09's K
#: >= 2 (the authors' reductions include a standard deviation), and enough samples per side for
#: an advantage with a usable interval.
FLOORS = {"members": 8, "width": 0.0625, "augmentations": 2, "query_samples": 50, "boundary_samples": 10,
          "aware_references": 1}


def _stronger_defaults(name: str) -> str:
    """"(at least 2); 0 keeps the profile's (smoke 2, quick 8, paper 20)" for one of chapter 09's
    parameters, from :data:`FLOORS` and :data:`STRONGER_DEFAULTS`."""
    defaults = ", ".join(f"{profile} {values[name]}" for profile, values in STRONGER_DEFAULTS.items())
    return f"(at least {FLOORS[name]}); 0 keeps the profile's ({defaults})"


CHAPTERS["09_stronger_attacks"] = Chapter(
    "09_stronger_attacks", "Stronger attacks than the paper tried: is the protection real?", COMMON + (
        Param("augmentations", "int", 0, "augmented queries K per sample of the augmentation-aware attack "
              + _stronger_defaults("augmentations"), minimum=0, maximum=200),
        Param("query_samples", "int", 0, "members and non-members per side (of the evaluation and the adversary's "
              "sets) that the augmentation-aware and translation attacks query "
              + _stronger_defaults("query_samples"), minimum=0, maximum=60_000),
        Param("boundary_samples", "int", 0, "members and non-members per side that the boundary-distance attack "
              "searches, in the evaluation set and in the adversary's (its threshold) "
              + _stronger_defaults("boundary_samples"), minimum=0, maximum=60_000),
        Param("aware_references", "int", 0, "recipe-aware RMIA: reference models per sample that did not train on "
              "it, m (2 m are trained per defended setting) " + _stronger_defaults("aware_references"),
              minimum=0, maximum=64),
        Param("aware_dp_sigma", "float", 0.0, "the DP-SGD noise sigma whose setting gets recipe-aware reference "
              "models; it must be on the profile's DP grid; 0 keeps the largest grid value at most 1",
              minimum=0.0, maximum=1000.0),
    ))


CHAPTERS["findings"] = Chapter("findings", "The paper's findings, one by one", COMMON, summary=True)


def stronger_attack_options(params: dict) -> dict:
    """Chapter 09's ``augmentations``, ``query_samples`` and ``boundary_samples`` from its validated
    ``params``: each parameter, or the profile's default (:data:`STRONGER_DEFAULTS`) where it is 0,
    the sample counts cut to the sizes of the chapter's first dataset."""
    profile = get_profile(params["profile"])
    size = profile.sizes[(params.get("datasets") or list(profile.datasets))[0]]
    options = {name: params[name] or default for name, default in STRONGER_DEFAULTS[profile.name].items()}
    for name in ("query_samples", "boundary_samples"):
        options[name] = min(options[name], size.n_eval, size.n_adversary)
    return options


def aware_dp_sigma(params: dict) -> float:
    """The DP-SGD noise sigma (float) whose setting chapter 09 attacks with recipe-aware reference
    models: the ``aware_dp_sigma`` parameter, which must be a value of the profile's DP grid, or,
    where it is 0, the largest grid value at most 1 (the smallest value when none is)."""
    grid = get_profile(params["profile"]).grids["dp_sgd"]
    chosen = params.get("aware_dp_sigma") or 0.0
    if chosen:
        if not any(math.isclose(chosen, value) for value in grid):
            raise ParameterError(f"parameter 'aware_dp_sigma': got {chosen:g}; allowed: 0 (the default) or a value "
                                 f"of the profile's DP grid: {', '.join(f'{v:g}' for v in grid)}")
        return float(next(value for value in grid if math.isclose(chosen, value)))
    small = [value for value in grid if value <= 1]
    return float(max(small) if small else min(grid))


def related_shadow_count(params: dict) -> int:
    """LiRA's population models per configuration in the related-work chapters (see
    :func:`mia_utils.book.generalization.population_lira`): the ``shadow_models`` parameter, or the profile's
    count, so that the baseline's population is chapter 01's shadow models."""
    return params["shadow_models"] or get_profile(params["profile"]).shadow_models


PRIMER_MEMBERS = {"smoke": 300, "quick": 1_000, "paper": 5_000}


def primer_config(params: dict):
    """The primer's single run: the profile's Fashion-MNIST baseline with the primer's own
    member count (small, so that the model overfits), evaluation and adversary sets of
    min(profile's, members / 4) per side, and the requested epochs and width."""
    from mia_utils.config import RunConfig  # noqa: F401  (imported for the return type)

    profile = get_profile(params["profile"])
    members = params["members"] or PRIMER_MEMBERS[profile.name]
    if members < 8:
        raise ParameterError(f"parameter 'members': got {members}; allowed: 0 (the default) or at least 8, "
                             "so that a quarter of them can be evaluated on each side")
    size = profile.sizes["fmnist"] if "fmnist" in profile.sizes else next(iter(profile.sizes.values()))
    per_side = min(size.n_eval, members // 4)
    base = profile.base_config("fmnist", seed=params["seed"], epochs=params["epochs"] or None)
    return base.replace(n_members=members, n_eval=per_side, n_adversary=per_side,
                        width=params["width"] or profile.width, snapshot_epochs=(),
                        batch_size=min(base.batch_size, members))


def get_chapter(name: str) -> Chapter:
    name = Path(name).stem
    if name not in CHAPTERS:
        raise ParameterError(f"chapter: unknown chapter {name!r}; allowed: {', '.join(CHAPTERS)}")
    return CHAPTERS[name]


def validate(chapter: str, params: dict, check_available: bool = True) -> dict:
    """Check every parameter of ``chapter``; return them with defaults filled in.

    Also checks that each requested dataset belongs to the profile and (unless
    ``check_available`` is false, as when only planning) that it is available offline.
    Raises :class:`ParameterError` naming the first bad parameter.
    """
    spec = get_chapter(chapter)
    for name in params:
        spec.param(name)
    values = {p.name: params.get(p.name, p.default) for p in spec.params}
    for param in spec.params:
        param.check(values[param.name])
    if values.get("shadow_models", 0) % 2:
        raise ParameterError(f"parameter 'shadow_models': got {values['shadow_models']}; allowed: 0 (the "
                             "profile's value) or an even number >= 2, so each example is IN for half of them")
    if RELATED_SHADOWS in spec.params and values["shadow_models"] == 2:
        raise ParameterError("parameter 'shadow_models': got 2; allowed: 0 (the profile's count) or an even number "
                             ">= 4, so that each population model, as the target, keeps IN and OUT shadow models "
                             "for every example")
    profile = get_profile(values["profile"])
    for name, floor in FLOORS.items():
        if name in values and 0 < values[name] < floor:
            raise ParameterError(f"parameter {name!r}: got {values[name]}; allowed: 0 (the default) or at "
                                 f"least {floor:g}")
    for name in ("query_samples", "boundary_samples"):
        largest = min(min(size.n_eval, size.n_adversary) for size in profile.sizes.values())
        if values.get(name, 0) > largest:
            raise ParameterError(f"parameter {name!r}: got {values[name]}; allowed: 0 (the profile's value) or at "
                                 f"most {largest}, the evaluation and adversary sets' size per side in profile "
                                 f"{profile.name!r}")
    if "mechanisms" in values and not values["mechanisms"]:
        values["mechanisms"] = list(PAPER_MECHANISMS)
    if "datasets" in values:
        if not values["datasets"]:
            values["datasets"] = list(profile.datasets)
        for dataset in values["datasets"]:
            if dataset not in profile.datasets:
                raise ParameterError(f"parameter 'datasets': {dataset!r} is not part of profile "
                                     f"{profile.name!r}; allowed: {', '.join(profile.datasets)}")
            if check_available and not dataset_available(dataset):
                raise ParameterError(f"parameter 'datasets': {dataset!r} is not available offline on this "
                                     "machine; see the setup page for how to get it, or choose another profile")
    return values
