"""K-fold splits, out-of-fold files, the threshold search and the fold ensemble
(``keras_drn.workflows.folds``, ``segment.train(folds=, fold=)``, ``keras-drn ensemble|threshold``)."""

import csv
import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_drn.cli import app as cli
from tests.cli.helpers import refused
from keras_drn.workflows import folds
from keras_drn.workflows import runs
from keras_drn.workflows import segmentation as segment

tf = pytest.importorskip("tensorflow")


def _source(count=12, empty=(), groups=None, size=8):
    """In-memory SegmentationData: image i is filled with the value i, mask i has an object
    pixel unless i is in ``empty``."""
    from keras_drn.data import SegmentationData

    images = np.stack([np.full((size, size, 3), i, np.uint8) for i in range(count)])
    masks = np.zeros((count, size, size), np.uint8)
    for i in range(count):
        if i not in empty:
            masks[i, 1, 1] = 1
    masks[:, 0, 0] = 255  # ignored pixels never make a mask non-empty
    examples = {"id": tuple(f"im{i}" for i in range(count))}
    if groups is not None:
        examples["patient"] = tuple(groups)
    return SegmentationData(tf.data.Dataset.from_tensor_slices((images, masks)), 1, ("obj",),
                            (0.5,) * 3, (0.2,) * 3, count, "toy", examples=examples)


def _ids(data):
    return [f"im{int(image[0, 0, 0])}" for image, _ in data.dataset.as_numpy_iterator()]


def test_folds_are_disjoint_cover_the_data_and_yield_their_own_examples():
    data = _source(11)
    held = []
    for fold in range(3):
        train, val = folds.split(data, 3, fold, seed=4)
        assert _ids(train) == list(train.examples["id"]) and train.size == len(_ids(train))
        assert _ids(val) == list(val.examples["id"]) and val.size == len(_ids(val))
        assert set(_ids(train)).isdisjoint(_ids(val))
        assert sorted(_ids(train) + _ids(val)) == sorted(data.examples["id"])
        held.append(set(_ids(val)))
    assert sorted(len(h) for h in held) == [3, 4, 4]
    assert set().union(*held) == set(data.examples["id"]) and sum(map(len, held)) == 11
    assert folds.split(data, 3, 0, seed=4)[1].examples == folds.split(data, 3, 0, seed=4)[
        1].examples  # seeded
    assert len({folds.split(data, 3, 0, seed=s)[1].examples["id"] for s in range(6)}) > 1


def test_stratified_folds_share_the_empty_masks_evenly():
    empty = (0, 1, 2, 3, 5, 8)  # 6 empty, 6 not
    data = _source(12, empty=empty)
    # _source's examples have no "empty": it is read from the masks (255 is no object)
    assert folds.empty_masks(data) == tuple(i in empty for i in range(12))
    for seed in range(5):
        counts = []
        for fold in range(3):
            val = folds.split(data, 3, fold, seed=seed, stratify="empty")[1]
            counts.append(sum(int(i[2:]) in empty for i in val.examples["id"]))
        assert counts == [2, 2, 2], (seed, counts)
    unstratified = [[sum(int(i[2:]) in empty for i in folds.split(data, 3, f, seed=s)[1]
                         .examples["id"]) for f in range(3)] for s in range(5)]
    assert any(c != [2, 2, 2] for c in unstratified)  # the test can see an unbalanced split


def test_grouped_folds_never_split_a_group():
    groups = ["a", "a", "a", "b", "b", "c", "d", "d", "e", "f", "f", "f"]
    data = _source(12, groups=groups)
    for seed in range(5):
        seen = {}
        for fold in range(3):
            for image_id in folds.split(data, 3, fold, seed=seed, group_by="patient")[1].examples[
                    "id"]:
                seen.setdefault(groups[int(image_id[2:])], set()).add(fold)
        assert all(len(f) == 1 for f in seen.values()) and len(seen) == 6
    with pytest.raises(ValueError, match="no column 'site'.*'id', 'patient'"):
        folds.split(data, 3, 0, group_by="site")
    with pytest.raises(ValueError, match="2 groups cannot make 3 folds"):
        folds.assign_folds(4, 3, groups=["x", "x", "y", "y"])


