"""keras-drn demo."""

import numpy as np
import pytest
from PIL import Image

from keras_drn.cli import app as cli
from tests.cli.helpers import refused


def test_demo_trains_and_reports_miou(capsys, tmp_path):
    output = tmp_path / "demo.png"
    args = ["demo", "--size", "16", "--train", "16", "--val", "8", "--epochs", "1",
            "--batch-size", "8", "--output", str(output)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    # The IoU table: a row per class in [0, 100], then their mean.
    table = {line.rsplit(None, 1)[0]: float(line.rsplit(None, 1)[1])
             for line in out.splitlines()
             if line.split(" ")[0] in ("background", "disk", "line", "square", "mIoU")}
    assert set(table) == {"background", "disk", "line", "square", "mIoU"}
    assert all(0 <= value <= 100 for value in table.values())
    classes = [table[name] for name in ("background", "disk", "line", "square")]
    assert table["mIoU"] == pytest.approx(np.mean(classes), abs=0.01)

    # The PNG is the comparison grid of the first 6 validation scenes: equal, pixel for pixel,
    # to one drawn here from the same scenes everywhere but in the prediction panels, which
    # hold only class colours.
    from keras_drn.data import CLASS_NAMES, scene_split
    from keras_drn.evaluation.visualize import comparison_grid, palette

    _, _, images, labels, _ = scene_split(16, 8, size=16, seed=0)
    picture = np.asarray(Image.open(output))
    expected = comparison_grid(images[:6], labels[:6], labels[:6], 4, class_names=CLASS_NAMES)
    other = comparison_grid(images[:6], labels[:6], (labels[:6] + 1) % 4, 4,
                            class_names=CLASS_NAMES)
    predictions = np.any(expected != other, axis=-1)  # where the prediction panels are
    assert picture.shape == expected.shape and picture.dtype == np.uint8
    assert predictions.mean() > 0.1
    np.testing.assert_array_equal(picture[~predictions], expected[~predictions])
    colours = {tuple(c) for c in palette(4)[:4]}
    drawn = {tuple(c) for c in picture[predictions]}
    assert drawn <= colours and len(drawn) >= 1


def test_demo_refuses_an_output_keras_drn_did_not_write_before_training(capsys, tmp_path):
    output = tmp_path / "holiday.png"
    Image.fromarray(np.full((3, 3, 3), 9, np.uint8)).save(output)
    before = output.read_bytes()
    with refused(capsys, f"keras-drn demo: error: {output} exists and was not written by "
                 "keras_drn.*another --output, or pass --overwrite"):
        cli.main(["demo", "--size", "16", "--train", "16", "--val", "8", "--epochs", "1",
                  "--batch-size", "8", "--output", str(output)])
    assert output.read_bytes() == before
    assert "parameters" not in capsys.readouterr().out  # refused before the model was built


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    out = capsys.readouterr().out
    for option in ("--variant", "--head", "--output", "--size", "--epochs", "--learning-rate",
                   "--seed"):
        assert option in out
