"""The run record (``keras_drn.workflows.record``): info.json written and read back, old
folders' info.json read, the identity keys."""

import dataclasses

import pytest

from keras_drn.workflows import record, runs
from keras_drn.workflows.record import ClassificationRun, SegmentationRun


def test_to_json_and_back_and_what_info_json_holds():
    run = record.SegmentationRun(data="rle:train", class_names=("sky", "car"), num_classes=2,
                                 min_sizes=(0, 8), mean=(0.5, 0.5, 0.5), std=(0.2,) * 3,
                                 overwrite=True, output_dir="x", tensorboard=True)
    info = run.to_json()
    assert info["task"] == "segmentation" and info["class_names"] == ["sky", "car"]
    assert info["mean"] == [0.5] * 3 and info["tensorboard"] is True
    # What says where and how to run, not what the run is, stays out of info.json.
    assert not {"output_dir", "overwrite", "verbose", "min_sizes", "coordinator",
                "mixed_precision"} & set(info)
    back = record.SegmentationRun.from_json(dict(info, status="complete", versions={}))
    assert back == dataclasses.replace(run, overwrite=False, output_dir="runs/drn",
                                       min_sizes=(0,))


def test_an_old_info_json_reads_with_the_defaults_of_what_it_lacks():
    old = {"format": 2, "task": "segmentation", "data": "synthetic", "num_classes": 4,
           "class_names": None, "size": None, "crop_size": None, "seed": 0,
           "backbone": "drn_d_22", "head": "drn", "context": None, "anti_alias": None,
           "upsampling": "deconv", "backbone_weights": None, "mean": [0.5] * 3,
           "std": [0.25] * 3, "epochs_done": 3, "status": "complete"}
    run = record.SegmentationRun.from_json(old)
    assert run.num_classes == 4 and run.tensorboard is False and run.folds is None
    classify = record.ClassificationRun.from_json({"task": "classification", "image_size": 16,
                                                   "class_names": ["a", "b"]})
    assert classify.image_size == 16 and classify.class_names == ("a", "b")


def test_identity_is_marked_once_in_the_fields():
    # The keys that decided "the same run" before the record: old folders still resume.
    assert set(runs.IDENTITY["segmentation"]) == {
        "task", "data", "num_classes", "class_names", "size", "crop_size", "seed", "backbone",
        "head", "context", "anti_alias", "upsampling", "backbone_weights", "mean", "std",
        "folds", "fold", "stratify", "group_by",
        "val_fraction"}  # new: a folder's held-out share (absent from old folders: None)
    assert set(runs.IDENTITY["classification"]) == {
        "task", "data", "image_dir", "num_classes", "class_names", "image_size", "seed",
        "val_fraction", "backbone", "backbone_weights", "dropout"}
    assert runs.differences({"task": "segmentation", "epochs": 1, "head": "drn"},
                            {"task": "segmentation", "epochs": 2, "head": "gcn"},
                            "segmentation") == ["head: 'drn' -> 'gcn'"]


def test_facts_are_not_options():
    with pytest.raises(TypeError, match="unexpected keyword argument 'mean'"):
        record.SegmentationRun.from_kwargs("train", mean=(0.5,) * 3)
    assert "mean" not in {f.name for f in record.SegmentationRun.options()}


@pytest.mark.parametrize("run", [SegmentationRun, ClassificationRun])
def test_every_flag_without_a_default_says_how_to_parse_its_text(run):
    """A flag whose default is None has no default to infer its type from (argparse would
    call NoneType on the text: ``--coordinator 127.0.0.1:1234`` was refused so)."""
    untyped = [field.name for field in dataclasses.fields(run)
               if not field.metadata["fact"] and field.metadata["flag"] is not None
               and field.default is None and field.metadata["type"] is None]
    assert untyped == []