def test_bad_fold_arguments_are_named():
    with pytest.raises(ValueError, match="fold must be an int in \\[0, 3\\).*received 3"):
        folds.check_folds(3, 3)
    with pytest.raises(ValueError, match="folds must be an int >= 2"):
        folds.check_folds(1, 0)
    with pytest.raises(ValueError, match="stratify must be None or one of"):
        folds.check_folds(2, 0, stratify="area")
    with pytest.raises(ValueError, match="fold, group_by given without folds"):
        folds.check_folds(None, 1, group_by="patient")


def test_threshold_search_finds_the_known_best_and_scores_empty_as_kaggle():
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :2] = 1
    probability = np.where(truth == 1, 0.35, 0.1).astype(np.float32)
    probability[3, 3] = 0.25  # a false positive between 0.1 and 0.35
    empty_mask = np.zeros((4, 4), np.uint8)
    quiet = np.full((4, 4), 0.2, np.float32)  # empty predicted empty above 0.2: Dice 1
    search = folds.search_threshold([probability, quiet], [truth, empty_mask])
    # 0.25 <= t < 0.35 gives both images Dice 1; ties go to the threshold nearest 0.5.
    assert search.threshold == 0.3 and search.dice == 1.0 and search.min_size == 0
    assert search.dice_at_half == 0.5  # at 0.5 the object is missed, the empty image right
    np.testing.assert_allclose(folds.image_dice([probability], [truth], 0.2), [8 / 9])
    speck = np.where(truth == 1, 0.9, 0.0).astype(np.float32)
    speck[3, 3] = 0.9
    sized = folds.search_threshold([speck], [truth], thresholds=(0.5,), min_sizes=(0, 2))
    assert (sized.min_size, sized.dice) == (2, 1.0)
    ignored = truth.copy()
    ignored[3, 3] = 255  # the false positive is on an ignored pixel
    assert folds.image_dice([speck], [ignored], 0.5)[0] == 1.0


def _write_fold(tmp_path, fold, ids, probabilities, masks, count=2):
    run = tmp_path / "cv" / f"fold-{fold}"
    run.mkdir(parents=True)
    folds.write_oof(run / folds.OOF, ids, probabilities, masks, count, fold)
    return run


def test_oof_round_trip_and_tune_checks_the_folds(tmp_path):
    a = np.array([[0.9, 0.2], [0.6, 0.1]], np.float32)
    b = np.zeros((3, 2), np.float32)
    mask_a = np.array([[1, 0], [1, 0]], np.uint8)
    run0 = _write_fold(tmp_path, 0, ["x", "y"], [a, b], [mask_a, np.zeros((3, 2), np.uint8)])
    stored = folds.read_oof(run0 / folds.OOF)
    assert stored["ids"] == ("x", "y") and (stored["folds"], stored["fold"]) == (2, 0)
    assert stored["probabilities"][0].dtype == np.float16 and stored["masks"][1].shape == (3, 2)
    np.testing.assert_allclose(stored["probabilities"][0], a, atol=1e-3)
    run1 = _write_fold(tmp_path, 1, ["z"], [a], [mask_a])
    search = folds.tune([run0, run1])
    record = json.loads((tmp_path / "cv" / folds.THRESHOLD).read_text())
    assert record["threshold"] == search.threshold and record["folds_used"] == [0, 1]
    assert record["images"] == 3 and 0 <= record["dice"] <= 1
    clash = _write_fold(tmp_path / "other", 1, ["x"], [a], [mask_a])
    with pytest.raises(ValueError, match="Held-out ids appear in two folds \\(\\['x'\\]\\)"):
        folds.tune([run0, clash], tmp_path / "t.json")
    with pytest.raises(ValueError, match="fold\\(s\\) \\[0\\] twice"):
        folds.tune([run0, run0], tmp_path / "t.json")
    with pytest.raises(FileNotFoundError, match="rerun the fold's command"):
        folds.read_oof(tmp_path / "missing.npz")


