import csv

import keras
import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from keras_drn.data import classification  # noqa: E402


def _write_image(path, size=(20, 24), mode="RGB", value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = np.full((size[0], size[1], channels), value, "uint8").squeeze()
    Image.fromarray(array, mode=mode).save(path)


@pytest.fixture
def class_folders(tmp_path):
    """3 classes of 2 images each; sizes and modes differ; class k has pixel value 40 * k."""
    root = tmp_path / "train"
    for k, name in enumerate(["cat", "dog", "fox"]):
        _write_image(root / name / "a.png", (20, 24), "RGB", 40 * k)
        _write_image(root / name / ("b.jpg" if k == 1 else "b.png"), (30, 18),
                     "L" if k == 1 else ("RGBA" if k == 2 else "RGB"), 40 * k)
    return root


def _examples(data):
    return [(image.numpy(), int(label)) for image, label in data.dataset]


def test_image_folder_reads_classes_in_sorted_order(class_folders):
    data = classification.image_folder(class_folders)
    assert data.class_names == ("cat", "dog", "fox") and data.num_classes == 3
    assert data.size == 6 and data.skipped == ()
    examples = _examples(data)
    assert sorted(label for _, label in examples) == [0, 0, 1, 1, 2, 2]
    for image, label in examples:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        assert abs(int(image[0, 0, 0]) - 40 * label) <= 2  # jpeg rounding


def test_corrupt_image_is_named_and_skipped_or_raises(class_folders):
    bad = class_folders / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.warns(UserWarning, match="broken.png"):
        data = classification.image_folder(class_folders)
    assert data.size == 6 and data.skipped == (str(bad),)
    with pytest.raises(ValueError, match="broken.png"):
        classification.image_folder(class_folders, on_error="raise")


def test_empty_class_folder_and_missing_folder_are_named(class_folders, tmp_path):
    (class_folders / "emu").mkdir()
    with pytest.raises(ValueError, match="'emu'.*holds no image files"):
        classification.image_folder(class_folders)
    with pytest.raises(ValueError, match="nowhere"):
        classification.image_folder(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="no class subfolders"):
        classification.image_folder(tmp_path / "flat")


def _write_csv(path, rows):
    with open(path, "w", newline="") as stream:
        csv.writer(stream).writerows([["file", "species"], *rows])


def test_csv_labels(class_folders, tmp_path):
    table = tmp_path / "labels.csv"
    _write_csv(table, [["cat/a", "cat"], ["dog/a", "dog"], ["fox/a", "fox"], ["cat/b", "cat"]])
    data = classification.csv_labels(table, class_folders, extension=".png")
    assert data.class_names == ("cat", "dog", "fox") and data.size == 4
    assert [label for _, label in _examples(data)] == [0, 1, 2, 0]
    fixed = classification.csv_labels(table, class_folders, class_names=["fox", "dog", "cat"],
                                      extension=".png")
    assert [label for _, label in _examples(fixed)] == [2, 1, 0, 2]


def test_csv_unknown_label_and_missing_file_are_named(class_folders, tmp_path):
    table = tmp_path / "labels.csv"
    _write_csv(table, [["cat/a.png", "cat"], ["dog/a.png", "wolf"]])
    with pytest.raises(ValueError, match=r"'wolf' \(line 3\)"):
        classification.csv_labels(table, class_folders, class_names=["cat", "dog"])
    _write_csv(table, [["cat/a.png", "cat"], ["cat/zzz.png", "cat"]])
    with pytest.raises(ValueError, match="zzz.png"):
        classification.csv_labels(table, class_folders)
    with pytest.raises(ValueError, match="no column 'label'"):
        classification.csv_labels(table, class_folders, label_column="label")


def test_tfds_classification_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5):
        data = classification.tfds_classification("mnist", "train")
        assert data.class_names == tuple(str(i) for i in range(10))
        assert data.size == 5
        image, label = next(iter(data.dataset))
        assert image.shape == (28, 28, 3) and image.dtype == tf.uint8  # grayscale -> RGB
        assert 0 <= int(label) < 10
    with pytest.raises(ValueError, match="expected an image 'picture'"):
        with tfds.testing.mock_data(num_examples=2):
            classification.tfds_classification("mnist", "train", image_key="picture")


def test_synthetic_classification_labels_the_object():
    data = classification.synthetic_classification("val", count=6, size=16)
    assert data.class_names == ("disk", "line", "square") and data.size == 6
    examples = _examples(data)
    assert all(image.shape == (16, 16, 3) and 0 <= label < 3 for image, label in examples)
    other = classification.synthetic_classification("train", count=6, size=16)
    assert not np.array_equal(examples[0][0], _examples(other)[0][0])  # disjoint seeds


