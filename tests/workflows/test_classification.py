import csv
import json

import keras
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow")

from keras_drn.workflows import classification as classify  # noqa: E402
from tests.cli.helpers import refused  # noqa: E402
from tests.helpers import backbone_weights_file  # noqa: E402

CLASSES = ("blue", "green", "red")
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _write_scene(path, colour, seed, size=16):
    rng = np.random.default_rng(seed)
    image = np.clip(np.array(colour) + rng.normal(0, 20, (size, size, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.astype("uint8")).save(path)


def _arguments(root):
    """Both phases for real: one head epoch, then up to 3 fine-tuning epochs with
    BatchNormalization frozen and early stopping after one epoch without improvement."""
    return dict(data=str(root / "train"), output_dir=str(root / "run"), image_size=16,
                head_epochs=1, epochs=3, batch_size=4, val_fraction=0.25, patience=1,
                train_bn=False, mixed_precision=False, verbose=0)  # float32: exact checks


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A classifier trained through both phases on a 3-class folder of 16x16 images."""
    root = tmp_path_factory.mktemp("classify")
    for k, name in enumerate(CLASSES):
        for i in range(4):
            _write_scene(root / "train" / name / f"{i}.png", COLOURS[name], 10 * k + i)
    (root / "train" / "red" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    for i, name in enumerate(["red", "blue", "green"]):
        _write_scene(root / "test" / f"t{i}.png", COLOURS[name], 100 + i)
    keras.utils.set_random_seed(0)
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(classify, "build_classifier", _recording(classify.build_classifier))
            model, report = classify.train(**_arguments(root))
    return root, model, report


INITIAL = {}  # weight path -> value of the run's freshly built classifier


def _recording(build):
    def recorded(*args, **kwargs):
        model = build(*args, **kwargs)
        INITIAL.update((w.path, keras.ops.convert_to_numpy(w)) for w in model.weights)
        return model

    return recorded


def test_run_folder_holds_model_info_log_and_confusion_png(run):
    root, model, report = run
    out = root / "run"
    for name in ("model.keras", "best.keras", "log.csv", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    info = json.loads((out / "info.json").read_text())
    assert info["task"] == "classification" and info["class_names"] == list(CLASSES)
    assert info["image_size"] == 16 and info["backbone"] == "drn_d_22"
    assert report.class_names == CLASSES and report.confusion.sum() == 3  # 12 * 0.25
    assert Image.open(out / "confusion_matrix.png").mode == "RGB"
    assert not list(out.glob("tmp*"))  # atomic writes leave no temporary files


def _log(root):
    with open(root / "run" / "log.csv", newline="") as stream:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def test_the_best_epoch_of_both_phases_is_saved_and_restored(run):
    """best.keras is the best val_accuracy row of log.csv (the first of equals), and the
    returned model and model.keras hold its weights, not the last epoch's."""
    from keras_drn.data import classification_pipeline

    root, model, _ = run
    rows = _log(root)
    assert [row["epoch"] for row in rows][:2] == [0, 1]  # phase 1, then phase 2 ran
    best_row = max(range(len(rows)), key=lambda i: (rows[i]["val_accuracy"], -i))
    # The test can fail: early stopping ran an epoch after the best one, whose weights a
    # skipped restore would keep.
    assert best_row < len(rows) - 1 and len(rows) < 5
    best = keras.saving.load_model(root / "run" / "best.keras")
    saved = keras.saving.load_model(root / "run" / "model.keras")
    for ours, theirs, again in zip(model.weights, best.weights, saved.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      keras.ops.convert_to_numpy(theirs))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(again),
                                      keras.ops.convert_to_numpy(theirs))
    # Scored again on the run's validation split, best.keras gives that row's numbers (the
    # loss tells apart epochs of equal accuracy).
    _, val = classify.load_data(str(root / "train"), 0.25, size=16)
    best.compile(loss=keras.losses.SparseCategoricalCrossentropy(),
                 metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    scores = best.evaluate(classification_pipeline(val, 4, training=False, image_size=16),
                           return_dict=True, verbose=0)
    assert scores["accuracy"] == pytest.approx(rows[best_row]["val_accuracy"], abs=1e-6)
    assert scores["loss"] == pytest.approx(rows[best_row]["val_loss"], rel=1e-4)
    assert all(row["val_loss"] != pytest.approx(scores["loss"], rel=1e-4)
               for i, row in enumerate(rows) if i != best_row)


def test_frozen_batchnorm_keeps_its_moving_statistics_in_both_phases(run):
    """Phase 1 freezes the backbone, phase 2 (train_bn=False) only its BatchNormalization:
    after the last phase-2 epoch (its resume state) every convolution has moved, every moving
    statistic is still the random init's; so are the restored best epoch's."""
    from keras_drn.workflows import runs

    root, model, _ = run
    state = runs.read_state(root / "run" / "state")
    assert state["phase"] == 2 and state["epoch"] == len(_log(root))
    last = classify.build_classifier(3, "drn_d_22")
    last.load_weights(root / "run" / "state" / state["weights"])
    for network in (last, model):
        backbone = network.get_layer("backbone")
        norms = [layer for layer in backbone._flatten_layers(include_self=False, recursive=True)
                 if isinstance(layer, keras.layers.BatchNormalization)]
        assert norms
        for layer in norms:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), 0.0)
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_variance), 1.0)
            for weight in (layer.gamma, layer.beta):
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight),
                                              INITIAL[weight.path])
    kernels = [w for w in last.get_layer("backbone").weights if w.path.endswith("kernel")]
    assert kernels and all(w.path in INITIAL for w in kernels)
    for weight in kernels:  # the unfrozen backbone learned in phase 2
        assert not np.array_equal(keras.ops.convert_to_numpy(weight), INITIAL[weight.path])
    assert np.abs(keras.ops.convert_to_numpy(model.get_layer("fc").bias)).max() > 0


