"""Membership inference attacks as functions of per-sample model outputs.

An attack reads :class:`AttackInputs` (the target's logits on the balanced evaluation set and
what the adversary knows) and returns an :class:`AttackResult` (per-sample membership scores,
higher meaning "more likely a member", hard guesses and metrics with bootstrap uncertainty).
No attack retrains or queries the target beyond the stored outputs; LiRA additionally reads
the outputs of shadow models, which are ordinary runs of the result store.

What each attack assumes the adversary knows:

* ``yeom``: the target's average training loss (the paper's strong adversary).
* ``loss``, ``confidence``, ``entropy``, ``modified_entropy``: a threshold on one per-sample
  score, chosen on the adversary's own labelled members and non-members.
* ``salem``: the adversary's own labelled samples, to train a small classifier on the target's
  top-3 sorted posteriors of them. This is Kaya et al.'s (2020) variant, with no shadow model;
  it is not ML-Leaks' adversary 1, which trains a shadow model to label its attack data.
* ``lira_online`` / ``lira_offline`` (and ``_fixed_variance``): the data distribution and the
  training recipe, to train shadow models with (online) or without (offline) each example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mia_utils import metrics


class AttackInputError(ValueError):
    """Attack inputs are empty, mis-shaped, unbalanced or non-finite."""


def _check_outputs(name: str, logits: torch.Tensor, labels: torch.Tensor, is_member: torch.Tensor) -> None:
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise AttackInputError(f"{name}_logits: expected shape (N >= 1, classes >= 2), got {tuple(logits.shape)}")
    n = logits.shape[0]
    if labels.shape != (n,) or is_member.shape != (n,):
        raise AttackInputError(f"{name}: logits have {n} rows but labels have shape {tuple(labels.shape)} "
                               f"and is_member {tuple(is_member.shape)}; all must have N = {n} rows")
    if not torch.isfinite(logits).all():
        raise AttackInputError(f"{name}_logits: contain NaN or infinite values")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise AttackInputError(f"{name}_labels: must lie in 0..{logits.shape[1] - 1}")
    members = int(is_member.sum())
    if members == 0 or members == n:
        raise AttackInputError(f"{name}_is_member: needs both members and non-members, got {members} of {n}")


@dataclass(frozen=True)
class AttackInputs:
    """The target's outputs on the evaluation set, and the adversary's knowledge.

    ``logits`` float (N, classes), ``labels`` int64 (N,), ``is_member`` bool (N,): the balanced
    evaluation set (as many members as non-members). ``average_train_loss``: the target's mean
    cross-entropy over its training set, in nats (clean images, hard labels).
    ``objective_train_loss``: the mean of the training objective itself over the training set
    (transformed images and targets; see :func:`mia_utils.train.training_objective_loss`), or
    NaN when unknown. ``adv_*``: the adversary's own labelled samples (disjoint from the
    evaluation set), laid out the same way.
    """

    logits: torch.Tensor
    labels: torch.Tensor
    is_member: torch.Tensor
    average_train_loss: float
    adv_logits: torch.Tensor
    adv_labels: torch.Tensor
    adv_is_member: torch.Tensor
    objective_train_loss: float = float("nan")

    def __post_init__(self):
        _check_outputs("eval", self.logits, self.labels, self.is_member)
        _check_outputs("adv", self.adv_logits, self.adv_labels, self.adv_is_member)
        members = int(self.is_member.sum())
        if 2 * members != len(self.is_member):
            raise AttackInputError(f"is_member: the evaluation set must be balanced, got {members} members "
                                   f"and {len(self.is_member) - members} non-members")
        if self.adv_logits.shape[1] != self.logits.shape[1]:
            raise AttackInputError("adv_logits: must have as many classes as logits")
        if not (self.average_train_loss >= 0 and float(self.average_train_loss) < float("inf")):
            raise AttackInputError(f"average_train_loss: must be a finite loss >= 0, got {self.average_train_loss}")

    @classmethod
    def from_outputs(cls, outputs: dict[str, torch.Tensor]) -> "AttackInputs":
        """From a run's stored per-sample outputs (see :func:`mia_utils.train.per_sample_outputs`)."""
        return cls(logits=outputs["eval_logits"].double(), labels=outputs["eval_labels"],
                   is_member=outputs["eval_is_member"].bool(),
                   average_train_loss=outputs["member_losses"].double().mean().item(),
                   adv_logits=outputs["adv_logits"].double(), adv_labels=outputs["adv_labels"],
                   adv_is_member=outputs["adv_is_member"].bool(),
                   objective_train_loss=float(outputs.get("objective_loss", float("nan"))))