def test_train_val_split_is_seeded_and_disjoint():
    data = classification.synthetic_classification("val", count=10, size=16)
    train, val = classification.train_val_split(data, 0.3, seed=1)
    assert (train.size, val.size) == (7, 3)
    train_images = [image.tobytes() for image, _ in _examples(train)]
    val_images = [image.tobytes() for image, _ in _examples(val)]
    assert len(train_images) == 7 and len(val_images) == 3
    assert not set(train_images) & set(val_images)
    again = classification.train_val_split(data, 0.3, seed=1)[1]
    assert [image.tobytes() for image, _ in _examples(again)] == val_images
    other = classification.train_val_split(data, 0.3, seed=2)[1]
    assert [image.tobytes() for image, _ in _examples(other)] != val_images
    with pytest.raises(ValueError, match="val_fraction"):
        classification.train_val_split(data, 1.5)


def test_pipeline_shapes_and_ranges(class_folders):
    data = classification.image_folder(class_folders)
    train = classification.classification_pipeline(data, 4, training=True, image_size=12)
    batches = list(train)
    assert len(batches) == 1  # 6 examples, the partial batch is dropped
    images, labels = batches[0]
    assert images.shape == (4, 12, 12, 3) and images.dtype == tf.float32
    assert labels.shape == (4,) and labels.dtype == tf.int32
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255
    val = classification.classification_pipeline(data, 4, training=False, image_size=(10, 14))
    shapes = [tuple(images.shape) for images, _ in val]
    assert shapes == [(4, 10, 14, 3), (2, 10, 14, 3)]
    with pytest.raises(ValueError, match="fewer than batch_size"):
        classification.classification_pipeline(data, 8, training=True)
    with pytest.raises(TypeError, match="ClassificationData"):
        classification.classification_pipeline([1, 2], 2, training=False)


def test_evaluation_images_are_centre_cropped_and_resized_as_pil_does(tmp_path):
    """Non-square noise images smaller than image_size: the evaluation pipeline's output is
    PIL's centre crop to the target's aspect ratio, resized bilinearly (upsampling, where
    PIL's bilinear is the half-pixel one without antialiasing), on the 0-255 scale. A second
    /255, an off-centre crop or a resize without the crop fails."""
    rng = np.random.default_rng(7)
    shapes = {"tall": (14, 6), "wide": (9, 15)}
    originals = {}
    for name, shape in shapes.items():
        originals[name] = rng.integers(0, 256, (*shape, 3), dtype="uint8")
        (tmp_path / name).mkdir()
        Image.fromarray(originals[name]).save(tmp_path / name / "0.png")
    data = classification.image_folder(tmp_path)
    val = classification.classification_pipeline(data, 2, training=False, image_size=(12, 10))
    (images, labels), = list(val)
    assert images.shape == (2, 12, 10, 3)
    for image, label in zip(images.numpy(), labels.numpy()):
        name = data.class_names[label]
        picture = Image.fromarray(originals[name])
        height, width = shapes[name]
        crop_w, crop_h = min(width, height * 10 // 12), min(height, width * 12 // 10)
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        expected = np.asarray(picture.crop((left, top, left + crop_w, top + crop_h))
                              .resize((10, 12), Image.BILINEAR), "float32")
        assert np.abs(image - expected).max() <= 1.0, name  # PIL rounds to uint8
        assert np.abs(image - expected).mean() < 0.6, name


# RandAugment inside tf.data builds in ~2 s on TensorFlow and PyTorch, ~30 s on JAX (measured
# 2026-12-02): slow there only.
@pytest.mark.slow if keras.backend.backend() == "jax" else (lambda test: test)
def test_rand_augment_changes_the_training_images_and_keeps_them_0_255(tmp_path):
    """rand_augment=True adds RandAugment to the same seeded crops: the same examples in the
    same order, other pixels, still on the 0-255 scale."""
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        for i in range(4):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype="uint8")).save(
                tmp_path / name / f"{i}.png")
    data = classification.image_folder(tmp_path)

    def batch(rand_augment):
        pipeline = classification.classification_pipeline(
            data, 8, training=True, image_size=12, flip=False, color_jitter=False,
            rand_augment=rand_augment, seed=5)
        (images, labels), = list(pipeline)
        return images.numpy(), labels.numpy()

    plain, plain_labels = batch(False)
    augmented, labels = batch(True)
    np.testing.assert_array_equal(labels, plain_labels)
    assert augmented.shape == plain.shape == (8, 12, 12, 3) and augmented.dtype == np.float32
    assert 0 <= augmented.min() and augmented.max() <= 255
    # Still the 0-255 scale, not clipped to 0-1 (RandAugment told value_range=(0, 1)): each
    # image of uniform noise keeps bright pixels.
    assert augmented.reshape(8, -1).max(axis=1).min() > 128
    changed = [np.abs(a - p).mean() > 1 for a, p in zip(augmented, plain)]
    assert np.mean(changed) >= 0.5
