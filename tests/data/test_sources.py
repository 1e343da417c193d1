"""Segmentation sources: the reference folder format, image/mask folders, TFDS datasets and the
synthetic scenes; every bad input named in its error."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_drn.data import (
    CITYSCAPES_MEAN,
    CITYSCAPES_STD,
    CLASS_NAMES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegmentationData,
    image_mask_folders,
    make_scenes,
    reference_folder,
    synthetic_scenes,
    tfds_dataset,
)

READ_ERRORS = (ValueError, tf.errors.InvalidArgumentError)


def _image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _mask(height, width, num_classes=4, seed=0):
    mask = np.random.default_rng(seed).integers(0, num_classes, (height, width), dtype=np.uint8)
    mask[0, :3] = 255  # the ignore label is always allowed
    return mask


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def _read_all(data):
    return [(image.numpy(), mask.numpy()) for image, mask in data.dataset]


def _reference_dir(root, pairs, info=None, split="train"):
    """Writes a fyu/drn-style folder: images/, labels/, {split}_*.txt, info.json."""
    images, labels = [], []
    for i, (image, mask) in enumerate(pairs):
        _save(root / "images" / f"{i}.png", image)
        _save(root / "labels" / f"{i}.png", mask)
        images.append(f"images/{i}.png")
        labels.append(f"labels/{i}.png")
    (root / f"{split}_images.txt").write_text("\n".join(images) + "\n")
    (root / f"{split}_labels.txt").write_text("\n".join(labels) + "\n")
    info = {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]} if info is None else info
    (root / "info.json").write_text(json.dumps(info))
    return root


def test_reference_folder_reads_images_masks_and_info(tmp_path):
    pairs = [(_image(20, 30, i), _mask(20, 30, seed=i)) for i in range(3)]
    info = {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6], "class_names": list("abcd")}
    data = reference_folder(_reference_dir(tmp_path, pairs, info))
    assert data.num_classes == 4 and data.class_names == ("a", "b", "c", "d")
    assert data.mean == (0.1, 0.2, 0.3) and data.std == (0.4, 0.5, 0.6)
    assert data.size == 3 and data.name == f"{tmp_path.name}/train"
    assert data.dataset.element_spec[0].dtype == tf.uint8
    for (image, mask), (expected_image, expected_mask) in zip(_read_all(data), pairs):
        assert image.dtype == np.uint8 and mask.dtype == np.uint8
        np.testing.assert_array_equal(image, expected_image)
        np.testing.assert_array_equal(mask, expected_mask)


def test_reference_folder_number_of_classes(tmp_path):
    folder = _reference_dir(tmp_path, [(_image(8, 8), _mask(8, 8))])
    with pytest.raises(ValueError, match="pass num_classes="):
        reference_folder(folder)
    data = reference_folder(folder, num_classes=5)
    assert data.num_classes == 5 and data.class_names == tuple(f"class_{i}" for i in range(5))
    info = {"mean": [0.1] * 3, "std": [0.2] * 3, "num_classes": 4, "class_names": list("abc")}
    (folder / "info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="Conflicting numbers of classes.*4.*3"):
        reference_folder(folder)


def test_reference_folder_bad_lists(tmp_path):
    folder = _reference_dir(tmp_path, [(_image(8, 8), _mask(8, 8))], split="val")
    with pytest.raises(FileNotFoundError, match="train_images.txt"):
        reference_folder(folder, "train", num_classes=4)
    (folder / "val_labels.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="val_labels.txt.*is empty"):
        reference_folder(folder, "val", num_classes=4)
    (folder / "val_labels.txt").write_text("labels/0.png\nlabels/1.png\n")
    with pytest.raises(ValueError, match="lists 1 images but .*val_labels.txt.* lists 2"):
        reference_folder(folder, "val", num_classes=4)
    (folder / "val_labels.txt").write_text("labels/missing.png\n")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        reference_folder(folder, "val", num_classes=4)
    (folder / "info.json").unlink()
    with pytest.raises(FileNotFoundError, match="info.json"):
        reference_folder(folder, "val", num_classes=4)


def test_label_out_of_range_names_file_and_value(tmp_path):
    mask = _mask(10, 12)
    mask[5, 5] = 7
    folder = _reference_dir(tmp_path, [(_image(10, 12), _mask(10, 12)), (_image(10, 12), mask)])
    data = reference_folder(folder, num_classes=4)
    with pytest.raises(READ_ERRORS, match=r"labels/1\.png.*label value 7.*\[0, 4\) or 255"):
        _read_all(data)


def test_size_mismatch_names_both_sizes(tmp_path):
    folder = _reference_dir(tmp_path, [(_image(20, 30), _mask(20, 31))])
    data = reference_folder(folder, num_classes=4)
    message = r"images/0\.png.* is 20x30 .*labels/0\.png.* is 20x31"
    with pytest.raises(READ_ERRORS, match=message):
        _read_all(data)


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    gray = _image(6, 7)[..., 0]
    rgba = np.concatenate([_image(6, 7, 1), np.full((6, 7, 1), 9, np.uint8)], -1)
    _save(tmp_path / "img" / "gray.png", gray)
    _save(tmp_path / "img" / "rgba.png", rgba, "RGBA")
    for stem in ("gray", "rgba"):
        _save(tmp_path / "mask" / f"{stem}.png", _mask(6, 7))
    data = image_mask_folders(tmp_path / "img", tmp_path / "mask", num_classes=4)
    (gray_out, _), (rgba_out, _) = _read_all(data)
    np.testing.assert_array_equal(gray_out, np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(rgba_out, rgba[..., :3])  # alpha dropped, not composited


def test_palette_masks_give_indices_and_colour_masks_are_refused(tmp_path):
    indices = _mask(6, 7)
    palette_mask = Image.fromarray(indices, "L").convert("P")
    palette_mask.putpalette([(i * 37) % 256 for i in range(768)])
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    _save(tmp_path / "img" / "a.png", _image(6, 7))
    palette_mask.save(tmp_path / "mask" / "a.png")
    (_, mask), = _read_all(image_mask_folders(tmp_path / "img", tmp_path / "mask", 4))
    np.testing.assert_array_equal(mask, indices)
    _save(tmp_path / "mask" / "a.png", _image(6, 7))
    with pytest.raises(READ_ERRORS, match=r"a\.png.*mode 'RGB'"):
        _read_all(image_mask_folders(tmp_path / "img", tmp_path / "mask", 4))


def test_image_mask_folders_pair_by_stem(tmp_path):
    smooth = np.linspace(0, 255, 8 * 9 * 3).reshape(8, 9, 3).astype(np.uint8)
    images = {"b": smooth, "a": _image(8, 9, 2), "c": _image(8, 9, 3)}
    masks = {stem: _mask(8, 9, seed=i) for i, stem in enumerate(images)}
    _save(tmp_path / "img" / "b.JPG", images["b"])
    _save(tmp_path / "img" / "a.png", images["a"])
    _save(tmp_path / "img" / "c.bmp", images["c"])
    (tmp_path / "img" / "notes.txt").write_text("not an image")
    for stem, mask in masks.items():
        _save(tmp_path / "mask" / f"{stem}.png", mask)
    data = image_mask_folders(tmp_path / "img", tmp_path / "mask", num_classes=4,
                              class_names=list("wxyz"))
    assert data.size == 3 and data.class_names == tuple("wxyz")
    assert data.mean == IMAGENET_MEAN and data.std == IMAGENET_STD
    read = _read_all(data)
    for (image, mask), stem in zip(read, "abc"):  # ordered by stem
        np.testing.assert_array_equal(mask, masks[stem])
        if stem != "b":  # JPEG is lossy
            np.testing.assert_array_equal(image, images[stem])
    assert np.abs(read[1][0].astype(int) - images["b"]).mean() < 8


def test_image_mask_folders_errors(tmp_path):
    _save(tmp_path / "img" / "a.png", _image(8, 8))
    _save(tmp_path / "img" / "lonely.png", _image(8, 8))
    _save(tmp_path / "mask" / "a.png", _mask(8, 8))
    _save(tmp_path / "mask" / "orphan.png", _mask(8, 8))
    with pytest.raises(ValueError, match="lonely.png.*orphan.png"):
        image_mask_folders(tmp_path / "img", tmp_path / "mask", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.* holds no"):
        image_mask_folders(tmp_path / "empty", tmp_path / "mask", 4)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        image_mask_folders(tmp_path / "img", tmp_path / "nowhere", 4)
    _save(tmp_path / "img" / "a.bmp", _image(8, 8))
    with pytest.raises(ValueError, match="share the stem 'a'"):
        image_mask_folders(tmp_path / "img", tmp_path / "mask", 4)


def test_binary_mask_convention_is_the_datasets_not_each_masks(tmp_path):
    """0/1 masks with 255 = ignore: a mask without object pixels ({0, 255}) or all ignore
    keeps its 255 as ignore; a 0/255 dataset's 255 is the object."""
    ignore_only = np.full((4, 5), 255, np.uint8)
    no_object = np.zeros((4, 5), np.uint8)
    no_object[0] = 255
    with_object = no_object.copy()
    with_object[2, 1:3] = 1
    for stem, mask in {"a": with_object, "b": no_object, "c": ignore_only}.items():
        _save(tmp_path / "img" / f"{stem}.png", _image(4, 5))
        _save(tmp_path / "mask" / f"{stem}.png", mask)
    masks = [m for _, m in _read_all(image_mask_folders(tmp_path / "img", tmp_path / "mask", 1))]
    for read, written in zip(masks, (with_object, no_object, ignore_only)):
        np.testing.assert_array_equal(read, written)  # 255 stays ignore everywhere
    root = _reference_dir(tmp_path / "ref", [(_image(4, 5), no_object)])  # only 0 and 255
    np.testing.assert_array_equal(_read_all(reference_folder(root, num_classes=1))[0][1],
                                  no_object // 255)  # a 0/255 dataset: 255 is the object
    declared = reference_folder(root, num_classes=1, mask_values="0/1")
    np.testing.assert_array_equal(_read_all(declared)[0][1], no_object)
    wrong = image_mask_folders(tmp_path / "img", tmp_path / "mask", 1, mask_values="0/255")
    with pytest.raises(READ_ERRORS, match=r"a\.png' holds label value 1, but this data's "
                                          r"binary masks are 0/255.*mask_values='0/1'"):
        _read_all(wrong)
    with pytest.raises(ValueError, match="mask_values is for binary masks"):
        image_mask_folders(tmp_path / "img", tmp_path / "mask", 3, mask_values="0/1")


def test_numpy_parts_work_without_tensorflow():
    """keras_drn, make_scenes, scene_split and read_image need no TensorFlow; the tf.data parts
    say how to get it."""
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import keras_drn\n"
        "from keras_drn.data import CLASS_NAMES, IMAGENET_MEAN, make_scenes, read_image\n"
        "from keras_drn.data import scene_split\n"
        "assert make_scenes(1, size=16)[1].shape == (1, 16, 16)\n"
        "assert scene_split(1, 1, size=16)[0].shape == (1, 16, 16, 3)\n"
        "try:\n"
        "    from keras_drn.data import segmentation_pipeline\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="numpy")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "needs TensorFlow" in result.stdout and "keras-drn[data]" in result.stdout


def test_segmentation_data_checks_its_fields():
    dataset = tf.data.Dataset.range(1)
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        SegmentationData(dataset, 3, ("a", "b"), (0.5,) * 3, (0.2,) * 3, 1, "x")
    with pytest.raises(ValueError, match="std=.*0.0"):
        SegmentationData(dataset, 2, ("a", "b"), (0.5,) * 3, (0.2, 0.0, 0.2), 1, "x")
    with pytest.raises(ValueError, match="num_classes must be an int in \\[1, 255\\]"):
        SegmentationData(dataset, 256, tuple("a" * 256), (0.5,) * 3, (0.2,) * 3, 1, "x")


def test_synthetic_scenes_splits():
    train = synthetic_scenes("train", count=6, size=32, seed=1)
    val = synthetic_scenes("val", count=4, size=32, seed=1)
    assert train.size == 6 and val.size == 4 and train.class_names == CLASS_NAMES
    assert train.num_classes == 4 and train.name == "synthetic/train"
    # Same normalisation for both splits: the default training split's statistics.
    assert train.mean == val.mean and train.std == val.std
    images = np.round(make_scenes(512, size=32, seed=_train_seed(1))[0] * 255.0) / 255.0
    images = images.astype(np.float64)
    np.testing.assert_allclose(train.mean, images.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(train.std, images.std(axis=(0, 1, 2)), rtol=1e-6)
    train_images = np.stack([image for image, _ in _read_all(train)])
    val_images = np.stack([image for image, _ in _read_all(val)])
    assert train_images.shape == (6, 32, 32, 3) and train_images.dtype == np.uint8
    assert not any((train_images == v).all(axis=(1, 2, 3)).any() for v in val_images)
    again = np.stack([image for image, _ in _read_all(synthetic_scenes("train", 6, 32, 1))])
    np.testing.assert_array_equal(train_images, again)
    assert synthetic_scenes("val").size == 128
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        synthetic_scenes("test")


def _train_seed(seed):
    return int(np.random.SeedSequence((seed, 0)).generate_state(1)[0])


# TensorFlow Datasets, mocked: examples in the datasets' real encodings, no download.


def _mock(examples):
    tfds = pytest.importorskip("tensorflow_datasets")

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensor_slices(
            {k: tf.constant(np.stack([e[k] for e in examples])) for k in examples[0]}
        )

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


def _pet_example(name, trimap):
    height, width = trimap.shape
    return {"image": _image(height, width), "segmentation_mask": trimap[..., None],
            "file_name": name}


def test_oxford_pet_trimap_becomes_background_pet_border():
    trimap = np.random.default_rng(0).integers(1, 4, (12, 10)).astype(np.uint8)
    with _mock([_pet_example("Abyssinian_1.jpg", trimap)] * 2):
        data = tfds_dataset("oxford_iiit_pet", "train")
    assert data.num_classes == 3 and data.class_names == ("background", "pet", "border")
    assert data.mean == IMAGENET_MEAN and data.name == "oxford_iiit_pet/train"
    assert data.size == 2
    (image, mask), _ = _read_all(data)
    assert image.shape == (12, 10, 3) and image.dtype == np.uint8
    assert mask.shape == (12, 10) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, np.array([255, 1, 0, 2], np.uint8)[trimap])


def test_oxford_pet_bad_examples_are_named():
    trimap = np.ones((6, 5), np.uint8)
    trimap[2, 2] = 0
    with _mock([_pet_example("Bombay_7.jpg", trimap)]):
        data = tfds_dataset("oxford_iiit_pet", "test")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Bombay_7\.jpg.*label value.*0"):
        _read_all(data)
    example = _pet_example("Pug_3.jpg", np.ones((6, 5), np.uint8))
    example["image"] = _image(6, 4)
    with _mock([example]):
        data = tfds_dataset("oxford_iiit_pet", "test")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Pug_3\.jpg.*\[6 4\].*\[6 5\]"):
        _read_all(data)


def test_random_mock_data_is_caught_as_inconsistent():
    """TFDS's default mock draws image and mask shapes independently: not a valid example."""
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=2):
        data = tfds_dataset("oxford_iiit_pet", "train[:10%]")
    assert data.size == 2
    with pytest.raises(tf.errors.InvalidArgumentError, match="has height x width"):
        _read_all(data)


