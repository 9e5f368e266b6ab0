"""Bad input on the command line stops before anything trains, with a message that names the
parameter, the value and what is allowed (``run``, ``train``, ``plan`` and ``sweep``)."""

import pytest

from mia_utils.cli import main

#: (command line, words the error must contain)
BAD_INPUTS = [
    ("run 00_primer --profile huge", ["'profile'", "'huge'", "smoke, quick, paper"]),
    ("run nosuch_chapter", ["chapter", "'nosuch_chapter'", "00_primer"]),
    ("run 00_primer -p seed -1", ["'seed'", "-1", "[0,"]),
    ("run 00_primer -p members 99999999", ["'members'", "99999999", "60000"]),
    ("run 00_primer -p epochs x", ["'epochs'", "'x'", "int"]),
    ("run 01_baselines -p datasets mnist", ["'datasets'", "mnist", "fmnist"]),
    ("run 01_baselines -p shadow_models 3", ["'shadow_models'", "3", "even"]),
    ("run 00_primer -p nosuch 1", ["'nosuch'", "unknown", "members"]),
    ("run 00_primer --jobs 0", ["--jobs", "0", ">= 1"]),
    ("run 00_primer -p width 1e-9", ["'width'", "1e-09", "at least 0.0625"]),
    ("run 00_primer -p members 3", ["'members'", "3", "at least 8"]),
    ("run 09_stronger_attacks -p augmentations 1", ["'augmentations'", "1", "at least 2"]),
    ("train -p mechanisms label_smoothing=0.5x", ["-p mechanisms", "label_smoothing", "'0.5x'", "number"]),
    ("train -p mechanisms label_smoothing", ["-p mechanisms", "'label_smoothing'", "NAME=VALUE"]),
    ("train -p mechanisms label_smoothing=2", ["label_smoothing", "2.0", "0.01 <= alpha <= 0.99"]),
    ("train -p mechanisms nosuch=1", ["unknown mechanism 'nosuch'", "distillation"]),
    ("train -p mechanisms dp_sgd=1,mixup=1", ["dp_sgd cannot be combined with mixup"]),
    ("train -p mechanisms random_crop=2.5", ["random_crop", "2.5", "whole number"]),
    ("train -p epochs x", ["-p epochs", "'x'", "whole number"]),
    ("train -p nosuch 3", ["-p nosuch", "not a configuration field", "n_members"]),
    ("train --dataset mnist", ["dataset", "'mnist'", "fmnist"]),
    ("train --profile huge", ["profile", "'huge'", "smoke, quick, paper"]),
    ("train -p width 0", ["width", "0.0", "0 < width <= 16"]),
    ("train -p n_members -5", ["n_members", "-5"]),
    ("plan --profile huge", ["profile", "'huge'", "smoke, quick, paper"]),
    ("plan --chapters nosuch", ["chapter", "'nosuch'", "00_primer"]),
    ("plan --seed -1", ["'seed'", "-1"]),
    ("sweep --retries -1", ["--retries", "-1", ">= 0"]),
    ("sweep --lockstep 0", ["--lockstep", "0", ">= 1"]),
    ("sweep --profile huge", ["profile", "'huge'", "smoke, quick, paper"]),
    ("sweep --chapters nosuch", ["chapter", "'nosuch'"]),
    ("sweep --workers 0", ["--workers", "0", ">= 1"]),
    ("sweep --threads 0", ["--threads", "0", ">= 1"]),
]


def test_at_least_twenty_bad_inputs_across_the_four_commands():
    assert len(BAD_INPUTS) >= 20
    assert {line.split()[0] for line, _ in BAD_INPUTS} == {"run", "train", "plan", "sweep"}


@pytest.mark.parametrize("line, words", BAD_INPUTS, ids=[line for line, _ in BAD_INPUTS])
def test_bad_input_stops_before_training_and_says_why(line, words, tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    monkeypatch.setenv("MIA_STORE", str(store))
    assert main(line.split()) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") or "\nerror: " in error, error
    missing = [word for word in words if word not in error]
    assert missing == [], error
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())  # nothing trained


def test_a_value_argparse_cannot_read_also_stops(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "00_primer", "--jobs", "two"])
    assert stop.value.code == 2 and "--jobs" in capsys.readouterr().err