def test_unfreezing_with_and_without_batchnorm(run):
    _, model, _ = run
    classify.set_backbone_trainable(model, False)
    frozen = classify.count_trainable(model)
    assert frozen == 512 * 3 + 3  # only fc
    classify.set_backbone_trainable(model, True, train_bn=False)
    no_bn = classify.count_trainable(model)
    classify.set_backbone_trainable(model, True, train_bn=True)
    with_bn = classify.count_trainable(model)
    assert frozen < no_bn < with_bn
    classify.set_backbone_trainable(model, False)


def test_preprocessing_travels_with_the_model(run):
    _, model, _ = run
    raw = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    mean, std = np.array(classify.IMAGENET_MEAN), np.array(classify.IMAGENET_STD)
    normalised = ((raw / 255.0 - mean) / std).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.get_layer("preprocessing")(raw)), normalised,
        atol=1e-5)
    # The same network without its first layer, fed the manually normalised images.
    without = keras.Model(model.get_layer("preprocessing").output, model.output)
    np.testing.assert_allclose(model.predict(raw, verbose=0),
                               without.predict(normalised, verbose=0), atol=1e-5)


def test_saved_model_round_trip_and_submission_csv(run):
    root, model, _ = run
    probabilities_csv = root / "probabilities.csv"
    scores = classify.write_submission(model, root / "test", probabilities_csv, CLASSES, 16,
                                       probabilities=True)
    rows = list(csv.reader(probabilities_csv.open()))
    assert rows[0] == ["id", *CLASSES] and [r[0] for r in rows[1:]] == ["t0", "t1", "t2"]
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(values, scores, atol=1e-5)
    images = np.stack([np.asarray(Image.open(root / "test" / f"t{i}.png"), "float32")
                       for i in range(3)])
    flipped = classify.predict_probabilities(model, images[:, :, ::-1], tta=False)
    plain = classify.predict_probabilities(model, images, tta=False)
    np.testing.assert_allclose(scores, (plain + flipped) / 2, atol=1e-5)  # flip TTA

    # The saved model.keras (loaded by predict, with info.json) gives the same numbers.
    loaded_csv = root / "loaded.csv"
    classify.predict(str(root / "run" / "model.keras"), str(root / "test"), str(loaded_csv),
                     probabilities=True)
    loaded = np.array([[float(v) for v in r[1:]] for r in list(csv.reader(loaded_csv.open()))[1:]])
    np.testing.assert_allclose(loaded, scores, atol=1e-5)

    labels_csv = root / "labels.csv"
    classify.write_submission(model, root / "test", labels_csv, CLASSES, 16)
    rows = list(csv.reader(labels_csv.open()))
    assert rows[0] == ["id", "label"] and [r[0] for r in rows[1:]] == ["t0", "t1", "t2"]
    assert [r[1] for r in rows[1:]] == [CLASSES[k] for k in np.argmax(scores, -1)]