def test_cityscapes_label_ids_become_train_ids():
    ids = np.arange(34, dtype=np.uint8).reshape(2, 17)
    example = {"image_left": _image(2, 17), "segmentation_label": ids[..., None],
               "image_id": "aachen_000000_000019"}
    with _mock([example]):
        data = tfds_dataset("cityscapes", "validation")
    assert data.num_classes == 19 and data.class_names[0] == "road"
    assert data.mean == CITYSCAPES_MEAN and data.std == CITYSCAPES_STD
    (_, mask), = _read_all(data)
    expected = np.full(34, 255, np.uint8)
    for label_id, train_id in zip([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                                   31, 32, 33], range(19)):
        expected[label_id] = train_id
    np.testing.assert_array_equal(mask.reshape(-1), expected)
    example["segmentation_label"][0, 0, 0] = 40
    with _mock([example]):
        data = tfds_dataset("cityscapes", "validation")
    with pytest.raises(tf.errors.InvalidArgumentError, match="aachen_000000_000019.*40"):
        _read_all(data)


def test_unknown_tfds_name_lists_the_supported_ones():
    with pytest.raises(ValueError, match="'voc'.*'cityscapes', 'oxford_iiit_pet'"):
        tfds_dataset("voc", "train")



def test_resized_images_bilinear_and_masks_nearest(tmp_path):
    from keras_drn.data import resized

    image = np.zeros((4, 6, 3), np.uint8)
    image[:, 3:] = 200
    mask = np.zeros((4, 6), np.uint8)
    mask[:, 3:] = 2
    mask[0, 0] = 255
    _save(tmp_path / "img" / "a.png", image)
    _save(tmp_path / "mask" / "a.png", mask)
    data = resized(image_mask_folders(tmp_path / "img", tmp_path / "mask", 3), (8, 12))
    assert data.image_size == (8, 12)
    (read_image, read_mask), = _read_all(data)
    assert read_image.dtype == np.uint8 and read_image.shape == (8, 12, 3)
    assert 0 < read_image[0, 5, 0] < 200  # bilinear: a blend at the edge
    assert set(np.unique(read_mask)) == {0, 2, 255}  # nearest: the ids as they were
    np.testing.assert_array_equal(read_mask[:, ::2][:, 3:], 2)
    with pytest.raises(ValueError, match="size must be a positive int or \\(height, width\\); "
                                         "received size=0"):
        image_mask_folders(tmp_path / "img", tmp_path / "mask", 3, size=0)


