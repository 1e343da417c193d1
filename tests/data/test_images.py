"""read_image, the one image reader: 16-bit files scaled (not clipped) and the same through
every decode path, truncated files caught by a full decode, modes to RGB, errors naming the
file; the data sources read through it and share keras_drn.constants' extensions."""

import io
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_drn import constants
from keras_drn.data import (
    classification_pipeline,
    image_folder,
    image_mask_folders,
    read_image,
)
from keras_drn.data import classification, files, sources


def _gradient16(height=24, width=40):
    """A 16-bit ramp over the whole range (a typical 16-bit picture: almost every value is
    above 255, so clipping turns it white)."""
    return np.linspace(0, 65535, height * width).round().astype(np.uint16).reshape(height, width)


def _jpeg_bytes(seed=0, size=(48, 64)):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(image).resize(size[::-1]))
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, format="JPEG", quality=90)
    return stream.getvalue()


def _truncated_jpeg(path, fraction):
    data = _jpeg_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with Image.open(path) as image:
        image.verify()  # the check the classification sources used to rely on: passes
    return path


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = _gradient16()
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
        assert np.mean(np.asarray(image.convert("RGB")) == 255) > 0.99  # what PIL does
    pixels = read_image(path)
    assert pixels.shape == (24, 40, 3) and pixels.dtype == np.uint8
    expected = (values >> 8).astype(np.uint8)
    np.testing.assert_array_equal(pixels, np.repeat(expected[..., None], 3, -1))
    assert pixels.min() == 0 and pixels.max() == 255 and np.mean(pixels == 255) < 0.01


def test_16_bit_pngs_give_tensorflows_pixels_and_rgb_ones_pillows(tmp_path):
    """The same 8 bits whichever decoder reads a 16-bit file: tf.io.decode_png(dtype=uint8)
    (what TFDS and tf.data users run) and Pillow on 16-bit RGB keep the high byte; so does
    read_image on 16-bit grayscale."""
    gray = _gradient16()
    rgb = np.stack([gray, gray[::-1], 65535 - gray], -1)
    for name, values in (("gray", gray[..., None]), ("rgb", rgb)):
        encoded = tf.io.encode_png(tf.constant(values)).numpy()
        path = tmp_path / f"{name}.png"
        path.write_bytes(encoded)
        ours = read_image(path)
        tensorflow = tf.io.decode_png(encoded, channels=3, dtype=tf.uint8).numpy()
        np.testing.assert_array_equal(ours, tensorflow)
        np.testing.assert_array_equal(ours, np.broadcast_to(values >> 8, ours.shape))
    # TFDS features of dtype uint16 follow the same rule in the tf.data sources.
    np.testing.assert_array_equal(sources.rgb8(tf.constant(gray[..., None])).numpy(),
                                  np.repeat((gray >> 8)[..., None].astype(np.uint8), 3, -1))


def test_32_bit_integer_images_are_taken_as_16_bit(tmp_path):
    values = np.array([[-5, 0, 255, 256], [40000, 65535, 70000, 2**31 - 1]], np.int32)
    path = tmp_path / "deep.tif"
    Image.fromarray(values, mode="I").save(path)
    with Image.open(path) as image:
        assert image.mode == "I"
    expected = np.array([[0, 0, 0, 1], [156, 255, 255, 255]], np.uint8)
    np.testing.assert_array_equal(read_image(path), np.repeat(expected[..., None], 3, -1))


def test_16_bit_images_reach_every_source_scaled(tmp_path):
    """Segmentation and classification sources, training and evaluation batches all see the
    scaled pixels (on the old reader, 99% of them were 255)."""
    values = _gradient16(16, 16)
    expected = np.repeat((values >> 8)[..., None], 3, -1).astype(np.uint8)
    for folder in ("img", "cls/a"):
        (tmp_path / folder).mkdir(parents=True)
        Image.fromarray(values).save(tmp_path / folder / "x.png")
    (tmp_path / "mask").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "mask" / "x.png")
    segmentation = image_mask_folders(tmp_path / "img", tmp_path / "mask", num_classes=2)
    (image, _), = list(segmentation.dataset.as_numpy_iterator())
    np.testing.assert_array_equal(image, expected)
    data = image_folder(tmp_path / "cls")
    (image, _), = list(data.dataset.as_numpy_iterator())
    np.testing.assert_array_equal(image, expected)
    batches = classification_pipeline(data, 1, training=False, image_size=16)
    (images, _), = list(batches.as_numpy_iterator())
    np.testing.assert_allclose(images[0], expected, atol=1e-3)  # raw 0-255, resize is identity


