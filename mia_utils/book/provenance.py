"""Provenance of an executed chapter: what produced its numbers.

A chapter creates a :class:`ChapterRecord` when it starts and calls :meth:`ChapterRecord.show`
at its end. The record lists the chapter's parameters, the profile's sizes, the software
(package version, torch, Python, git commit), the device, the wall time, and every run the
chapter used with whether it was read from the result store or trained now. Runs are collected
from :data:`mia_utils.experiment.RUN_LOG`, which :func:`mia_utils.experiment.run` appends to, so
teachers, shadow models and early-stopping snapshots are listed without the chapter naming them.
"""

from __future__ import annotations

import platform
import time

import pandas as pd
import torch

from mia_utils import __version__, experiment
from mia_utils.defenses import describe_mechanisms


class ChapterRecord:
    """Collects the provenance of one chapter execution (see the module docstring).

    ``params``: the validated chapter parameters. Wall time is measured from construction.
    """

    def __init__(self, chapter: str, params: dict):
        self.chapter = chapter
        self.params = dict(params)
        self.started = time.perf_counter()
        self.started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self._first_log_entry = len(experiment.RUN_LOG)
        #: Keys of the runs trained for this chapter before it read them back (by
        #: :func:`open_chapter`, through the sweep), so listed as trained now.
        self.trained_now: list[str] = []

    @property
    def profile(self):
        """The chapter's :class:`~mia_utils.book.profiles.Profile` (from the ``profile`` parameter)."""
        from mia_utils.book.profiles import get_profile

        return get_profile(self.params["profile"])

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds the chapter replicates its settings over: the profile's seed count, counted up
        from the ``seed`` parameter (:func:`mia_utils.book.replicated.seed_list`)."""
        from mia_utils.book.replicated import seed_list

        return seed_list(self.profile, self.params.get("seed", 0))

    def glue(self, values: dict) -> None:
        """Glue every ``name -> value`` of ``values`` for the page's text (``{glue:text}`name```),
        without displaying them. A figure is glued and closed (:meth:`glue_figure`)."""
        from myst_nb import glue

        for name, value in values.items():
            if hasattr(value, "savefig"):
                self.glue_figure(name, value)
            else:
                glue(name, value, display=False)

    def glue_figure(self, name: str, figure) -> None:
        """Glue a matplotlib figure as ``name`` (placed by ``{glue:figure}`` in the page) and close
        it, so that it is shown where the text places it and nowhere else."""
        import matplotlib.pyplot as plt
        from myst_nb import glue

        glue(name, figure, display=False)
        plt.close(figure)

    @property
    def seconds(self) -> float:
        """Wall time since the record was created, in seconds."""
        return time.perf_counter() - self.started

    def runs(self) -> pd.DataFrame:
        """One row per distinct run this chapter used (first use wins), in order of use."""
        rows, seen = [], set()
        for entry in experiment.RUN_LOG[self._first_log_entry:]:
            if entry["key"] in seen:
                continue
            seen.add(entry["key"])
            config = entry["config"]
            role = "shadow model" if config.is_shadow else "target"
            rows.append({
                "run key": entry["key"][:12],
                "role": role + (f" {config.shadow_index + 1}/{config.shadow_count}" if config.is_shadow else ""),
                "mechanisms": describe_mechanisms(config.mechanisms),
                "seed": config.seed,
                "members": config.n_members,
                "epochs": config.epochs,
                "source": "trained now" if not entry["from_store"] or entry["key"] in self.trained_now
                          else "result store",
                "trained on": entry["device"],
                "train time (s)": round(float(entry["train_seconds"]), 1),
            })
        return pd.DataFrame(rows, columns=["run key", "role", "mechanisms", "seed", "members", "epochs", "source",
                                           "trained on", "train time (s)"])

    def summary(self) -> pd.DataFrame:
        """The chapter-level facts as a one-column table."""
        runs = self.runs()
        trained = int((runs["source"] == "trained now").sum()) if len(runs) else 0
        facts = {"chapter": self.chapter}
        facts.update({f"parameter: {name}": _printable(value) for name, value in self.params.items()})
        if "profile" in self.params:
            from mia_utils.book.profiles import get_profile

            facts.update({f"profile: {name}": _printable(value)
                          for name, value in get_profile(self.params["profile"]).describe().items()
                          if name not in ("profile", "purpose")})
        facts.update({
            "mia_utils version": __version__,
            "git commit": experiment.git_commit(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": _device(),
            "CPU threads": torch.get_num_threads(),
            "executed at": self.started_at,
            "wall time (s)": round(self.seconds, 1),
            "runs used": len(runs),
            "runs trained now": trained,
            "runs read from the store": len(runs) - trained,
        })
        return pd.DataFrame({"value": [str(v) for v in facts.values()]}, index=list(facts))

    def close(self) -> None:
        """The closing every chapter's notebook shares: glue the page's wall time so far
        (``chapter_seconds``, s) and its profile (``profile_name``), then :meth:`show`."""
        from myst_nb import glue

        glue("chapter_seconds", self.seconds, display=False)
        glue("profile_name", self.params.get("profile", ""), display=False)
        experiment.allow_only(None)
        self.show()

    def show(self, glue_prefix: str = "provenance") -> None:
        """Display the summary and the runs, and glue the wall time (s) and the run counts
        as ``{glue_prefix}_seconds``, ``{glue_prefix}_trained`` and ``{glue_prefix}_from_store``."""
        from IPython.display import Markdown, display
        from myst_nb import glue

        summary, runs = self.summary(), self.runs()
        glue(f"{glue_prefix}_seconds", self.seconds, display=False)
        glue(f"{glue_prefix}_trained", int(summary.loc["runs trained now", "value"]), display=False)
        glue(f"{glue_prefix}_from_store", int(summary.loc["runs read from the store", "value"]), display=False)
        display(Markdown("**Provenance of this page**"))
        display(summary)
        if len(runs):
            display(Markdown(f"**Runs used** ({len(runs)}; each is keyed by a hash of its whole configuration)"))
            display(runs.set_index("run key"))


def open_chapter(chapter: str, namespace: dict) -> tuple[dict, ChapterRecord]:
    """The opening every chapter's notebook shares. Reads the chapter's parameters by name from
    ``namespace`` (the notebook's ``globals()``, where papermill injected them), validates them
    (:func:`mia_utils.book.chapters.validate`: a bad value stops here, before anything trains), sets the
    figures' theme, starts the page's provenance record, and trains the runs the chapter lists
    (:func:`mia_utils.book.sweep.train_chapter_runs`; nothing when the store holds them), after
    which the chapter may use no other run. Returns (validated parameters, record).
    """
    import seaborn as sns

    from mia_utils.book.chapters import get_chapter, validate

    spec = get_chapter(chapter)
    missing = [param.name for param in spec.params if param.name not in namespace]
    if missing:
        raise ValueError(f"namespace: chapter {chapter} needs the parameters {', '.join(missing)} defined")
    params = validate(chapter, {param.name: namespace[param.name] for param in spec.params})
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    record = ChapterRecord(chapter, params)
    from mia_utils.book.sweep import train_chapter_runs
    from mia_utils.store import ResultStore

    _, record.trained_now = train_chapter_runs(chapter, params, ResultStore())
    return params, record


def _printable(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value else "(all)"
    return str(value)


def _device() -> str:
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()})"