def _tiny_run(folder, logit):
    """A run folder whose model's logit is ``logit`` + (red - 128) / 64 at every pixel."""
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(
        [[[[1 / 64], [0.0], [0.0]]]]), bias_initializer=keras.initializers.Constant(
        logit - 2.0))(inputs)
    model = keras.Model(inputs, outputs)
    folder.mkdir(parents=True)
    model.save(folder / runs.MODEL)
    info = {"task": "segmentation", "format": runs.FORMAT, "num_classes": 1,
            "class_names": ["object"], "status": "complete"}
    (folder / runs.INFO).write_text(json.dumps(info))
    return model


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_ensemble_is_the_mean_of_the_members_probabilities_with_flips(tmp_path):
    image = np.zeros((4, 6, 3), np.float32)
    image[:, :3, 0] = 255.0  # left half red: the flip changes each pixel's view
    members = [_tiny_run(tmp_path / "cv" / f"fold-{i}", logit) for i, logit in
               enumerate((-1.0, 1.5))]
    expected = np.mean([np.mean([_sigmoid(m.predict(image[None], verbose=0)[0, ..., 0]),
                                 _sigmoid(m.predict(image[None, :, ::-1], verbose=0)
                                          [0, :, ::-1, 0])], axis=0) for m in members], axis=0)
    np.testing.assert_allclose(folds.ensemble_probabilities(members, image), expected,
                               rtol=1e-5)
    assert not np.allclose(expected, _sigmoid(members[0].predict(image[None], verbose=0))
                           [0, ..., 0])  # the members differ

    images = tmp_path / "test"
    images.mkdir()
    Image.fromarray(image.astype(np.uint8)).save(images / "t1.png")
    (tmp_path / "cv" / folds.THRESHOLD).write_text(json.dumps({"threshold": 0.6,
                                                               "min_size": 0}))
    submission = tmp_path / "submission.csv"
    assert cli.main(["ensemble", str(tmp_path / "cv"), "--images", str(images),
                     "--output-dir", str(tmp_path / "out"), "--submission",
                     str(submission)]) == 0
    written = np.asarray(Image.open(tmp_path / "out" / "t1_mask.png"))
    np.testing.assert_array_equal(written, (expected > 0.6).astype(np.uint8))
    assert 0 < written.sum() < written.size  # the tuned threshold decides some pixels
    from keras_drn.workflows.submission import rle_decode

    with open(submission, newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["ImageId", "EncodedPixels"] and rows[1][0] == "t1"
    np.testing.assert_array_equal(rle_decode(rows[1][1], written.shape), written)
    assert cli.main(["ensemble", str(tmp_path / "cv" / "fold-0"), str(tmp_path / "cv" /
                     "fold-1" / "model.keras"), "--images", str(images / "t1.png"),
                     "--output-dir", str(tmp_path / "half"), "--threshold", "0.5"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "half" / "t1_mask.png")),
                                  (expected > 0.5).astype(np.uint8))


