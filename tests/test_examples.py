"""The examples run end to end offline, at small sizes (slow: CI runs them on one backend),
and their backend-dependent parts on every backend."""

import csv
import json
import pathlib
import runpy

import keras
import numpy as np
import pytest
from PIL import Image

import keras_drn
from keras_drn.workflows import classification as classify

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _example(name):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="example")


@pytest.mark.slow
def test_finetune_segmentation_freezes_then_unfreezes(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    backbone = tmp_path / "d22.weights.h5"
    classifier = keras_drn.DRN_D_22(classes=10)
    classifier.save_weights(backbone)
    example = _example("finetune_segmentation")
    out_dir = tmp_path / "run"
    report = example["main"]([
        "--backbone-weights", str(backbone), "--size", "16", "--head-epochs", "1",
        "--epochs", "1", "--batch-size", "16", "--output-dir", str(out_dir)])
    out = capsys.readouterr().out
    phase1, phase2 = (int(line.split(", ")[-1].split()[0].replace(",", ""))
                      for line in out.splitlines() if line.startswith("phase"))
    assert phase1 == 4 * 512 + 4  # only the 1x1 classifier learns in phase 1
    fresh = keras_drn.DRNSegmenter("drn_d_22", 4)
    def count(weights):
        return sum(int(np.prod(w.shape)) for w in weights)
    # BatchNormalization stays frozen: its gamma and beta (as many as its moving statistics).
    assert phase2 == count(fresh.trainable_weights) - count(fresh.non_trainable_weights)
    assert 0 <= report.miou <= 1 and "mIoU" in out
    info = json.loads((out_dir / "info.json").read_text())
    assert info["num_classes"] == 4
    model = keras.saving.load_model(out_dir / "model.keras")
    assert model.output_shape == (None, None, None, 4)
    if keras.backend.backend() == "tensorflow":
        assert (out_dir / "saved_model" / "saved_model.pb").is_file()


def test_finetune_segmentation_freezing_trains_the_right_weights():
    """The example's own freeze and unfreeze on every backend (the run above is slow, so CI
    runs it on TensorFlow only), as its main uses them, recompiling after each: one SGD step
    after freezing moves every trainable head weight and nothing of the backbone (its
    BatchNormalization in inference mode: moving statistics kept); after unfreezing with
    train_bn=False it moves every backbone weight but those of BatchNormalization."""
    from keras_drn.workflows.training import compile_segmenter

    example = _example("finetune_segmentation")
    keras.utils.set_random_seed(0)
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=3)
    names = example["backbone_layer_names"]("drn_d_22")
    backbone = [layer for layer in model.layers if layer.name in names]
    assert backbone and len(backbone) < len(model.layers)
    assert len({w.path for w in model.weights}) == len(model.weights)  # paths name them
    batchnorm = {w.path for layer in backbone
                 for inner in layer._flatten_layers(include_self=True, recursive=True)
                 if isinstance(inner, keras.layers.BatchNormalization) for w in inner.weights}
    in_backbone = {w.path for layer in backbone for w in layer.weights}
    assert batchnorm and batchnorm < in_backbone
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 3, (2, 16, 16)).astype("int32")

    def moved():
        compile_segmenter(model, 3, optimizer=keras.optimizers.SGD(0.5))
        before = [keras.ops.convert_to_numpy(w) for w in model.weights]
        model.fit(x, y, batch_size=2, epochs=1, verbose=0)
        return {w.path for w, old in zip(model.weights, before)
                if not np.array_equal(keras.ops.convert_to_numpy(w), old)}

    example["set_backbone_trainable"](model, "drn_d_22", False)
    head = {w.path for w in model.trainable_weights}
    assert head and not head & in_backbone
    assert example["count_trainable"](model) == sum(
        int(np.prod(w.shape)) for w in model.weights if w.path in head)
    changed = moved()
    assert changed == head, f"moved outside the head: {sorted(changed - head)[:5]}, " \
        f"head weights not moved: {sorted(head - changed)[:5]}"

    example["set_backbone_trainable"](model, "drn_d_22", True, train_bn=False)
    assert {w.path for w in model.trainable_weights} == head | (in_backbone - batchnorm)
    changed = moved()
    assert not changed & batchnorm, f"BatchNormalization learned with train_bn=False: " \
        f"{sorted(changed & batchnorm)[:5]}"
    assert changed == head | (in_backbone - batchnorm), sorted(
        (head | (in_backbone - batchnorm)) - changed)[:5]