@dataclass(frozen=True)
class AttackResult:
    """Scores (N,) float64, higher = member; ``predicted`` bool (N,); ``threshold`` on the
    score scale; ``is_member`` bool (N,), the truth; ``metrics``: name ->
    :class:`mia_utils.metrics.Estimate` (fractions, with bootstrap uncertainty)."""

    name: str
    scores: torch.Tensor
    predicted: torch.Tensor
    threshold: float
    is_member: torch.Tensor = field(repr=False)
    metrics: dict = field(repr=False)

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"].value

    @property
    def advantage(self) -> float:
        return self.metrics["advantage"].value

    @property
    def auc(self) -> float:
        return self.metrics["auc"].value

    @property
    def tpr(self) -> float:
        return metrics.true_and_false_positive_rates(self.predicted, self.is_member)[0]

    @property
    def fpr(self) -> float:
        return metrics.true_and_false_positive_rates(self.predicted, self.is_member)[1]


def _result(name, scores, predicted, threshold, is_member, n_bootstrap, seed) -> AttackResult:
    scores = scores.double()
    summary = metrics.summarize(scores, predicted, is_member, n_bootstrap=n_bootstrap, seed=seed)
    return AttackResult(name, scores, predicted.bool(), float(threshold), is_member.bool(), summary)


# --- per-sample scores ----------------------------------------------------------------------

def loss_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in nats (N,). Lower means more member-like."""
    return F.cross_entropy(logits.double(), labels, reduction="none")


def confidence_score(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Largest softmax probability (N,). Higher means more member-like."""
    return logits.double().softmax(1).max(1).values


