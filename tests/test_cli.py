import pytest

from keras_drn import cli
from keras_drn.models.registry import PARAMETERS


def test_models_lists_every_variant(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for name, count in PARAMETERS.items():
        assert name in out and f"{count:,}" in out


def test_demo_trains_and_reports_miou(capsys, tmp_path):
    output = tmp_path / "demo.png"
    args = ["demo", "--size", "16", "--train", "16", "--val", "8", "--epochs", "1",
            "--batch-size", "8", "--output", str(output)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    for name in ("background", "disk", "line", "square", "mIoU"):
        assert name in out
    assert output.stat().st_size > 0


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    out = capsys.readouterr().out
    for option in ("--variant", "--head", "--output", "--size", "--epochs", "--learning-rate",
                   "--seed"):
        assert option in out


def test_convert_subcommand_and_tool_exist(capsys):
    with pytest.raises(SystemExit):
        cli.main(["convert", "--help"])
    out = capsys.readouterr().out
    assert "--variant" in out and "destination" in out
    import pathlib
    import subprocess
    import sys

    tool = pathlib.Path(__file__).resolve().parents[1] / "tools" / "convert_weights.py"
    result = subprocess.run([sys.executable, str(tool), "--help"], capture_output=True,
                            text=True, check=True)
    assert "--variant" in result.stdout
