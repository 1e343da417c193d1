import numpy as np
import pytest
from PIL import Image

from keras_drn.cli import app as cli
from tests.published import DEPTHS, PARAMETERS


def test_models_lists_every_variant(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for name, count in PARAMETERS.items():
        line = next(row for row in out.splitlines() if row.startswith(name + " "))
        assert f"{count:,}" in line and ",".join(map(str, DEPTHS[name])) in line


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
    with pytest.raises(FileExistsError, match=f"{output} exists and was not written by "
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


def _scene_folder(root):
    """3 val scenes of 24x24 in the reference's folder format."""
    import json

    from PIL import Image

    from keras_drn.data import make_scenes

    images, masks, _ = make_scenes(3, size=24, seed=5)
    for i in range(3):
        Image.fromarray((255 * images[i]).astype("uint8")).save(root / f"{i}.png")
        Image.fromarray(masks[i]).save(root / f"{i}_label.png")
    (root / "val_images.txt").write_text("".join(f"{i}.png\n" for i in range(3)))
    (root / "val_labels.txt").write_text("".join(f"{i}_label.png\n" for i in range(3)))
    info = {"mean": [0.5] * 3, "std": [0.25] * 3, "num_classes": 4}
    (root / "info.json").write_text(json.dumps(info))
    return root


def test_evaluate_consistency_of_a_segmenter_and_a_classifier(capsys, tmp_path):
    pytest.importorskip("tensorflow")  # the data pipeline
    import keras

    data = _scene_folder(tmp_path)
    from keras_drn.workflows import runs

    run = tmp_path / "run"
    folder = runs.RunFolder(run)
    with folder.lock():
        folder.finish(folder.start({
            "task": "segmentation", "data": str(data), "num_classes": 4,
            "class_names": None, "size": None, "crop_size": None, "seed": 0,
            "backbone": "drn_d_22", "head": "drn", "context": None, "anti_alias": None,
            "upsampling": "deconv", "backbone_weights": None, "mean": [0.5] * 3,
            "std": [0.25] * 3}))
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs)).save(run / "model.keras")
    assert cli.main(["evaluate", str(run / "model.keras"), "--data", str(data),
                     "--consistency", "--max-shift", "4"]) == 0
    out = capsys.readouterr().out
    # A per-pixel model is exactly shift equivariant: every pixel keeps its label.
    assert "mIoU" in out and "val shift consistency 100.00% of pixels unchanged" in out

    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1)(inputs))
    classifier = tmp_path / "classifier.keras"  # no run folder: raw images in
    keras.Model(inputs, keras.layers.Dense(3)(features)).save(classifier)
    assert cli.main(["evaluate", str(classifier), "--data", str(data), "--consistency"]) == 0
    out = capsys.readouterr().out
    assert "val top-1 shift consistency" in out and "mIoU" not in out
    with pytest.raises(ValueError, match="is a classifier"):
        cli.main(["evaluate", str(classifier), "--data", str(data)])


