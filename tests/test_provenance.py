"""Chapter provenance: every run a chapter uses is listed, with where it came from."""

from mia_utils import experiment
from mia_utils.book.provenance import ChapterRecord
from mia_utils.defenses import describe_mechanisms


def test_record_lists_runs_trained_now_and_read_back(tiny_config, store):
    record = ChapterRecord("00_primer", {"profile": "smoke", "seed": 0, "datasets": []})
    first = experiment.run(tiny_config, store, progress=False)
    again = experiment.run(tiny_config, store, progress=False)
    other = experiment.run(tiny_config.with_mechanisms(label_smoothing=0.1), store, progress=False)
    assert not first.from_store and again.from_store and not other.from_store
    runs = record.runs()
    assert list(runs["run key"]) == [first.key[:12], other.key[:12]]  # one row per distinct run
    assert list(runs["source"]) == ["trained now", "trained now"]
    assert list(runs["mechanisms"]) == ["baseline", "label_smoothing α = 0.1"]
    summary = record.summary()["value"]
    assert summary["runs trained now"] == "2" and summary["runs read from the store"] == "0"
    assert summary["parameter: profile"] == "smoke" and summary["parameter: datasets"] == "(all)"
    assert float(summary["wall time (s)"]) > 0
    for fact in ("mia_utils version", "git commit", "torch", "device", "executed at"):
        assert summary[fact]

    later = ChapterRecord("00_primer", {"profile": "smoke"})  # a second chapter in the same process
    experiment.run(tiny_config, store, progress=False)
    assert list(later.runs()["source"]) == ["result store"]
    later.trained_now = [first.key]  # trained by the chapter's opening sweep, then read back
    assert list(later.runs()["source"]) == ["trained now"]


def test_describe_mechanisms():
    assert describe_mechanisms(()) == "baseline"
    assert describe_mechanisms((("distillation", 50.0), ("random_crop", 4.0))) == "distillation T = 50, random_crop c = 4"


def test_open_chapter_validates_the_notebooks_parameters_and_starts_the_record(monkeypatch):
    import pytest

    from mia_utils.book import sweep
    from mia_utils.book.chapters import ParameterError
    from mia_utils.book.provenance import open_chapter

    calls = []
    monkeypatch.setattr(sweep, "train_chapter_runs",
                        lambda chapter, params, store: calls.append((chapter, params)) or (None, ["a" * 24]))
    namespace = {"profile": "smoke", "datasets": [], "seed": 3, "unrelated": object()}
    params, record = open_chapter("03_differential_privacy", namespace)
    assert params["seed"] == 3 and params["profile"] == "smoke"
    assert record.chapter == "03_differential_privacy" and record.params == params
    assert calls == [("03_differential_privacy", params)] and record.trained_now == ["a" * 24]
    assert record.profile.name == "smoke" and record.seeds == tuple(range(3, 3 + record.profile.seeds))
    with pytest.raises(ParameterError, match="seed"):
        open_chapter("03_differential_privacy", {**namespace, "seed": -1})
    with pytest.raises(ValueError, match="needs the parameters datasets"):
        open_chapter("03_differential_privacy", {"profile": "smoke", "seed": 0})
