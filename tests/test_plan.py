"""The book's plan lists exactly the runs the chapters train (checked on the executed smoke book)."""

import pytest

from mia_utils.book.plan import book_plan, describe, training_images
from mia_utils.store import ResultStore

pytestmark = pytest.mark.slow


def test_plan_equals_the_runs_the_smoke_book_trained(smoke_book):
    book, _ = smoke_book
    store = ResultStore(book / "store")
    plan = book_plan("smoke", store=store)
    stored = set(store.run_keys())
    assert set(plan.runs) == stored  # no run the chapters train is missing from the plan, and none extra
    assert plan.pending == []  # chapter 02's runs are stored, so chapter 04's pairs are planned
    assert plan.missing(store) == []  # every planned snapshot is kept too
    text = describe(plan, store)
    assert f"stored: {len(stored)}   missing: 0" in text and "estimated time on this machine: 0.00 h" in text


def test_plan_without_results_marks_the_pairs_pending_and_orders_teachers(tmp_path):
    plan = book_plan("smoke", store=ResultStore(tmp_path / "empty"))
    assert any("04_combinations" in note for note in plan.pending)
    order = list(plan.runs)
    for planned in plan.runs.values():
        for teacher in planned.needs:
            assert order.index(teacher) < order.index(planned.key)  # a teacher is planned before its student
    students = [p for p in plan.runs.values() if any(m == "distillation" for m, _ in p.config.mechanisms)]
    assert students and all(p.needs for p in students)
    shadow = next(p.config for p in plan.runs.values() if p.config.is_shadow)
    assert 0 < training_images(shadow) < 2 * shadow.n_members
    assert "missing: " + str(len(plan.runs)) in describe(plan, ResultStore(tmp_path / "empty"))


@pytest.mark.parametrize("profile_name", ["smoke", "quick"])
def test_plan_is_the_union_of_each_chapters_runs(profile_name, tmp_path):
    """Each chapter lists its runs once (chapter_runs.RUNS); the plan is their union, each run
    attributed to every chapter that lists it, teachers added in front of their students."""
    from mia_utils.book.runs import RUNS
    from mia_utils.book.chapters import toc_chapters, validate
    from mia_utils.book.profiles import get_profile

    profile = get_profile(profile_name)
    plan = book_plan(profile_name, store=ResultStore(tmp_path / "empty"))
    listed: dict[str, set[str]] = {}
    for chapter in toc_chapters():
        params = validate(chapter, {"profile": profile_name, "seed": 0}, check_available=False)
        for config in RUNS[chapter](profile, params, None).configs:
            listed.setdefault(config.key(), set()).add(chapter)
    teachers = {need for planned in plan.runs.values() for need in planned.needs}
    assert set(listed) <= set(plan.runs) and set(plan.runs) - set(listed) <= teachers
    for key, chapters in listed.items():
        assert set(plan.runs[key].chapters) == chapters
    assert set(RUNS) == set(toc_chapters())


def test_chapter_01_lists_the_target_and_shadows_its_parameters_ask_for():
    from mia_utils.book.chapters import validate
    from mia_utils.book.profiles import get_profile
    from mia_utils.book.runs import RUNS

    profile = get_profile("smoke")
    params = validate("01_baselines", {"profile": "smoke", "epochs": 3, "shadow_models": 6}, check_available=False)
    configs = RUNS["01_baselines"](profile, params).configs
    target = profile.base_config("fmnist", seed=0, epochs=3)
    assert target in configs
    assert [c for c in configs if c.is_shadow] == [target.shadow(i, 6) for i in range(6)]
    default = RUNS["01_baselines"](profile, validate("01_baselines", {"profile": "smoke"}, check_available=False))
    assert sum(c.is_shadow for c in default.configs) == profile.shadow_models
