"""keras-drn train / evaluate / predict on a small dataset in the reference's folder format,
written by the test: the run folder, resuming, the outputs a user opens, and bad input."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from keras_drn import cli
from keras_drn.data import make_scenes

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """8 train and 4 val scenes of 24x24 in the segment.py format (info.json, lists, PNGs)."""
    root = tmp_path_factory.mktemp("scenes")
    images, masks, _ = make_scenes(12, size=24, seed=3)
    for split, indices in (("train", range(8)), ("val", range(8, 12))):
        names = []
        for i in indices:
            Image.fromarray((255 * images[i]).astype("uint8")).save(root / f"{i}.jpg",
                                                                     quality=95)
            Image.fromarray(masks[i]).save(root / f"{i}_label.png")
            names.append(i)
        (root / f"{split}_images.txt").write_text("".join(f"{i}.jpg\n" for i in names))
        (root / f"{split}_labels.txt").write_text("".join(f"{i}_label.png\n" for i in names))
    info = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "num_classes": 4,
            "class_names": ["background", "disk", "line", "square"]}
    (root / "info.json").write_text(json.dumps(info))
    return root


def _train(folder, run, epochs):
    return cli.main(["train", "--data", str(folder), "--output-dir", str(run), "--epochs",
                     str(epochs), "--batch-size", "4", "--crop-size", "24", "--optimizer",
                     "adamw", "--lr", "1e-3", "--one-line-per-epoch"])


def test_train_evaluate_predict(folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(folder, run, epochs=1) == 0
    out = capsys.readouterr().out
    assert "validation IoU (%)" in out and "mIoU" in out and "line" in out
    assert {"model.keras", "best.keras", "info.json", "log.csv", "val_predictions.png"} <= {
        p.name for p in run.iterdir()}
    info = json.loads((run / "info.json").read_text())
    assert info["num_classes"] == 4 and info["mean"] == [0.5, 0.5, 0.5]

    # Same arguments, more epochs: resumes after the finished epoch instead of starting over.
    assert _train(folder, run, epochs=2) == 0
    with open(run / "log.csv", newline="") as stream:
        assert [row["epoch"] for row in csv.DictReader(stream)] == ["0", "1"]

    assert cli.main(["evaluate", str(run / "model.keras"), "--data", str(folder),
                     "--scales", "0.75,1", "--flip"]) == 0
    out = capsys.readouterr().out
    assert "val IoU (%)" in out and "mIoU" in out and "pixel accuracy" in out

    gray = tmp_path / "gray.png"
    Image.open(folder / "9.jpg").convert("L").resize((30, 21)).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.open(folder / "8.jpg").convert("RGBA").save(rgba)
    assert cli.main(["predict", str(run / "model.keras"), str(gray), str(rgba),
                     "--output-dir", str(tmp_path / "out")]) == 0
    mask = Image.open(tmp_path / "out" / "gray_mask.png")
    assert mask.mode == "P" and mask.size == (30, 21)  # palette PNG at the image's size
    assert np.asarray(mask).max() < 4
    overlay = Image.open(tmp_path / "out" / "rgba_overlay.png")
    assert overlay.mode == "RGB" and overlay.size == (24, 24)


def test_bad_input_is_named(folder, tmp_path):
    with pytest.raises(ValueError, match="Unknown data 'nowhere'"):
        cli.main(["train", "--data", "nowhere", "--output-dir", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="Expected an existing .keras model file"):
        cli.main(["predict", str(tmp_path / "missing.keras"), str(folder / "0.jpg")])
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model.keras").write_bytes(b"")
    with pytest.raises(ValueError, match="No .*info.json beside the model"):
        cli.main(["predict", str(lonely / "model.keras"), str(folder / "0.jpg")])


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
    assert "usage: keras-drn " + command in capsys.readouterr().out
