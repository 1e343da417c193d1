"""keras-drn train: the flags of the run record, and what a run does with them."""

import pytest

from keras_drn.cli import app as cli
from tests.cli.helpers import refused


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
    # Scored on the run's own data (info.json), not the synthetic scenes' disk/line/square.
    assert cli.main(["evaluate", str(run / "model.keras")]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_every_record_field_is_a_flag_whose_default_is_the_records():
    import dataclasses

    from keras_drn.cli import train
    from keras_drn.workflows.record import RECORDS

    parser = cli.build_parser(["train"])
    command = parser._subparsers._group_actions[0].choices["train"]
    options = {o for action in command._actions for o in action.option_strings}
    for task, record in RECORDS.items():
        without_flag = {f.name for f in record.options() if f.metadata["flag"] is None}
        assert without_flag == {"verbose"}  # the command sets it from the terminal
        for field in record.options():
            if field.name != "verbose":
                assert train.flag_of(field) in options, (task, field.name)
        parsed = train.record_of(parser.parse_args(["train", "--task", task]))
        assert dataclasses.replace(parsed, verbose=record.verbose) == record()
    for action in command._actions:  # a default the parser shows is the record's own
        owners = train.flags().get(action.option_strings[0] if action.option_strings else "")
        for _, field in owners or ():
            if action.default is not None and not isinstance(field.default, bool):
                assert action.default == field.default, action.option_strings


def test_flags_reach_the_record(tmp_path):
    from keras_drn.cli import train
    from keras_drn.workflows import record

    names = tmp_path / "names.txt"
    names.write_text("sky\nroad\n\ncar\n")
    parser = cli.build_parser(["train"])
    parsed = train.record_of(parser.parse_args([
        "train", "--class-names-file", str(names), "--lr", "0.5", "--no-flip", "--context",
        "parsenet", "--fold", "all", "--folds", "3", "--tensorboard", "--size", "40"]))
    assert parsed == record.SegmentationRun(
        class_names=("sky", "road", "car"), learning_rate=0.5, flip=False, context="parsenet",
        fold="all", folds=3, tensorboard=True, size=40, verbose=parsed.verbose)
    classify = train.record_of(parser.parse_args(["train", "--task", "classification",
                                                  "--size", "40", "--no-color-jitter"]))
    assert classify == record.ClassificationRun(image_size=40, color_jitter=False,
                                                verbose=classify.verbose)
    with pytest.raises(ValueError, match="--head is a segmentation option"):
        train.record_of(parser.parse_args(["train", "--task", "classification", "--head",
                                           "gcn"]))


def test_train_keeps_its_keyword_api_and_refuses_unknown_keywords():
    import inspect

    from keras_drn.workflows import classification, segmentation

    with pytest.raises(TypeError, match="unexpected keyword argument 'lr'.*learning_rate"):
        segmentation.train(lr=0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'head'"):
        classification.train(head="drn")
    parameters = inspect.signature(segmentation.train).parameters
    assert parameters["learning_rate"].default == 0.01 and parameters["head"].default == "drn"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """4 train and 2 val scenes of 24x24 in the reference's folder format (4 classes)."""
    import json

    import numpy as np
    from PIL import Image

    from keras_drn.data import make_scenes

    root = tmp_path_factory.mktemp("scenes")
    images, masks, _ = make_scenes(6, size=24, seed=3)
    for split, indices in (("train", range(4)), ("val", range(4, 6))):
        for i in indices:
            Image.fromarray((255 * images[i]).astype("uint8")).save(root / f"{i}.png")
            Image.fromarray(masks[i]).save(root / f"{i}_label.png")
        (root / f"{split}_images.txt").write_text("".join(f"{i}.png\n" for i in indices))
        (root / f"{split}_labels.txt").write_text("".join(f"{i}_label.png\n" for i in indices))
    (root / "info.json").write_text(json.dumps({"mean": [0.5] * 3, "std": [0.25] * 3,
                                             "num_classes": 4}))
    return root


def _with_a_smaller_scene(scenes, tmp_path):
    """A copy of ``scenes`` whose first training scene is 20x20: its sizes differ, so random
    scaling has no one size to crop to."""
    import shutil

    from PIL import Image

    copy = tmp_path / "mixed"
    shutil.copytree(scenes, copy)
    for name, resample in (("0.png", Image.BILINEAR), ("0_label.png", Image.NEAREST)):
        with Image.open(copy / name) as image:
            image.resize((20, 20), resample).save(copy / name)
    return copy


def test_a_run_with_tensorboard_and_class_names_then_evaluate_without_data(
        scenes, tmp_path, capsys):
    """A crop-size problem (scenes of two sizes) is one line naming the flags, and the run it
    stopped leaves no claim on its folder (a run of other data takes it); the corrected run writes TensorBoard events and records its class
    names, which evaluate shows, scoring the run's own data when --data is not given."""
    pytest.importorskip("tensorflow")  # the data pipeline
    pytest.importorskip("tensorboard")
    import json

    run = tmp_path / "run"
    arguments = ["train", "--data", str(scenes), "--output-dir", str(run), "--epochs", "1",
                 "--batch-size", "2", "--optimizer", "adamw", "--one-line-per-epoch"]
    with refused(capsys, "^keras-drn train: error: .*--class-names gives 3 names but "
                 "--num-classes 4"):
        cli.main(arguments + ["--class-names", "a,b,c", "--num-classes", "4"])
    with refused(capsys, "--class-names gives 3 names but .* has 4 classes"):
        cli.main(arguments + ["--class-names", "a,b,c"])
    with refused(capsys, r"^keras-drn train: error: Random scaling \(--random-scale 2.0\) "
                 r".*give --crop-size to batch them \(--batch-size 2\), --size to resize "
                 r"the data to one size, or --batch-size 1\.$"):
        cli.main(arguments + ["--data", str(_with_a_smaller_scene(scenes, tmp_path))])
    assert json.loads((run / "info.json").read_text())["status"] == "training"
    names = ["ground", "disk", "line", "square"]
    assert cli.main(arguments + ["--tensorboard", "--class-names",
                                 ",".join(names)]) == 0  # no --overwrite, no --crop-size needed
    assert "stopped before its first epoch finished" in capsys.readouterr().out
    info = json.loads((run / "info.json").read_text())
    assert info["class_names"] == names and info["tensorboard"] is True
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert cli.main(["evaluate", str(run / "model.keras")]) == 0
    table = capsys.readouterr().out
    assert all(f"\n{name} " in table for name in names) and "mIoU" in table


def test_train_command_takes_a_policy():
    parser = cli.build_parser()
    assert parser.parse_args(["train"]).mixed_precision == "auto"
    args = parser.parse_args(["train", "--mixed-precision", "mixed_bfloat16"])
    assert args.mixed_precision == "mixed_bfloat16"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--mixed-precision", "bf16"])
