import pytest

from keras_drn import cli
from keras_drn.models.registry import PARAMETERS


def test_models_lists_every_variant(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for name, count in PARAMETERS.items():
        assert name in out and f"{count:,}" in out


def test_demo_trains_and_reports_accuracy(capsys):
    args = ["demo", "--size", "16", "--train", "16", "--val", "8", "--epochs", "1",
            "--batch-size", "8"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "validation accuracy" in out and "level8 (2, 2, 512)" in out


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    out = capsys.readouterr().out
    for option in ("--variant", "--size", "--epochs", "--learning-rate", "--seed"):
        assert option in out