@pytest.mark.slow  # one training run (about a minute on 2 CPU cores)
def test_train_a_fold_writes_its_out_of_fold_probabilities(tmp_path, capsys):
    """keras-drn train --folds 2 --fold 1 on a Kaggle CSV folder: the held-out ids in
    oof.npz, the fold in info.json, another fold into the same folder refused, and a rerun
    of the complete run rewrites a missing oof.npz."""
    from keras_drn.data import make_scenes
    from keras_drn.workflows.submission import rle_encode

    images, masks, _ = make_scenes(8, size=24, seed=2)
    (tmp_path / "data" / "images").mkdir(parents=True)
    with open(tmp_path / "data" / "train.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["ImageId", "EncodedPixels", "patient"])
        for i in range(8):
            Image.fromarray((255 * images[i]).astype(np.uint8)).save(
                tmp_path / "data" / "images" / f"s{i}.png")
            writer.writerow([f"s{i}", rle_encode(masks[i] == 1), f"p{i // 2}"])
    run = tmp_path / "run"
    arguments = ["train", "--data", f"rle:{tmp_path / 'data'}", "--folds", "2", "--fold", "1",
                 "--group-by", "patient", "--stratify", "empty", "--output-dir", str(run),
                 "--epochs", "1", "--batch-size", "2", "--crop-size", "24", "--optimizer",
                 "adamw", "--lr", "1e-4", "--one-line-per-epoch"]
    assert cli.main(arguments) == 0
    assert "Dice (object)" in capsys.readouterr().out
    info = json.loads((run / runs.INFO).read_text())
    assert (info["folds"], info["fold"], info["stratify"], info["group_by"]) == (
        2, 1, "empty", "patient")
    train, val = folds.split(segment.load_data(f"rle:{tmp_path / 'data'}", "train"), 2, 1,
                             seed=0, stratify="empty", group_by="patient")
    stored = folds.read_oof(run / folds.OOF)
    assert stored["ids"] == val.examples["id"] and (stored["folds"], stored["fold"]) == (2, 1)
    assert set(stored["ids"]).isdisjoint(train.examples["id"]) and len(stored["ids"]) == 4
    assert set(val.examples["patient"]).isdisjoint(train.examples["patient"])
    model = runs.load_model(run / runs.MODEL)
    first = Image.open(tmp_path / "data" / "images" / f"{stored['ids'][0]}.png")
    expected = folds.ensemble_probabilities([model], np.asarray(first, np.float32))
    np.testing.assert_allclose(stored["probabilities"][0], expected, atol=2e-3)
    np.testing.assert_array_equal(stored["masks"][0],
                                  masks[int(stored["ids"][0][1:])] == 1)
    report = segment.evaluate(run / runs.MODEL, f"rle:{tmp_path / 'data'}")  # fold 1's
    assert report.confusion.sum() == 4 * 24 * 24
    with refused(capsys, "fold: 1 -> 0"):
        cli.main(arguments[:6] + ["0"] + arguments[7:])
    (run / folds.OOF).unlink()
    assert cli.main(arguments) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert folds.read_oof(run / folds.OOF)["ids"] == stored["ids"]


def _two_folds(tmp_path):
    """``cv/fold-0`` and ``cv/fold-1`` of a 2-fold split, each with its oof.npz and a model."""
    a = np.array([[0.9, 0.2], [0.6, 0.1]], np.float32)
    mask = np.array([[1, 0], [1, 0]], np.uint8)
    for fold, ids in ((0, ["x", "y"]), (1, ["z"])):
        run = _write_fold(tmp_path, fold, ids, [a] * len(ids), [mask] * len(ids))
        (run / runs.INFO).write_text(json.dumps({"task": "segmentation",
                                                 "format": runs.FORMAT, "num_classes": 1}))
    return tmp_path / "cv"


def test_threshold_of_one_fold_does_not_replace_the_folds_threshold(tmp_path, capsys):
    cv = _two_folds(tmp_path)
    assert cli.main(["threshold", str(cv)]) == 0
    record = (cv / folds.THRESHOLD).read_text()
    assert json.loads(record)["folds_used"] == [0, 1]
    with refused(capsys, r"fold\(s\) \[0\] of 2 \(missing \[1\]\).*"
                       r"threshold.json.*--output FILE"):
        cli.main(["threshold", str(cv / "fold-0")])
    assert (cv / folds.THRESHOLD).read_text() == record  # the k-fold search is kept
    alone = tmp_path / "fold-0-threshold.json"
    assert cli.main(["threshold", str(cv / "fold-0"), "--output", str(alone)]) == 0
    assert json.loads(alone.read_text())["folds_used"] == [0]


def test_threshold_json_not_written_by_keras_drn_is_kept_unless_overwrite(tmp_path, capsys):
    cv = _two_folds(tmp_path)
    mine = json.dumps({"threshold": 0.3, "min_size": 0, "note": "tuned by hand"})
    (cv / folds.THRESHOLD).write_text(mine)
    with refused(capsys, "threshold.json exists and was not written by "
                       "keras_drn.*--output, or pass --overwrite"):
        cli.main(["threshold", str(cv)])
    assert (cv / folds.THRESHOLD).read_text() == mine
    assert cli.main(["threshold", str(cv), "--overwrite"]) == 0
    assert json.loads((cv / folds.THRESHOLD).read_text())["folds_used"] == [0, 1]
    assert cli.main(["threshold", str(cv), "--min-sizes", "0,1"]) == 0  # its own: replaced
    assert json.loads((cv / folds.THRESHOLD).read_text())["scores"][-1][1] == 1
    foreign = tmp_path / "elsewhere" / folds.OOF
    foreign.parent.mkdir()
    np.savez(foreign, ids=["mine"])
    with pytest.raises(FileExistsError, match="oof.npz exists and was not written"):
        folds.write_oof(foreign, ["x"], [np.zeros((2, 2))], [np.zeros((2, 2), np.uint8)], 2, 0)
    assert np.load(foreign)["ids"].tolist() == ["mine"]


@pytest.mark.parametrize("damage, message", [
    ("nan", r"probabilities of 'y' are not finite"),
    ("range", r"probabilities of 'y' are outside \[0, 1\] \(0 to 1.5\)"),
    ("truncated", r"is damaged \(truncated, corrupt"),
    ("garbage", r"is damaged \(truncated, corrupt"),
    ("no-ids", r"is damaged .*KeyError"),
])
def test_a_bad_oof_file_is_named_with_how_to_rewrite_it(tmp_path, damage, message, capsys):
    cv = _two_folds(tmp_path)
    path = cv / "fold-0" / folds.OOF
    probability = np.array([[0.2, 0.5], [0.0, 1.5 if damage == "range" else np.nan]])
    if damage in ("nan", "range"):
        folds.write_oof(path, ["x", "y"], [np.zeros((2, 2)), probability],
                        [np.zeros((2, 2), np.uint8)] * 2, 2, 0)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip archive")
    else:
        np.savez(path, folds=2, fold=0)
    expected = f"{path}: .*{message}" if damage in ("nan", "range") else f"{path} {message}"
    with refused(capsys, expected + ".*delete it and rerun the fold's "
                       "keras-drn train --folds K --fold I"):
        cli.main(["threshold", str(cv)])
    assert not (cv / folds.THRESHOLD).exists()


def test_thresholds_out_of_range_are_named_as_thresholds(tmp_path, capsys):
    cv = _two_folds(tmp_path)
    for given in ("0,1.5", "0.5,1", "nan"):
        with pytest.raises(SystemExit):
            cli.main(["threshold", str(cv), "--thresholds", given])
        err = capsys.readouterr().err
        assert f"argument --thresholds: thresholds are object probabilities strictly " \
               f"between 0 and 1, got '{given}'" in err and "scales" not in err


def test_a_damaged_threshold_json_is_named_before_the_ensemble_uses_it(tmp_path, capsys):
    _tiny_run(tmp_path / "cv" / "fold-0", 0.0)
    images = tmp_path / "test"
    images.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images / "t.png")
    (tmp_path / "cv" / folds.THRESHOLD).write_text('{"threshold": NaN, "min_size": 0}')
    with refused(capsys, f"{tmp_path / 'cv' / folds.THRESHOLD} is not a "
                       "threshold file.*outside \\(0, 1\\).*run keras-drn threshold again"):
        cli.main(["ensemble", str(tmp_path / "cv"), "--images", str(images),
                  "--output-dir", str(tmp_path / "out")])