def test_holdout_is_seeded_and_refuses_empty_parts():
    from keras_drn.data import holdout

    held = holdout(10, 0.3, seed=4)
    assert held.sum() == 3
    np.testing.assert_array_equal(holdout(10, 0.3, seed=4), held)
    assert not np.array_equal(holdout(10, 0.3, seed=5), held)
    with pytest.raises(ValueError, match="val_fraction=0.01 of the 10 examples .* empty"):
        holdout(10, 0.01)
    with pytest.raises(ValueError, match="val_fraction must be in \\(0, 1\\); received "
                                         "val_fraction=1"):
        holdout(10, 1)


def test_reference_folder_val_fraction_and_check(tmp_path):
    pairs = [(_image(5, 6, i), _mask(5, 6, seed=i)) for i in range(5)]
    folder = _reference_dir(tmp_path, pairs, {"mean": [0.1] * 3, "std": [0.2] * 3,
                                              "num_classes": 4})
    with pytest.raises(FileNotFoundError, match="has a train split but no val split .* give "
                                                "val_fraction=0.2 .* or folds=5"):
        reference_folder(folder, "val")
    val = reference_folder(folder, "val", val_fraction=0.4, seed=1, check=True)
    train = reference_folder(folder, "train", val_fraction=0.4, seed=1, check=True)
    assert (val.size, train.size) == (2, 3) and val.image_size == (5, 6)
    assert sorted(val.examples["id"] + train.examples["id"]) == [f"images/{i}" for i in range(5)]
    bad = _mask(5, 6)
    bad[1, 1] = 9
    _save(folder / "labels" / "3.png", bad)
    (folder / "images" / "4.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match=r"2 bad file\(s\) .*labels/3\.png' \(holds label "
                                         r"value\(s\) \[9\].*images/4\.png' \(cannot read"):
        reference_folder(folder, "train", check=True)
    reference_folder(folder, "train")  # unchecked: found when read, as before


def test_image_size_is_known_where_the_examples_share_one(tmp_path):
    assert synthetic_scenes("val", count=2, size=24).image_size == (24, 24)
    for stem, (height, width) in {"a": (4, 5), "b": (4, 6)}.items():
        _save(tmp_path / "img" / f"{stem}.png", _image(height, width))
        _save(tmp_path / "mask" / f"{stem}.png", _mask(height, width))
    assert image_mask_folders(tmp_path / "img", tmp_path / "mask", 4, check=True).image_size is None
    assert image_mask_folders(tmp_path / "img", tmp_path / "mask", 4).image_size is None


pytestmark = pytest.mark.backend_independent  # no Keras op: CI runs it on TensorFlow only
