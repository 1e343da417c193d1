"""The data specs (``keras_drn.data.registry``): one registry per task, its help importable
without Keras or TensorFlow, and a clear message for each wrong spec."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")


def _pairs(folder, stems, size=(6, 8), classes=3):
    """``folder/images/<stem>.png`` and ``folder/masks/<stem>.png``, mask values < classes."""
    for i, stem in enumerate(stems):
        for kind in ("images", "masks"):
            (folder / kind).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
            folder / "images" / f"{stem}.png")
        Image.fromarray(rng.integers(0, classes, size, dtype=np.uint8)).save(
            folder / "masks" / f"{stem}.png")
    return folder


def _ids(data):
    return list(data.examples["id"])


def test_help_and_forms_need_neither_keras_nor_tensorflow():
    code = ("import sys; sys.argv[0] = 'keras-drn'\n"
            "sys.modules['tensorflow'] = sys.modules['keras'] = None\n"
            "from keras_drn.data.registry import CLASSIFICATION_SOURCES, SEGMENTATION_SOURCES\n"
            "print(SEGMENTATION_SOURCES.help())\n"
            "print(CLASSIFICATION_SOURCES.forms())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert result.returncode == 0, result.stderr
    assert "rle-c:FOLDER" in result.stdout and "images/ + masks/" in result.stdout
    assert "'FILE.csv'" in result.stdout


def test_the_workflows_read_the_registry():
    from keras_drn.data import registry
    from keras_drn.workflows import classification, segmentation

    assert segmentation.DATA_HELP == registry.SEGMENTATION_SOURCES.help()
    assert classification.DATA_HELP == registry.CLASSIFICATION_SOURCES.help()
    assert segmentation.RLE_SPECS == {"rle:": "F", "rle-c:": "C"}


def test_an_unknown_spec_lists_the_forms_briefly(tmp_path):
    from keras_drn.data import registry
    from keras_drn.workflows import segmentation

    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError) as error:
        segmentation.load_data(str(missing), "train")
    message = str(error.value)
    assert f"the path '{missing}' does not exist" in message
    assert "synthetic, tfds:NAME, rle:FOLDER, rle-c:FOLDER, FOLDER" in message
    assert len(message) < 150 + 2 * len(str(missing))  # not the paragraph of every layout
    with pytest.raises(ValueError, match="The folder 'no/such' does not exist"):
        segmentation.load_data("rle:no/such", "train")
    with pytest.raises(ValueError, match="Unknown data ''"):
        registry.load_segmentation("")


def test_a_folder_with_train_only_offers_val_fraction_and_folds(tmp_path):
    from keras_drn.workflows import segmentation

    _pairs(tmp_path / "train", "abcde")
    assert _ids(segmentation.load_data(str(tmp_path), "train", num_classes=3)) == list("abcde")
    with pytest.raises(ValueError, match="has train/ but no val/ folder: give val_fraction=0.2 "
                                         ".* or folds=5"):
        segmentation.load_data(str(tmp_path), "val", num_classes=3)


def test_val_fraction_splits_a_folder_by_seed(tmp_path):
    from keras_drn.workflows import segmentation

    _pairs(tmp_path / "train", "abcdefghij")
    parts = {split: _ids(segmentation.load_data(str(tmp_path), split, num_classes=3, seed=1,
                                                val_fraction=0.3)) for split in ("train", "val")}
    assert len(parts["val"]) == 3 and len(parts["train"]) == 7
    assert sorted(parts["train"] + parts["val"]) == list("abcdefghij")
    again = segmentation.load_data(str(tmp_path), "val", num_classes=3, seed=1,
                                   val_fraction=0.3)
    assert _ids(again) == parts["val"]  # reproducible
    other = segmentation.load_data(str(tmp_path), "val", num_classes=3, seed=2,
                                   val_fraction=0.3)
    assert _ids(other) != parts["val"]
    (_, mask), *_ = again.dataset.as_numpy_iterator()
    assert mask.shape == (6, 8)
    _pairs(tmp_path / "val", "v")
    with pytest.raises(ValueError, match="has its own val/ split: leave val_fraction= unset"):
        segmentation.load_data(str(tmp_path), "val", num_classes=3, val_fraction=0.3)
    with pytest.raises(ValueError, match="val_fraction= does not apply to synthetic data"):
        segmentation.load_data("synthetic", "val", val_fraction=0.3)


def test_a_flat_images_and_masks_folder_is_read(tmp_path):
    from keras_drn.workflows import segmentation

    _pairs(tmp_path, "abcd")
    assert _ids(segmentation.load_data(str(tmp_path), "train", num_classes=3)) == list("abcd")
    with pytest.raises(ValueError, match="holds images/ and masks/ without splits .* give "
                                         "val_fraction=0.2"):
        segmentation.load_data(str(tmp_path), "val", num_classes=3)
    val = segmentation.load_data(str(tmp_path), "val", num_classes=3, val_fraction=0.25)
    assert val.size == 1
    with pytest.raises(ValueError, match="give the number of classes, num_classes="):
        segmentation.load_data(str(tmp_path), "train")


def test_a_folder_in_no_layout_names_the_layouts_and_its_contents(tmp_path):
    from keras_drn.workflows import segmentation

    _pairs(tmp_path / "pictures", "a")
    with pytest.raises(ValueError, match=r"none of the layouts .*FOLDER/images/ and "
                                         r"FOLDER/masks/.*; it holds pictures/"):
        segmentation.load_data(str(tmp_path / "pictures" / ".."), "train", num_classes=3)
    with pytest.raises(ValueError, match="is a file; segmentation data is a folder"):
        segmentation.load_data(str(tmp_path / "pictures" / "images" / "a.png"), "train")


def test_size_resizes_folder_data(tmp_path):
    from keras_drn.data import registry
    from keras_drn.workflows import segmentation

    _pairs(tmp_path / "train", "ab", size=(6, 8))
    native = registry.load_segmentation(str(tmp_path), "train", num_classes=3)
    assert native.image_size == (6, 8)  # checked files of one size
    data = segmentation.load_data(str(tmp_path), "train", num_classes=3, size=4, resize=True)
    assert data.image_size == (4, 4)
    (image, mask), _ = data.dataset.as_numpy_iterator()
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8 and mask.shape == (4, 4)
    (_, native_mask), _ = native.dataset.as_numpy_iterator()
    assert set(np.unique(mask)) <= set(np.unique(native_mask))  # nearest: no new class ids
    assert segmentation.load_data(str(tmp_path), "train", num_classes=3).image_size == (6, 8)


def test_folder_data_trains_with_random_scaling_and_no_crop_size(tmp_path):
    from keras_drn.data import registry
    from keras_drn.data import segmentation_pipeline

    _pairs(tmp_path / "train", "abcd", size=(12, 10))
    data = registry.load_segmentation(str(tmp_path), "train", num_classes=3)
    batches = segmentation_pipeline(data, 2, training=True, scale=2.0, rotate=0)
    images, masks = next(iter(batches))
    assert images.shape == (2, 12, 10, 3) and masks.shape == (2, 12, 10)


def test_classification_specs(tmp_path):
    from keras_drn.workflows import classification

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(np.full((5, 5, 3), i, np.uint8)).save(tmp_path / label / f"{i}.png")
    train, val = classification.load_data(str(tmp_path), 0.5, seed=3)
    assert (train.size, val.size, train.class_names) == (3, 3, ("cat", "dog"))
    with pytest.raises(ValueError, match="the path .*nowhere' does not exist.*FILE.csv"):
        classification.load_data(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="is a file; classification data is a folder"):
        classification.load_data(str(tmp_path / "cat" / "0.png"))


def test_adding_a_source_is_one_entry(tmp_path, monkeypatch):
    from keras_drn.data import registry
    sources = registry.Registry("segmentation", registry.SEGMENTATION_SOURCES.sources)
    sources.register(registry.DataSource(
        "scenes:N", "N synthetic scenes", "keras_drn.data.sources:synthetic_scenes",
        prefix="scenes:"))
    assert sources.forms()[-2:] == ["scenes:N", "FOLDER"]  # before the paths
    assert "scenes:N: N synthetic scenes" in sources.help()
    assert sources.resolve("scenes:3").target("scenes:3") == "3"
    with pytest.raises(ValueError, match="registered already"):
        sources.register(registry.SEGMENTATION_SOURCES.sources[0])
    assert "scenes:N" not in registry.SEGMENTATION_SOURCES.forms()