@pytest.mark.parametrize("fraction", [0.6, 0.8, 0.99])
def test_truncated_jpeg_is_a_value_error_naming_the_file(tmp_path, fraction):
    path = _truncated_jpeg(tmp_path / "cut.jpg", fraction)
    with pytest.raises(ValueError, match=r"cut\.jpg.*truncated"):
        read_image(path)


def test_truncated_jpeg_is_skipped_by_classification_sources(tmp_path):
    """A JPEG cut at 80% passes PIL's verify(): the source used to keep it and validation
    crashed on it. Now it is skipped with a warning naming it, or raises on request."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            (tmp_path / name / f"{i}.jpg").write_bytes(_jpeg_bytes(seed=i))
    cut = _truncated_jpeg(tmp_path / "b" / "cut.jpg", 0.8)
    with pytest.warns(UserWarning, match=r"Skipping 1 unreadable.*cut\.jpg.*truncated"):
        data = image_folder(tmp_path)
    assert data.size == 4 and data.skipped == (str(cut),)
    batches = classification_pipeline(data, 2, training=False, image_size=16)
    assert sum(len(labels) for _, labels in batches.as_numpy_iterator()) == 4
    with pytest.raises(ValueError, match=r"1 unreadable image file.*cut\.jpg"):
        image_folder(tmp_path, on_error="raise")


def test_truncated_image_stops_a_segmentation_source_naming_it(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    _truncated_jpeg(tmp_path / "img" / "cut.jpg", 0.8)
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "mask" / "cut.png")
    data = image_mask_folders(tmp_path / "img", tmp_path / "mask", num_classes=2)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=r"cut\.jpg"):
        list(data.dataset.as_numpy_iterator())


def test_modes_become_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    cases = {
        "gray.png": (Image.fromarray(gray), np.repeat(gray[..., None], 3, -1)),
        "rgba.png": (Image.fromarray(np.dstack([rgb, np.full((5, 6), 7, np.uint8)])), rgb),
        "la.png": (Image.fromarray(np.dstack([gray, gray[::-1]]), mode="LA"),
                   np.repeat(gray[..., None], 3, -1)),
        "bilevel.png": (Image.fromarray(gray > 127).convert("1"),
                        np.repeat(np.where(gray > 127, 255, 0)[..., None], 3, -1)),
    }
    palette = Image.fromarray(rgb).quantize(4)
    palette.info["transparency"] = 0
    colours = np.array(palette.getpalette()[:12], np.uint8).reshape(4, 3)
    cases["palette.png"] = (palette, colours[np.asarray(palette)])
    for name, (image, expected) in cases.items():
        image.save(tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(read_image(tmp_path / name), expected, err_msg=name)
    np.testing.assert_array_equal(read_image(str(tmp_path / "gray.png").encode()),
                                  cases["gray.png"][1])  # bytes paths, as tf.numpy_function


def test_exif_orientation_is_not_applied(tmp_path):
    """Pixels as stored (the reference's, Keras's and TensorFlow's decoders' choice): a mask
    drawn on the stored grid stays aligned."""
    image = Image.fromarray(np.zeros((8, 16, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees to display"
    image.save(tmp_path / "phone.jpg", exif=exif)
    assert read_image(tmp_path / "phone.jpg").shape == (8, 16, 3)


def test_unreadable_files_are_value_errors_naming_them(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"Cannot read the image .*notes\.png.*Unidentified"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ValueError, match=r"Cannot read the image .*absent\.jpg"):
        read_image(tmp_path / "absent.jpg")


def test_one_list_of_extensions(tmp_path):
    """Both kinds of sources pick up every extension of keras_drn.constants (the segmentation
    folders used to skip .tif, .webp and .gif files): they list folders with the one lister."""
    assert files.list_images.__defaults__[1] is constants.IMAGE_EXTENSIONS
    assert classification.list_images is files.list_images
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    for i, extension in enumerate(constants.IMAGE_EXTENSIONS):
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(tmp_path / "img" / f"{i}{extension}")
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "mask" / f"{i}.png")
    data = image_mask_folders(tmp_path / "img", tmp_path / "mask", num_classes=2)
    assert data.size == len(constants.IMAGE_EXTENSIONS)


pytestmark = pytest.mark.backend_independent  # no Keras op: CI runs it on TensorFlow only