def test_cli_evaluate_scores_the_run_on_its_validation_split(run, capsys):
    from keras_drn.cli import app as cli

    root, _, report = run
    model = str(root / "run" / "model.keras")
    assert cli.main(["evaluate", model, "--data", str(root / "train"), "--flip",
                     "--consistency", "--max-shift", "4"]) == 0
    out = capsys.readouterr().out
    assert report.table in out  # the same 3 validation images, the same flip TTA scores
    assert "val top-1 shift consistency" in out and "(3 images, random shifts up to 4" in out
    with refused(capsys, "classes"):
        cli.main(["evaluate", model, "--data", "synthetic"])  # disk/line/square


def test_class_activation_map_png(run, tmp_path):
    root, model, _ = run
    output = tmp_path / "cam.png"
    class_id, probability, box = classify.save_class_activation_map(
        model, root / "test" / "t0.png", output, CLASSES, image_size=16, scale=2)
    assert 0 <= class_id < 3 and 0 <= probability <= 1
    assert box is None or all(0 <= v <= 16 for v in box)
    assert Image.open(output).size == (2 * 32, 2 * 16)  # image | map, 2x
    cam = classify.activation_map_model(model)
    assert cam.output_shape == [(None, 3), (None, None, None, 3)]


def test_bad_test_folders_raise_naming_the_problem(run, tmp_path):
    _, model, _ = run
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="test folder .*empty.* holds no image files"):
        classify.write_submission(model, tmp_path / "empty", tmp_path / "s.csv", CLASSES, 16)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="x.png"):
        classify.write_submission(model, tmp_path / "bad", tmp_path / "s.csv", CLASSES, 16)
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(ValueError, match="Unknown data"):
        classify.load_data("no/such/thing")


def test_report_and_confusion_png(tmp_path):
    confusion = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 0]])
    report = classify.ClassificationReport(confusion, ("a", "b", "c"))
    assert report.accuracy == pytest.approx(5 / 7)
    np.testing.assert_allclose(report.precision, [3 / 4, 2 / 3, np.nan])
    np.testing.assert_allclose(report.recall, [3 / 4, 1.0, 0.0])
    assert "accuracy" in report.table and "71.43" in report.table
    path = classify.save_confusion_matrix(confusion, ("a", "b", "c"), tmp_path / "cm.png")
    picture = np.asarray(Image.open(path))
    assert picture.shape[0] > 3 * 48 and picture.shape[1] > 3 * 48


def test_mixed_precision_classifier_keeps_float32_probabilities():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = classify.build_classifier(2, "drn_d_22")
    assert model.get_layer("fc").compute_dtype == "bfloat16"
    assert keras.backend.standardize_dtype(model.output.dtype) == "float32"
    with pytest.raises(ValueError, match="num_classes"):
        classify.build_classifier(1)
    with pytest.raises(ValueError, match="Unknown backbone"):
        classify.build_classifier(3, "resnet50")


def test_a_complete_run_says_so_and_another_run_is_refused(run, tmp_path, capsys):
    from keras_drn.workflows import runs

    root, _, _ = run
    out = root / "run"
    before = (out / "model.keras").stat().st_mtime_ns
    classify.train(**_arguments(root))
    done = len(_log(root))
    assert f"is a complete run ({done} epochs): nothing to train" in capsys.readouterr().out
    assert (out / "model.keras").stat().st_mtime_ns == before
    with pytest.raises(runs.RunError, match="image_size: 16 -> 24.*--overwrite"):
        classify.train(**dict(_arguments(root), image_size=24))