def entropy_score(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Shannon entropy of the softmax in nats (N,). Lower means more member-like."""
    log_p = logits.double().log_softmax(1)
    return -(log_p.exp() * log_p).sum(1)


def log_one_minus_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log(1 - p_i) for every class, computed stably as logsumexp over the other classes."""
    logits = logits.double()
    classes = logits.shape[1]
    others = logits.unsqueeze(1).expand(-1, classes, -1).masked_fill(torch.eye(classes, dtype=torch.bool), float("-inf"))
    return torch.logsumexp(others, dim=2) - torch.logsumexp(logits, dim=1, keepdim=True)


def modified_entropy_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Song & Mittal's modified entropy (N,), in nats: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i).
    Lower means more member-like."""
    log_p = logits.double().log_softmax(1)
    log_q = log_one_minus_softmax(logits)
    p = log_p.exp()
    true = F.one_hot(labels, logits.shape[1]).bool()
    on_label = -(1 - p) * log_p
    off_label = -p * log_q
    return torch.where(true, on_label, off_label).sum(1)


def logit_scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LiRA's statistic log(p_y / (1 - p_y)) (N,), computed stably from logits."""
    logits = logits.double()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - torch.logsumexp(others, dim=1)


# --- thresholds ------------------------------------------------------------------------------

def best_threshold(scores: torch.Tensor, is_member: torch.Tensor) -> float:
    """The threshold t maximising the accuracy of ``scores >= t`` on these labelled samples
    (each class weighted equally, so an unbalanced set does not bias it). Midpoints between
    consecutive distinct scores, or +-inf."""
    scores, is_member = scores.double(), is_member.bool()
    values, order = scores.sort(descending=True)
    member = is_member[order].double()
    tpr = member.cumsum(0) / member.sum()
    fpr = (1 - member).cumsum(0) / (1 - member).sum()
    last_of_value = torch.ones_like(values, dtype=torch.bool)
    last_of_value[:-1] = values[:-1] != values[1:]
    gain = torch.where(last_of_value, tpr - fpr, torch.tensor(-2.0, dtype=torch.float64))
    best = int(gain.argmax())
    if gain[best] <= 0:
        return float("inf")  # predicting nobody a member is as good as it gets
    below = values[best + 1] if best + 1 < len(values) else values[best] - 1.0
    return float((values[best] + below) / 2)


def threshold_attack(name: str, member_like: str, score_fn, inputs: AttackInputs, n_bootstrap: int = 200,
                     seed: int = 0) -> AttackResult:
    """Threshold one per-sample score; the threshold is chosen on the adversary's samples only.

    ``member_like``: "high" when larger scores indicate members, "low" otherwise.
    """
    sign = 1.0 if member_like == "high" else -1.0
    scores = sign * score_fn(inputs.logits, inputs.labels)
    threshold = best_threshold(sign * score_fn(inputs.adv_logits, inputs.adv_labels), inputs.adv_is_member)
    return _result(name, scores, scores >= threshold, threshold, inputs.is_member, n_bootstrap, seed)


YEOM_READINGS = {
    "clean": "average loss on the training images with hard labels (reading a)",
    "objective": "average of the training objective: transformed images and targets (reading b)",
}


def yeom(inputs: AttackInputs, n_bootstrap: int = 200, seed: int = 0, reading: str = "clean") -> AttackResult:
    """Yeom et al. (2018) as the paper runs it: member when the loss (clean image, hard label) is
    below the target's "average training loss". The paper does not say which loss that average
    is; ``reading`` picks one of :data:`YEOM_READINGS`: ``"clean"`` (the mean clean loss over
    the training set, ``inputs.average_train_loss``) or ``"objective"`` (the mean of the training
    objective, ``inputs.objective_train_loss``, which differs under label smoothing,
    distillation, noise, cropping and mix-up). The result is named ``yeom`` or ``yeom_objective``."""
    if reading not in YEOM_READINGS:
        raise ValueError(f"reading: got {reading!r}; allowed: {', '.join(YEOM_READINGS)}")
    threshold = inputs.average_train_loss if reading == "clean" else inputs.objective_train_loss
    if not threshold >= 0:
        raise AttackInputError(f"objective_train_loss: this run did not record its training objective "
                               f"(got {threshold}); retrain it with this version of mia_utils")
    losses = loss_score(inputs.logits, inputs.labels)
    name = "yeom" if reading == "clean" else "yeom_objective"
    return _result(name, -losses, losses < threshold, -threshold, inputs.is_member, n_bootstrap, seed)


def loss_threshold(inputs, n_bootstrap=200, seed=0):
    """Yeom's loss attack with its threshold calibrated on the adversary's own samples."""
    return threshold_attack("loss", "low", loss_score, inputs, n_bootstrap, seed)


def confidence_threshold(inputs, n_bootstrap=200, seed=0):
    return threshold_attack("confidence", "high", confidence_score, inputs, n_bootstrap, seed)


def entropy_threshold(inputs, n_bootstrap=200, seed=0):
    return threshold_attack("entropy", "low", entropy_score, inputs, n_bootstrap, seed)


def modified_entropy_threshold(inputs, n_bootstrap=200, seed=0):
    return threshold_attack("modified_entropy", "low", modified_entropy_score, inputs, n_bootstrap, seed)


# --- Salem et al.'s top-3 posterior attack, Kaya et al.'s variant (no shadow model) ----------

def top3_posteriors(logits: torch.Tensor) -> torch.Tensor:
    """The three largest softmax probabilities, sorted in decreasing order: (N, 3) float32
    (zero-padded when there are fewer than three classes)."""
    top = logits.double().softmax(1).topk(min(3, logits.shape[1]), dim=1).values.float()
    return F.pad(top, (0, 3 - top.shape[1]))


def salem(inputs: AttackInputs, n_bootstrap: int = 200, seed: int = 0, hidden: int = 64,
          steps: int = 500, lr: float = 1e-2) -> AttackResult:
    """The "Salem" attack as Kaya et al. (2020) run it, a variant of Salem et al.'s (2019) ML-Leaks.

    An MLP (3 -> ``hidden`` ReLU -> 1) on the three largest softmax probabilities (sorted) that
    *the target model itself* gives to the adversary's known members and non-members
    (``inputs.adv_*``), trained full-batch with Adam for ``steps`` steps (classes weighted
    equally), then applied to the target's outputs on the evaluation set. There is no shadow
    model: the adversary already holds labelled members of the target's training set. ML-Leaks'
    adversary 1 instead trains a shadow model on data from the same distribution and builds the
    attack classifier's training set from the shadow's posteriors, so its numbers are not
    directly comparable. The function keeps the name ``salem`` for the paper's Adv_Salem.
    Seeded and deterministic."""
    features = top3_posteriors(inputs.adv_logits)
    target = inputs.adv_is_member.float()
    positive = target.mean()
    weights = torch.where(target > 0, 0.5 / positive, 0.5 / (1 - positive))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 3-64-1 network: extra threads only add synchronisation
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                loss = F.binary_cross_entropy_with_logits(model(features).squeeze(1), target, weight=weights)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                scores = model(top3_posteriors(inputs.logits)).squeeze(1).double()
    finally:
        torch.set_num_threads(threads)
    return _result("salem", scores, scores > 0, 0.0, inputs.is_member, n_bootstrap, seed)


# --- LiRA (Carlini et al. 2022) ---------------------------------------------------------------
#
# Scored as the authors' reference code scores it: tensorflow/privacy, research/mi_lira_2021,
# ``score.py`` (the statistic) and ``plot.py`` (``generate_ours``, ``generate_ours_offline``: the
# Gaussians and the scores). See :func:`lira` for where it departs from the paper.

LIRA_PROBABILITY_EPSILON = 1e-45
"""score.py adds this to p_y and to the other classes' mass before taking their logs."""

LIRA_STD_EPSILON = 1e-30
"""plot.py adds this to every standard deviation before it evaluates a Gaussian density."""

LIRA_OFFLINE_Z = 0.6744897501960817
"""Phi^-1(3/4): the offline hard guess flags |z| above it, half of the OUT Gaussian's mass."""

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def lira_statistic(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LiRA's statistic (N,) float64 as the reference's ``score.py`` computes it.

    The softmax of the logits shifted by each row's maximum gives p; the statistic is
    log(p_y + 1e-45) - log(sum_{i != y} p_i + 1e-45). The other classes' mass is summed, not
    taken as 1 - p_y, so it stays accurate when p_y is close to 1. It equals
    :func:`logit_scaled_confidence` within 1e-12 while |value| < 75 (both masses far above
    1e-45), falls behind it beyond (by about 1e-6 at 90) and saturates at about +-103.6
    (= log 1e45), where :func:`logit_scaled_confidence` keeps growing with the logit margin.
    The reference computes the exponentials in its stored logits' precision (float32) before
    casting to float64; here everything is float64."""
    logits = logits.double()
    p = (logits - logits.max(1, keepdim=True).values).exp()
    p = p / p.sum(1, keepdim=True)
    true = p.gather(1, labels[:, None]).squeeze(1)
    wrong = p.scatter(1, labels[:, None], 0.0).sum(1)
    return torch.log(true + LIRA_PROBABILITY_EPSILON) - torch.log(wrong + LIRA_PROBABILITY_EPSILON)


def _gaussian_logpdf(x, mean, std):
    """log N(x; mean, std^2), as scipy.stats.norm.logpdf(x, mean, std) computes it."""
    return -0.5 * ((x - mean) / std) ** 2 - _HALF_LOG_2PI - torch.log(std)


def _first_selected(phi: torch.Tensor, selected: torch.Tensor, size: int) -> torch.Tensor:
    """(N, size, A): for each example n, phi[k, n, :] of the first ``size`` shadow models k (in
    the order given) that ``selected[k, n]`` marks; plot.py's ``x[:in_size]`` / ``x[:out_size]``.
    ``phi``: (K, N, A), one statistic per shadow model, example and query."""
    order = torch.argsort((~selected).to(torch.int64), dim=0, stable=True)  # selected ones first, in order
    index = order[:size].unsqueeze(-1).expand(-1, -1, phi.shape[2])
    return phi.gather(0, index).permute(1, 0, 2)


def _median(table: torch.Tensor) -> torch.Tensor:
    """numpy's median along dim 1: the middle value, or the mean of the two middle values."""
    values = table.sort(dim=1).values
    size = values.shape[1]
    middle = values[:, size // 2]
    return middle if size % 2 else (values[:, size // 2 - 1] + middle) / 2


def lira(inputs: AttackInputs, shadow_logits: torch.Tensor, shadow_in: torch.Tensor, online: bool = True,
         fixed_variance: bool = False, n_bootstrap: int = 200, seed: int = 0,
         queries: torch.Tensor | None = None) -> AttackResult:
    """The likelihood-ratio attack, with the scores of Carlini et al.'s reference code.

    ``shadow_logits``: (K, N, classes), the K shadow models' logits on the evaluation set, or
    (K, N, A, classes) on A augmented queries of each example, with ``queries`` (N, A, classes)
    the target's logits on the same queries (see :func:`shifted_queries`);
    ``shadow_in``: bool (K, N), whether shadow k trained on example n. Each example needs at
    least one OUT shadow model, and online at least one IN shadow model.

    What the reference (tensorflow/privacy ``research/mi_lira_2021``) does, and so this does:

    * Statistic (``score.py``): :func:`lira_statistic`, the logit-scaled confidence of the true
      label, computed from a max-shifted softmax with 1e-45 added inside both logs.
    * Shadow statistics per example (``plot.py``): the IN statistics (shadows that trained on
      it) and the OUT ones. Both are cut to the smallest count over all examples (``in_size``,
      ``out_size``), keeping each example's first shadows in the order given. This is mirrored:
      with balanced masks (every example IN for exactly half of the shadows, as
      :func:`mia_utils.data.shadow_in_masks` draws them) it changes nothing; otherwise every
      example is fitted on as few shadows as the worst-covered one has.
    * Centres: the per-example MEDIAN of the IN and of the OUT statistics (the paper's
      Algorithm 1 says mean).
    * Spreads: the per-example standard deviation (numpy's, ddof = 0, around the per-example
      mean, not the median). ``fixed_variance``: one number, ``np.std`` of ALL the kept
      statistics of all examples together, that is, deviations from their global mean, not
      from each example's centre. Online, the reference takes it from the IN statistics for
      both Gaussians (``std_out = np.std(dat_in)``); offline, from the OUT statistics. Quirk:
      this global spread includes how much the examples differ from each other, so it is much
      wider than the pooled within-example spread the paper's "global variance" suggests. As
      one number shared by all examples (and, online, by both Gaussians) it only rescales the
      scores: their ranking (AUC, TPR at low FPR) and the sign of the online score are what a
      pooled within-example spread would give. Every spread gets 1e-30 added (no other floor:
      with one shadow on a side the per-example spread is 0, and the scores blow up to about
      1e60; use ``fixed_variance`` with so few shadows).
    * Online score: log N(phi; mu_in, sigma_in) - log N(phi; mu_out, sigma_out) for the target's
      statistic phi (``generate_ours``; its ``pr_in - pr_out`` with the sign flipped, since its
      ROC sweep negates the prediction).
    * Offline score: -log N(phi; mu_out, sigma_out) (``generate_ours_offline``, sign flipped
      likewise). This differs from the paper, whose offline test is one-sided,
      Lambda = Phi((phi - mu_out) / sigma_out): the reference's score is two-sided, so a target
      statistic far BELOW the OUT centre looks as member-like as one far above it, and with
      per-example spreads it adds log sigma_out, ranking examples with wide OUT distributions
      higher at equal |z|.
    * Augmentations: the reference queries every model on several augmentations of each image
      (``inference.py``: the image and its mirror by default, optionally shifted copies), fits
      the Gaussians per query and averages the scores over the queries. With ``queries`` this
      does the same; without, each model is queried once, on the clean image.

    Hard guesses (the reference has none; it only sweeps a ROC curve): online, member when the
    score is positive (likelihood ratio above 1; ``threshold`` 0). Offline, member when
    |phi - mu_out| > Phi^-1(3/4) sigma_out, the two-sided test that flags half of the OUT
    Gaussian (as "above the OUT centre" does one-sided); that is, score above
    z^2 / 2 + log sigma_out + log(2 pi) / 2 with z = Phi^-1(3/4). With ``fixed_variance`` that
    is one number, the ``threshold``; with per-example spreads each example has its own, and
    ``threshold`` is NaN.
    """
    k, n = shadow_in.shape
    target_logits = inputs.logits[:, None] if queries is None else queries
    shadow_queries = shadow_logits[:, :, None] if queries is None else shadow_logits
    a, classes = target_logits.shape[1], inputs.logits.shape[1]
    if (target_logits.shape != (len(inputs.labels), a, classes) or shadow_queries.ndim != 4
            or shadow_queries.shape != (k, n, a, classes) or n != len(inputs.labels)):
        raise AttackInputError(f"shadow_logits {tuple(shadow_logits.shape)} and shadow_in {tuple(shadow_in.shape)} "
                               f"must be (K, N, classes) and (K, N) with N = {len(inputs.labels)} "
                               f"and classes = {classes}" + ("" if queries is None else
                               f", or (K, N, A, classes) with queries (N, A, classes), got queries "
                               f"{tuple(queries.shape)}"))
    shadow_in = shadow_in.bool()
    need_in = 1 if online else 0
    if int(shadow_in.sum(0).min()) < need_in or int((~shadow_in).sum(0).min()) < 1:
        raise AttackInputError("shadow_in: every example needs at least one OUT shadow model"
                               + (" and one IN shadow model" if online else ""))
    phi = lira_statistic(shadow_queries.reshape(-1, classes),
                         inputs.labels[None, :, None].expand(k, n, a).reshape(-1)).reshape(k, n, a)
    target_phi = lira_statistic(target_logits.reshape(-1, classes),
                                inputs.labels[:, None].expand(n, a).reshape(-1)).reshape(n, a)

    dat_out = _first_selected(phi, ~shadow_in, int((~shadow_in).sum(0).min()))
    mean_out = _median(dat_out)
    if online:
        dat_in = _first_selected(phi, shadow_in, int(shadow_in.sum(0).min()))
        mean_in = _median(dat_in)
        if fixed_variance:
            std_in = std_out = dat_in.std(correction=0)  # sic: the reference uses the IN spread for OUT too
        else:
            std_in, std_out = dat_in.std(dim=1, correction=0), dat_out.std(dim=1, correction=0)
        scores = (_gaussian_logpdf(target_phi, mean_in, std_in + LIRA_STD_EPSILON)
                  - _gaussian_logpdf(target_phi, mean_out, std_out + LIRA_STD_EPSILON)).mean(1)
        cut = torch.zeros_like(scores)
        threshold = 0.0
    else:
        std_out = (dat_out.std(correction=0) if fixed_variance else dat_out.std(dim=1, correction=0)) + LIRA_STD_EPSILON
        scores = -_gaussian_logpdf(target_phi, mean_out, std_out).mean(1)
        cut = (0.5 * LIRA_OFFLINE_Z ** 2 + _HALF_LOG_2PI + torch.log(std_out)).expand(n, a).mean(1)
        threshold = float(cut[0]) if fixed_variance else float("nan")
    name = f"lira_{'online' if online else 'offline'}{'_fixed_variance' if fixed_variance else ''}"
    return _result(name, scores, scores > cut, threshold, inputs.is_member, n_bootstrap, seed)


def shifted_queries(images: torch.Tensor, shift: int) -> torch.Tensor:
    """LiRA's augmented queries for a model trained with random cropping of ``shift`` pixels
    (:class:`mia_utils.defenses.RandomCrop`): uint8 or float images (N, C, H, W) shifted by
    every offset (dy, dx) in {-shift, 0, shift}^2, the uncovered border filled with zeros as in
    training, so (N, 9, C, H, W), the unshifted image at index 4. This is the reference's
    ``inference.py`` shift grid with stride ``shift`` (3 x 3 shifts instead of every one)."""
    if shift < 1:
        raise ValueError(f"shift: must be >= 1, got {shift}")
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (shift, shift, shift, shift))
    out = [padded[:, :, shift + dy: shift + dy + h, shift + dx: shift + dx + w]
           for dy in (-shift, 0, shift) for dx in (-shift, 0, shift)]
    return torch.stack(out, dim=1)


BLACK_BOX_ATTACKS = {
    "yeom": yeom,
    "loss": loss_threshold,
    "confidence": confidence_threshold,
    "entropy": entropy_threshold,
    "modified_entropy": modified_entropy_threshold,
    "salem": salem,
}

ATTACK_KNOWLEDGE = {
    "yeom": "the target's average training loss (clean images, hard labels)",
    "yeom_objective": "the target's average training objective (as a training log reports it)",
    "loss": "own labelled members and non-members (to set the loss threshold)",
    "confidence": "own labelled members and non-members (to set the threshold)",
    "entropy": "own labelled members and non-members (to set the threshold)",
    "modified_entropy": "own labelled members and non-members, and each sample's true label",
    "salem": "own labelled members and non-members (to train the attack model)",
    "lira_online": "the data distribution and training recipe; shadow models with and without each example",
    "lira_offline": "the data distribution and training recipe; shadow models without each example",
    "lira_online_fixed_variance": "as LiRA online, with one shared variance",
    "lira_offline_fixed_variance": "as LiRA offline, with one shared variance",
}


def run_attacks(inputs: AttackInputs, shadow_logits: torch.Tensor | None = None,
                shadow_in: torch.Tensor | None = None, n_bootstrap: int = 200, seed: int = 0) -> dict[str, AttackResult]:
    """Every black-box attack, plus the four LiRA variants when shadow outputs are given."""
    results = {name: attack(inputs, n_bootstrap=n_bootstrap, seed=seed) for name, attack in BLACK_BOX_ATTACKS.items()}
    if shadow_logits is not None:
        for online in (True, False):
            for fixed in (False, True):
                result = lira(inputs, shadow_logits, shadow_in, online=online, fixed_variance=fixed,
                              n_bootstrap=n_bootstrap, seed=seed)
                results[result.name] = result
    return results


def yeom_on_run(outputs: dict[str, torch.Tensor], n_bootstrap: int = 0) -> AttackResult:
    """Yeom's attack on a run's balanced evaluation set, threshold = mean loss over all members."""
    return yeom(AttackInputs.from_outputs(outputs), n_bootstrap=n_bootstrap)
