"""keras-drn train / evaluate / predict on a small dataset in the reference's folder format,
written by the test: the run folder, resuming, the outputs a user opens, and bad input."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from keras_drn.cli import app as cli
from tests.cli.helpers import refused
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


# The folder's statistics (info.json), far from ImageNet's.
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def normalised(images, mean, std):
    return ((images / 255.0 - np.float32(mean)) / np.float32(std)).astype("float32")


def _train(folder, run, epochs):
    return cli.main(["train", "--data", str(folder), "--output-dir", str(run), "--epochs",
                     str(epochs), "--batch-size", "4", "--crop-size", "24", "--optimizer",
                     "adamw", "--lr", "1e-3", "--one-line-per-epoch",
                     "--mixed-precision", "float32"])  # the checks compare with float32


def test_train_evaluate_predict(folder, tmp_path, capsys):
    import keras

    from keras_drn.workflows import runs
    from keras_drn.models.preprocessing import preprocessing_of

    run = tmp_path / "run"
    assert _train(folder, run, epochs=1) == 0
    out = capsys.readouterr().out
    assert "validation IoU (%)" in out and "mIoU" in out and "line" in out
    assert {"model.keras", "best.keras", "info.json", "log.csv", "val_predictions.png",
            "state"} <= {p.name for p in run.iterdir()}
    info = json.loads((run / "info.json").read_text())
    assert info["format"] == runs.FORMAT and info["task"] == "segmentation"
    assert info["num_classes"] == 4 and info["status"] == "complete"
    assert info["data"] == str(folder) and info["crop_size"] == 24 and info["epochs_done"] == 1
    model = keras.saving.load_model(run / "model.keras")
    # The model carries the data's normalisation (info.json of the folder: 0.5 / 0.25).
    np.testing.assert_allclose(preprocessing_of(model), ([0.5] * 3, [0.25] * 3), rtol=1e-6)

    # Same arguments, more epochs: resumes after the finished epoch instead of starting over.
    assert _train(folder, run, epochs=2) == 0
    assert "resumed after epoch 1" in capsys.readouterr().out
    with open(run / "log.csv", newline="") as stream:
        assert [row["epoch"] for row in csv.DictReader(stream)] == ["0", "1"]
    # The same command again: complete, says so, trains nothing.
    assert _train(folder, run, epochs=2) == 0
    out = capsys.readouterr().out
    assert "is a complete run (2 epochs" in out and "trained for" not in out

    assert cli.main(["evaluate", str(run / "model.keras"), "--data", str(folder),
                     "--scales", "0.75,1", "--flip"]) == 0
    out = capsys.readouterr().out
    assert "val IoU (%)" in out and "mIoU" in out and "pixel accuracy" in out
    # Single-scale evaluate agrees with the argmax of a twin without the preprocessing layer
    # (same weights) fed the val images read by PIL and normalised here with the folder's
    # statistics: normalising twice, with ImageNet's statistics or not at all fails.
    import keras_drn
    from keras_drn.workflows import segmentation as segment
    from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
    from keras_drn.evaluation import confusion_matrix

    model = keras.saving.load_model(run / "model.keras")  # after the resumed epoch
    twin = keras_drn.DRNSegmenter("drn_d_22", num_classes=4)  # takes normalised images
    twin.set_weights(model.get_weights())

    def twin_argmax(path, mean=MEAN, std=STD):
        raw = np.asarray(Image.open(path).convert("RGB"), "float32")[None]
        return np.argmax(twin.predict(normalised(raw, mean, std), verbose=0)[0], -1)

    report = segment.evaluate(str(run / "model.keras"), str(folder))
    confusion = np.zeros((4, 4), "int64")
    wrong = np.zeros((4, 4), "int64")  # with ImageNet's statistics instead of the folder's
    for i in range(8, 12):
        labels = np.asarray(Image.open(folder / f"{i}_label.png"))
        confusion += confusion_matrix(labels, twin_argmax(folder / f"{i}.jpg"), 4)
        wrong += confusion_matrix(
            labels, twin_argmax(folder / f"{i}.jpg", IMAGENET_MEAN, IMAGENET_STD), 4)
    np.testing.assert_array_equal(report.confusion, confusion)
    assert np.any(wrong != confusion)  # the test can fail: the statistics matter here

    gray = tmp_path / "gray.png"
    Image.open(folder / "9.jpg").convert("L").resize((30, 21)).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.open(folder / "8.jpg").convert("RGBA").save(rgba)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.open(folder / "8.jpg").save(tmp_path / "a" / "photo.png")
    Image.open(folder / "9.jpg").save(tmp_path / "b" / "photo.png")
    assert cli.main(["predict", str(run / "model.keras"), str(gray), str(rgba),
                     str(tmp_path / "a" / "photo.png"), str(tmp_path / "b" / "photo.png"),
                     "--output-dir", str(tmp_path / "out")]) == 0
    mask = Image.open(tmp_path / "out" / "gray_mask.png")
    assert mask.mode == "P" and mask.size == (30, 21)  # palette PNG at the image's size
    overlay = Image.open(tmp_path / "out" / "rgba_overlay.png")
    assert overlay.mode == "RGB" and overlay.size == (24, 24)
    # One mask per input, even where two inputs share a file name; each the twin's argmax on
    # the image normalised here (the run's model normalises it itself, once).
    for name, source in (("a_photo", "a/photo.png"), ("b_photo", "b/photo.png"),
                         ("gray", "gray.png")):
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}_mask.png"))
        np.testing.assert_array_equal(written, twin_argmax(tmp_path / source))


def test_a_rerun_into_a_folder_of_another_run_is_refused(folder, tmp_path, capsys):
    from keras_drn.workflows import runs

    run = tmp_path / "run"
    assert _train(folder, run, epochs=1) == 0
    before = (run / "info.json").read_text()
    with refused(capsys, "data: .* -> 'synthetic'.*--overwrite"):
        cli.main(["train", "--data", "synthetic", "--size", "24", "--output-dir", str(run),
                  "--epochs", "1"])
    assert (run / "info.json").read_text() == before  # nothing of the old run was touched


def test_evaluate_uses_the_runs_scene_size_and_seed(tmp_path, monkeypatch):
    import keras

    from keras_drn.workflows import runs
    from keras_drn.workflows import segmentation as segment

    run = runs.RunFolder(tmp_path / "run")
    with run.lock():
        info = run.start({"task": "segmentation", "data": "synthetic", "num_classes": 4,
                          "class_names": list("abcd"), "size": 32, "crop_size": 32,
                          "seed": 5, "backbone": "drn_d_22", "head": "drn", "context": None,
                          "anti_alias": None, "upsampling": "deconv", "backbone_weights": None,
                          "mean": [0.5] * 3, "std": [0.25] * 3})
        run.finish(info)
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs)).save(run.model_path)
    asked = {}
    real = segment.load_data

    def load_data(spec, split, num_classes=None, size=64, seed=0, **options):
        asked.update(size=size, seed=seed)
        return real(spec, split, num_classes, size, seed, **options)

    monkeypatch.setattr(segment, "load_data", load_data)
    segment.evaluate(str(run.model_path), "synthetic")
    assert asked == {"size": 32, "seed": 5}  # not the defaults 64 and 0


def test_bad_input_is_named(folder, tmp_path, capsys):
    import keras

    with refused(capsys, "Unknown data 'nowhere'"):
        cli.main(["train", "--data", "nowhere", "--output-dir", str(tmp_path / "r")])
    with refused(capsys, "Expected an existing .keras model file"):
        cli.main(["predict", str(tmp_path / "missing.keras"), str(folder / "0.jpg")])
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model.keras").write_bytes(b"")
    with refused(capsys, "is empty \\(0 bytes\\)"):
        cli.main(["predict", str(lonely / "model.keras"), str(folder / "0.jpg")])
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs)).save(lonely / "model.keras")
    with refused(capsys, "No .*info.json"):
        cli.main(["predict", str(lonely / "model.keras"), str(folder / "0.jpg")])
    with refused(capsys, "keras-drn train: error: --num-classes 0: give 1 \\(a binary mask"):
        cli.main(["train", "--data", str(folder), "--num-classes", "0",
                  "--output-dir", str(tmp_path / "one")])


KILL_AT_MODEL = """
import os, signal, sys
from keras_drn import atomic
from keras_drn.cli import app as cli

