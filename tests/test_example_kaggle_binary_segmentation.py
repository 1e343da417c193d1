"""examples/kaggle_binary_segmentation.py runs offline end to end at a tiny size (slow: CI
runs it on one backend): 2 folds, the out-of-fold Dice and threshold, a submission CSV."""

import csv
import json
import pathlib
import re
import runpy

import numpy as np
import pytest
from PIL import Image

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / (
    "kaggle_binary_segmentation.py")


@pytest.mark.slow
def test_kaggle_binary_segmentation_writes_a_decodable_submission(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from keras_drn.workflows import folds
    from keras_drn.workflows.submission import rle_decode

    example = runpy.run_path(str(EXAMPLE), run_name="example")
    root = tmp_path / "kaggle"
    search = example["main"](["--output-dir", str(root), "--train", "24", "--test", "4",
                              "--size", "24", "--epochs", "1", "--batch-size", "4"])
    out = capsys.readouterr().out
    dice = float(re.search(r"out-of-fold mean per-image Dice: ([0-9.]+) at threshold "
                           r"([0-9.]+)", out).group(1))
    assert 0 <= dice <= 1 and dice == pytest.approx(search.dice, abs=1e-4)
    record = json.loads((root / "folds" / folds.THRESHOLD).read_text())
    assert record["threshold"] == search.threshold and record["folds_used"] == [0, 1]
    held = [folds.read_oof(root / "folds" / f"fold-{i}" / folds.OOF)["ids"] for i in (0, 1)]
    assert sorted(held[0] + held[1]) == [f"train_{i:04d}" for i in range(24)]
    with open(root / "data" / "train.csv", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["ImageId", "EncodedPixels"] and any(r[1] == "" for r in rows[1:])
    with open(root / "submission.csv", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["ImageId", "EncodedPixels"]
    assert [r[0] for r in rows[1:]] == [f"test_{i:04d}" for i in range(4)]
    for image_id, rle in rows[1:]:
        mask = rle_decode(rle, (24, 24))
        written = np.asarray(Image.open(root / "predictions" / f"{image_id}_mask.png"))
        np.testing.assert_array_equal(mask, written)
