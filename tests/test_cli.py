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


def test_train_task_classification_and_predict_wiring(monkeypatch, tmp_path, capsys):
    import json

    from keras_drn import classify

    calls = {}

    class Report:
        class_names = ("a", "b")

    def fake_train(**kwargs):
        calls["train"] = kwargs
        return "model", Report()

    def fake_submission(model, test_dir, path, class_names, image_size, probabilities):
        calls["submission"] = (model, test_dir, path, class_names, image_size, probabilities)

    monkeypatch.setattr(classify, "train", fake_train)
    monkeypatch.setattr(classify, "write_submission", fake_submission)
    out = str(tmp_path / "run")
    assert cli.main(["train", "--task", "classification", "--data", "folder", "--size", "48",
                     "--head-epochs", "1", "--epochs", "3", "--output-dir", out,
                     "--test-dir", "test", "--probabilities"]) == 0
    kwargs = calls["train"]
    assert kwargs["data"] == "folder" and kwargs["image_size"] == 48
    assert (kwargs["head_epochs"], kwargs["epochs"]) == (1, 3)
    assert kwargs["learning_rate"] == 1e-3 and kwargs["backbone_weights"] is None
    assert calls["submission"] == ("model", "test", f"{out}/submission.csv", ("a", "b"), 48,
                                   True)

    (tmp_path / "info.json").write_text(json.dumps({"task": "classification"}))
    monkeypatch.setattr(classify, "predict", lambda *a, **k: calls.setdefault("predict",
                                                                               (a, k)))
    model = str(tmp_path / "model.keras")
    assert cli.main(["predict", model, "test", "--output-dir", str(tmp_path), "--flip"]) == 0
    args, kwargs = calls["predict"]
    assert args == (model, "test", str(tmp_path / "submission.csv")) and kwargs["tta"] is True
    assert "submission.csv" in capsys.readouterr().out