def test_submission_and_masks_replace_only_files_keras_drn_wrote(tmp_path, capsys):
    """predict and ensemble refuse, before predicting, to write --submission over a file
    keras_drn did not write (a Kaggle train.csv), or masks over such files; --overwrite
    replaces them; their own outputs are replaced on a rerun; an input image is never the
    submission."""
    _tiny_run(tmp_path / "cv" / "fold-0", 0.0)
    images = tmp_path / "test"
    images.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(images / f"{name}.png")
    train_csv = tmp_path / "train.csv"
    train_csv.write_text("ImageId,EncodedPixels\nim0,1 3\nim1,\n")
    model = str(tmp_path / "cv" / "fold-0" / runs.MODEL)
    out = tmp_path / "out"
    commands = {"predict": ["predict", model, str(images), "--output-dir", str(out)],
                "ensemble": ["ensemble", str(tmp_path / "cv"), "--images", str(images),
                             "--output-dir", str(out)]}
    for command in commands.values():
        with refused(capsys, f"{train_csv} exists and was not written by "
                           "keras_drn.*another --submission, or pass --overwrite"):
            cli.main(command + ["--submission", str(train_csv)])
        assert train_csv.read_text() == "ImageId,EncodedPixels\nim0,1 3\nim1,\n"
        assert not out.exists() or not list(out.glob("*.png"))  # refused before predicting
        with refused(capsys, "is one of the images to predict"):
            cli.main(command + ["--submission", str(images / "a.png"), "--overwrite"])
    assert cli.main(commands["predict"] + ["--submission", str(tmp_path / "s.csv")]) == 0
    assert cli.main(commands["ensemble"] + ["--submission", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "ImageId,EncodedPixels"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(out / "b_overlay.png")  # not its own
    with refused(capsys, "b_overlay.png exists and was not written.*"
                       "another --output-dir"):
        cli.main(commands["predict"])
    assert cli.main(commands["predict"] + ["--overwrite"]) == 0
    assert cli.main(commands["predict"] + ["--submission", str(train_csv), "--overwrite"]) == 0
    assert train_csv.read_text().splitlines()[1].startswith("a,")  # replaced, as asked