def test_train_task_classification_then_predict_through_the_cli(tmp_path, capsys):
    pytest.importorskip("tensorflow")  # the data pipeline
    import csv
    import json

    import numpy as np
    from PIL import Image

    colours = {"blue": (30, 40, 220), "red": (220, 30, 30)}
    rng = np.random.default_rng(0)
    for name, colour in colours.items():
        for i in range(4):
            folder = tmp_path / "train" / name
            folder.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (20, 14, 3)), 0, 255)
            Image.fromarray(pixels.astype("uint8")).save(folder / f"{i}.png")
    (tmp_path / "test").mkdir()
    for i, name in enumerate(["red", "blue", "red"]):
        pixels = np.clip(np.array(colours[name]) + rng.normal(0, 20, (18, 22, 3)), 0, 255)
        Image.fromarray(pixels.astype("uint8")).save(tmp_path / "test" / f"t{i}.png")
    run = tmp_path / "run"
    assert cli.main(["train", "--task", "classification", "--data", str(tmp_path / "train"),
                     "--size", "16", "--head-epochs", "1", "--epochs", "0", "--batch-size",
                     "4", "--val-fraction", "0.25", "--output-dir", str(run), "--test-dir",
                     str(tmp_path / "test"), "--probabilities"]) == 0
    info = json.loads((run / "info.json").read_text())
    assert info["task"] == "classification" and info["class_names"] == ["blue", "red"]
    assert info["image_size"] == 16 and info["head_epochs"] == 1 and info["val_fraction"] == 0.25
    with open(run / "submission.csv", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["id", "blue", "red"] and [r[0] for r in rows[1:]] == ["t0", "t1", "t2"]
    assert all(abs(float(r[1]) + float(r[2]) - 1) < 1e-4 for r in rows[1:])
    capsys.readouterr()
    labels = tmp_path / "labels.csv"
    assert cli.main(["predict", str(run / "model.keras"), str(tmp_path / "test"),
                     "--submission", str(labels)]) == 0
    assert f"wrote {labels}" in capsys.readouterr().out
    with open(labels, newline="") as stream:
        predicted = list(csv.reader(stream))
    assert predicted[0] == ["id", "label"]
    # The same model, flip TTA both times: the label is the larger probability column.
    for (ident, blue, red), (other, label) in zip(rows[1:], predicted[1:]):
        assert ident == other and label == ("blue" if float(blue) > float(red) else "red")


def _python(code, tmp_path, **env):
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items()
                   if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    environment.update(KERAS_HOME=str(tmp_path), **env)  # no keras.json there
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, timeout=300)


HIDE = """
import importlib.util
real = importlib.util.find_spec
hidden = {hidden}
importlib.util.find_spec = lambda name, *a, **k: None if name in hidden else real(name, *a, **k)
"""


def test_an_installed_backend_is_chosen_before_keras_is_imported(tmp_path):
    # Only jax "installed": Keras's default (tensorflow) would fail with ModuleNotFoundError.
    done = _python(HIDE.format(hidden={"tensorflow"}) + "import keras_drn.cli, keras\n"
                   "print('backend', keras.backend.backend())", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "backend jax" in done.stdout
    home = tmp_path / "fresh"  # Keras wrote keras.json into the first KERAS_HOME
    home.mkdir()
    nothing = _python(HIDE.format(hidden={"tensorflow", "jax", "torch"}) +
                      "import keras_drn.cli", home)
    assert nothing.returncode != 0
    assert "none is installed: pip install 'keras-drn[jax]'" in nothing.stderr
    assert nothing.stderr.count("\n") < 12  # a short message, not a long import traceback


def test_tensorflow_log_lines_are_quiet_unless_verbose(tmp_path):
    pytest.importorskip("tensorflow")
    import os
    import subprocess
    import sys

    command = os.path.join(os.path.dirname(sys.executable), "keras-drn")
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment["KERAS_BACKEND"] = "tensorflow"
    quiet = subprocess.run([command, "models"], capture_output=True, text=True,
                           env=environment, timeout=300)
    assert quiet.returncode == 0 and "drn_d_22" in quiet.stdout
    assert "oneDNN" not in quiet.stderr and "I0000" not in quiet.stderr, quiet.stderr
    verbose = subprocess.run([command, "--verbose", "models"], capture_output=True,
                             text=True, env=environment, timeout=300)
    assert verbose.returncode == 0 and "oneDNN" in verbose.stderr


def test_a_chosen_backend_that_is_not_installed_gets_its_pip_line(tmp_path):
    """KERAS_BACKEND=torch without torch: one line with the install command, not Keras's long
    ModuleNotFoundError; in the keras-drn command, no traceback at all."""
    for argv0, traceback in (("script.py", True), ("/usr/bin/keras-drn", False)):
        code = (HIDE.format(hidden={"torch"}) + f"import sys; sys.argv[0] = {argv0!r}\n"
                "import keras_drn.cli\n")
        done = _python(code, tmp_path, KERAS_BACKEND="torch")
        assert done.returncode != 0
        assert ("the Keras backend is torch (KERAS_BACKEND), but torch is not installed: pip "
                "install 'keras-drn[torch]'") in done.stderr, done.stderr[-2000:]
        assert ("Traceback" in done.stderr) == traceback