@pytest.mark.slow
def test_localize_scores_boxes_and_draws_them(tmp_path, capsys):
    example = _example("localize")
    output = tmp_path / "cam.png"
    example["main"](["--train", "64", "--val", "8", "--size", "32", "--epochs", "1",
                     "--output", str(output)])
    out = capsys.readouterr().out
    assert "8 unseen scenes" in out and "mean IoU with the true box" in out
    picture = Image.open(output)
    assert picture.mode == "RGB" and picture.height == 32 * 3


def test_localize_true_box_and_drawing():
    example = _example("localize")
    mask = np.zeros((10, 12), "uint8")
    mask[2:5, 3:9] = 2
    assert example["true_box"](mask) == (3, 2, 9, 5)
    drawn = np.asarray(example["draw_boxes"](np.zeros((10, 12, 3), "uint8"),
                                             [((3, 2, 9, 5), (255, 0, 0))], scale=2))
    assert drawn.shape == (20, 24, 3)
    assert (drawn[4, 6:18] == (255, 0, 0)).all()  # the top edge at 2x scale
    assert (drawn[10, 10] == 0).all()  # inside stays untouched


@pytest.mark.slow
def test_finetune_classification_writes_scores_submission_and_cam(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    weights = tmp_path / "d22.weights.h5"
    source = keras_drn.DRN_D_22(classes=10)  # stands in for "imagenet"
    statistics_rng = np.random.default_rng(1)
    for weight in source.weights:  # moving statistics away from their init, to be told apart
        if "moving" in weight.path:
            weight.assign(statistics_rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    source.save_weights(weights)
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    for name, colour in colours.items():
        for i in range(8):
            folder = tmp_path / "train" / name
            folder.mkdir(parents=True, exist_ok=True)
            noise = rng.normal(0, 20, (20, 20, 3))
            Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype("uint8")).save(
                folder / f"{i}.png")
    (tmp_path / "test").mkdir()
    for i, colour in enumerate(colours.values()):
        Image.fromarray(np.full((24, 20, 3), colour, "uint8")).save(tmp_path / "test" / f"{i}.png")
    out_dir = tmp_path / "run"
    report = _example("finetune_classification")["main"]([
        "--data", str(tmp_path / "train"), "--test-dir", str(tmp_path / "test"),
        "--backbone-weights", str(weights), "--image-size", "16", "--batch-size", "8",
        "--head-epochs", "1", "--epochs", "1", "--output-dir", str(out_dir)])
    out = capsys.readouterr().out
    assert "validation accuracy" in out and "precision" in out and "phase 2" in out
    assert 0 <= report.accuracy <= 1 and report.class_names == ("blue", "green", "red")
    rows = (out_dir / "submission.csv").read_text().splitlines()
    assert rows[0] == "id,label" and len(rows) == 4
    assert all(row.split(",")[1] in colours for row in rows[1:])
    for name in ("confusion_matrix.png", "cam.png", "model.keras", "best.keras"):
        assert (out_dir / name).stat().st_size > 0, name
    # Values, not just output: the final model is best.keras; the pretrained backbone's
    # BatchNormalization stayed frozen in both phases (its statistics are the file's), while
    # phase 2 trained its convolutions or the best epoch was phase 1's (then they are too).
    model = keras.saving.load_model(out_dir / "model.keras")
    best = keras.saving.load_model(out_dir / "best.keras")
    for ours, theirs in zip(model.weights, best.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      keras.ops.convert_to_numpy(theirs))
    backbone = {w.path: keras.ops.convert_to_numpy(w)
                for w in model.get_layer("backbone").weights}
    for weight in source.weights:
        if "moving" in weight.path or weight.path.endswith(("gamma", "beta")):
            np.testing.assert_array_equal(backbone[weight.path],
                                          keras.ops.convert_to_numpy(weight), err_msg=weight.path)
    with open(out_dir / "log.csv", newline="") as stream:
        accuracies = [float(row["val_accuracy"]) for row in csv.DictReader(stream)]
    assert len(accuracies) == 2  # one epoch of each phase
    assert 100 * max(accuracies) == pytest.approx(float(
        out.split("best validation accuracy ")[1].split()[0].rstrip(";")) * 100, abs=0.01)
    # The submission is the saved model's (flip TTA), not the last epoch's.
    classify.write_submission(model, tmp_path / "test", tmp_path / "again.csv",
                              report.class_names, 16)
    assert (tmp_path / "again.csv").read_text() == (out_dir / "submission.csv").read_text()