@pytest.mark.slow  # two fine-tuning runs
def test_an_interrupted_second_phase_resumes_in_that_phase(run, tmp_path, monkeypatch, capsys):
    from keras_drn.workflows import runs

    root, _, _ = run
    out = tmp_path / "run"
    real = runs.RunCheckpoint.on_epoch_end

    def interrupted(self, epoch, logs=None):
        real(self, epoch, logs)
        if epoch == 1:
            raise RuntimeError("interrupted")

    monkeypatch.setattr(runs.RunCheckpoint, "on_epoch_end", interrupted)
    arguments = dict(data=str(root / "train"), output_dir=str(out), image_size=16,
                     head_epochs=1, epochs=2, batch_size=4, val_fraction=0.25, patience=5,
                     verbose=0)
    with pytest.raises(RuntimeError, match="interrupted"):
        classify.train(**arguments)
    assert runs.read_state(out / "state")["phase"] == 2
    monkeypatch.setattr(runs.RunCheckpoint, "on_epoch_end", real)
    capsys.readouterr()
    model, _ = classify.train(**arguments)
    printed = capsys.readouterr().out
    assert "phase 1:" not in printed and "phase 2 resumed after epoch 2" in printed
    with open(out / "log.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    # The final model is the best epoch of both phases (best.keras), as log.csv says.
    best = keras.saving.load_model(out / "best.keras")
    for ours, theirs in zip(model.weights, best.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      keras.ops.convert_to_numpy(theirs))


def test_segment_evaluate_refuses_a_classification_run(run):
    from keras_drn.workflows import segmentation as segment

    root, _, _ = run
    with pytest.raises(ValueError, match="is a classification run: score it with "
                                         "keras_drn.workflows.classification.evaluate"):
        segment.evaluate(str(root / "run" / "model.keras"), str(root / "train"))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_auto_sets_the_policy_of_this_machine(run, monkeypatch, policy):
    """train(mixed_precision="auto") sets the policy keras_drn.workflows.precision.auto_policy picks
    (its rules: tests/test_precision.py; here on the fixture's complete run: nothing is
    trained)."""
    from keras_drn.workflows import precision

    root, _, _ = run
    monkeypatch.setattr(precision, "auto_policy", lambda: policy)
    assert keras.config.dtype_policy().name == "float32"
    classify.train(**dict(_arguments(root), mixed_precision="auto"))
    assert keras.config.dtype_policy().name == policy


def _assert_backbone_holds(model, expected):
    """Every weight of the model's "backbone" equals the file's value under its path."""
    loaded = {w.path: keras.ops.convert_to_numpy(w) for w in model.get_layer("backbone").weights}
    assert set(loaded) == set(expected)
    for name, value in loaded.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_build_classifier_loads_the_backbone_weights_file(tmp_path):
    """Every backbone weight of build_classifier(weights=file) holds the file's values (the
    classifier's own fc aside): moving statistics included, set away from their init here."""
    path, expected = backbone_weights_file(tmp_path)
    model = classify.build_classifier(3, "drn_d_22", weights=str(path))
    _assert_backbone_holds(model, expected)


def test_train_starts_from_the_backbone_weights_file(run, tmp_path):
    """train(backbone_weights=file) builds on the file: after a head-only epoch (the backbone
    frozen, its BatchNormalization in inference mode) the run's backbone still holds the
    file's values, moving statistics included."""
    root, _, _ = run
    path, expected = backbone_weights_file(tmp_path)
    model, _ = classify.train(**dict(_arguments(root), output_dir=str(tmp_path / "run"),
                                     backbone_weights=str(path), epochs=0))
    _assert_backbone_holds(model, expected)


def _tiny_classifier_run(folder):
    """A classification run folder by hand: a 2-class model of the mean colour."""
    from keras_drn.workflows import runs

    inputs = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Rescaling(1 / 255)(
        pooled))
    folder.mkdir(parents=True)
    keras.Model(inputs, outputs).save(folder / runs.MODEL)
    (folder / runs.INFO).write_text(json.dumps({
        "task": "classification", "format": runs.FORMAT, "num_classes": 2,
        "class_names": ["blue", "red"], "image_size": 8}))
    return folder / runs.MODEL


def test_predict_replaces_only_a_submission_keras_drn_wrote(tmp_path, recwarn, capsys):
    from keras_drn.cli import app as cli

    model = _tiny_classifier_run(tmp_path / "run")
    for name in ("=cmd", "t1"):
        _write_scene(tmp_path / "test" / f"{name}.png", COLOURS["red"], 0, size=8)
    train_csv = tmp_path / "train.csv"
    train_csv.write_text("id,label\nx,red\n")
    command = ["predict", str(model), str(tmp_path / "test"), "--submission"]
    with refused(capsys, f"{train_csv} exists and was not written by "
                       "keras_drn.*another --submission, or pass --overwrite"):
        cli.main(command + [str(train_csv)])
    assert train_csv.read_text() == "id,label\nx,red\n"
    with refused(capsys, "is one of the test images"):
        cli.main(command + [str(tmp_path / "test" / "t1.png"), "--overwrite"])
    with pytest.warns(UserWarning, match=r"1 id\(s\) start like a spreadsheet formula "
                      r"\('=cmd'\)\. They are written exactly as they are"):
        assert cli.main(command + [str(train_csv), "--overwrite"]) == 0
    with open(train_csv, newline="") as stream:
        assert [row[0] for row in csv.reader(stream)] == ["id", "=cmd", "t1"]
    assert cli.main(command + [str(train_csv)]) == 0  # now its own: replaced