real = atomic.write_atomically

def write_atomically(path, write, *args, **kwargs):
    if os.path.basename(str(path)) == "model.keras":
        temporary = atomic.temporary_path(path)
        write(str(temporary))
        with open(temporary, "r+b") as stream:
            stream.truncate(os.path.getsize(temporary) // 2)
        os.kill(os.getpid(), signal.SIGKILL)  # torn model.keras, never renamed
    return real(path, write, *args, **kwargs)

atomic.write_atomically = write_atomically
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow  # two keras-drn train subprocesses
def test_sigkill_while_writing_the_final_model_loses_no_epoch(folder, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from keras_drn.workflows import runs

    run = tmp_path / "run"
    arguments = ["train", "--data", str(folder), "--output-dir", str(run), "--epochs", "2",
                 "--batch-size", "4", "--crop-size", "24", "--optimizer", "adamw",
                 "--one-line-per-epoch"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    killed = subprocess.run([sys.executable, "-c", KILL_AT_MODEL, *arguments],
                            capture_output=True, text=True, env=env, timeout=900)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run / "model.keras").exists()
    assert json.loads((run / "info.json").read_text())["status"] == "training"
    done = subprocess.run([sys.executable, "-m", "keras_drn.cli", *arguments],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed after epoch 2" in done.stdout and "Epoch 1/2" not in done.stdout
    runs.load_model(run / "model.keras")
    info = json.loads((run / "info.json").read_text())
    assert info["status"] == "complete" and info["epochs_done"] == 2
    with open(run / "log.csv", newline="") as stream:
        assert [row["epoch"] for row in csv.DictReader(stream)] == ["0", "1"]
    assert [p.name for p in run.rglob("*") if ".tmp" in p.name] == []


def test_binary_segmentation_trains_predicts_and_writes_an_rle_submission(tmp_path, capsys):
    """--num-classes 1 with 0/255 masks: one logit per pixel, BCE + Dice, Dice reported,
    0/1 masks, and a submission whose RLE decodes to the written mask."""
    import keras

    from keras_drn.data import make_scenes
    from keras_drn.workflows.submission import rle_decode

    images, masks, _ = make_scenes(12, size=24, seed=5)
    for split, indices in (("train", range(8)), ("val", range(8, 12))):
        for sub in ("images", "masks"):
            (tmp_path / "data" / split / sub).mkdir(parents=True)
        for i in indices:
            Image.fromarray((255 * images[i]).astype("uint8")).save(
                tmp_path / "data" / split / "images" / f"{i}.png")
            Image.fromarray(np.where(masks[i] > 0, 255, 0).astype("uint8")).save(
                tmp_path / "data" / split / "masks" / f"{i}.png")
    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(tmp_path / "data"), "--num-classes", "1",
                     "--output-dir", str(run), "--epochs", "1", "--batch-size", "4",
                     "--crop-size", "24", "--optimizer", "adamw", "--lr", "1e-3"]) == 0
    out = capsys.readouterr().out
    assert "Dice (object)" in out and "val_dice" in out
    # Not a terminal: one line per epoch without being asked, no progress-bar escape codes.
    assert "\x08" not in out and "\r" not in out
    model = keras.saving.load_model(run / "model.keras")
    assert model.output.shape[-1] == 1
    test = tmp_path / "data" / "val" / "images"
    submission = tmp_path / "submission.csv"
    assert cli.main(["predict", str(run / "model.keras"), str(test), "--output-dir",
                     str(tmp_path / "out"), "--submission", str(submission),
                     "--threshold", "0.3"]) == 0
    with open(submission, newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["ImageId", "EncodedPixels"] and len(rows) == 5
    for image_id, rle in rows[1:]:
        written = np.asarray(Image.open(tmp_path / "out" / f"{image_id}_mask.png"))
        np.testing.assert_array_equal(rle_decode(rle, written.shape), written)
        raw = np.asarray(Image.open(test / f"{image_id}.png"), "float32")[None]
        probability = 1 / (1 + np.exp(-model.predict(raw, verbose=0)[0, ..., 0]))
        # predict folds BatchNormalization into the convolutions (runs.load_for_inference):
        # the same probabilities within the rounding of the run's precision (bfloat16 where
        # "auto" picks it), so only a pixel that close to the threshold may land either side.
        close = np.abs(probability - 0.3) < 0.02
        np.testing.assert_array_equal(written[~close], (probability > 0.3)[~close])


def test_a_binary_folder_reads_255_alike_in_every_split(tmp_path):
    """0/1 masks with 255 = ignore: a val split whose masks hold no object pixel ({0, 255})
    takes the training split's convention, so its 255 stays ignore (decided per split, it
    became object)."""
    from keras_drn.workflows import segmentation as segment

    with_object = np.zeros((4, 5), np.uint8)
    with_object[0] = 255
    with_object[2, 1:3] = 1
    no_object = np.zeros((4, 5), np.uint8)
    no_object[0] = 255
    for split, mask in (("train", with_object), ("val", no_object)):
        for kind, array in (("images", np.full((4, 5, 3), 90, np.uint8)), ("masks", mask)):
            (tmp_path / split / kind).mkdir(parents=True)
            Image.fromarray(array).save(tmp_path / split / kind / "a.png")
    for split, mask in (("train", with_object), ("val", no_object)):
        source = segment.load_data(str(tmp_path), split, num_classes=1)
        (_, read), = list(source.dataset.as_numpy_iterator())
        np.testing.assert_array_equal(np.squeeze(read), mask)


def test_a_flat_folder_trains_with_val_fraction_and_size_without_a_crop_flag(tmp_path, capsys):
    """images/ + masks/ without splits, in two image sizes: --val-fraction holds out part of
    it, --size resizes every file (no --crop-size needed); both are recorded and evaluate
    uses them again without being told."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    images, masks, _ = make_scenes(10, size=24, seed=5)
    for i in range(10):
        side = 24 if i % 2 else 20  # two sizes: batching needs the resize
        image = Image.fromarray((255 * images[i]).astype("uint8")).resize((side, side))
        image.save(root / "images" / f"s{i}.png")
        Image.fromarray(masks[i]).resize((side, side), Image.NEAREST).save(
            root / "masks" / f"s{i}.png")
    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(root), "--output-dir", str(run), "--num-classes",
                     "4", "--val-fraction", "0.3", "--size", "16", "--epochs", "1",
                     "--batch-size", "2", "--optimizer", "adamw", "--lr", "1e-3",
                     "--one-line-per-epoch", "--mixed-precision", "float32"]) == 0
    info = json.loads((run / "info.json").read_text())
    assert (info["val_fraction"], info["size"]) == (0.3, 16)
    capsys.readouterr()
    assert cli.main(["evaluate", str(run / "model.keras")]) == 0
    assert "mIoU" in capsys.readouterr().out
    # predict on a folder holding one broken image: it is named and skipped, the rest predicted
    (tmp_path / "test").mkdir()
    for name in ("s0.png", "s1.png"):
        (tmp_path / "test" / name).write_bytes((root / "images" / name).read_bytes())
    (tmp_path / "test" / "broken.png").write_bytes(b"not a png")
    assert cli.main(["predict", str(run / "model.keras"), str(tmp_path / "test"),
                     "--output-dir", str(tmp_path / "out")]) == 0
    assert "broken.png" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").glob("*_mask.png")) == [
        "s0_mask.png", "s1_mask.png"]
    # without --val-fraction the folder's missing val split is named, with the fix
    with refused(capsys, "--val-fraction"):
        cli.main(["train", "--data", str(root), "--output-dir", str(tmp_path / "other"),
                  "--num-classes", "4", "--epochs", "1"])
