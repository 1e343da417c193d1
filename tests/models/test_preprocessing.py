"""The normalisation a model carries (keras_drn.models.preprocessing): the layer, the
include_preprocessing contract of every constructor, and preprocess_input."""

import keras
import numpy as np
import pytest

import keras_drn
from keras_drn.constants import CITYSCAPES_MEAN, CITYSCAPES_STD, IMAGENET_MEAN, IMAGENET_STD
from keras_drn.models.preprocessing import normalization_layer, preprocessing_of


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_normalisation_is_float32_under_every_policy(policy):
    # Under mixed_bfloat16 a bfloat16 Normalization rounds 0-255 values and the statistics to
    # 8 bits: errors of about 1e-2 in the normalised image, before any convolution.
    keras.config.set_dtype_policy(policy)
    layer = normalization_layer(IMAGENET_MEAN, IMAGENET_STD)
    raw = np.random.default_rng(0).uniform(0, 255, (2, 5, 7, 3)).astype("float32")
    out = layer(raw)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    expected = (raw / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, atol=2e-6)


# === include_preprocessing: one contract for every constructor ===

TABLE_MEAN, TABLE_STD = (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)


def _raw(shape=(2, 24, 24, 3)):
    return np.random.default_rng(1).uniform(0, 255, shape).astype("float32")


def _first_layers(model, count=2):
    return [layer.name for layer in model.layers[:count]]


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, "float64"), np.asarray(expected, "float64"),
                               rtol=1e-6)


def test_pretrained_weights_add_the_statistics_of_their_row_of_the_table(imagenet_weights):
    """DRN_D_22(weights="imagenet") took normalised input: every constructor now carries the
    normalisation of the weights it loads, read from the table (not ImageNet's by habit)."""
    imagenet_weights(mean=TABLE_MEAN, std=TABLE_STD)
    models = [
        keras_drn.DRN_D_22(weights="imagenet", include_top=False),
        keras_drn.build_drn("drn_d_22", weights="imagenet:official", include_top=False),
        keras_drn.DRNSegmenter("drn_d_22", num_classes=3, backbone_weights="imagenet"),
        keras_drn.build_classifier(3, "drn_d_22", weights="imagenet"),
    ]
    for model in models:
        assert _first_layers(model) == ["image", "preprocessing"], model.name
        _close(preprocessing_of(model), (TABLE_MEAN, TABLE_STD))


def test_raw_rgb_equals_preprocess_input_into_the_bare_model(imagenet_weights):
    """The same ImageNet weights: raw 0-255 RGB into the default model equals
    preprocess_input(raw) into the model built with include_preprocessing=False."""
    raw = _raw((1, 24, 24, 3))
    carried = keras_drn.DRN_D_22(weights="imagenet", include_top=False)
    bare = keras_drn.DRN_D_22(weights="imagenet", include_top=False, include_preprocessing=False)
    assert preprocessing_of(bare) is None and _first_layers(bare) == ["image", "layer0_0"]
    expected = keras.ops.convert_to_numpy(bare(keras_drn.preprocess_input(raw), training=False))
    got = keras.ops.convert_to_numpy(carried(raw, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    segmenter = keras_drn.DRNSegmenter("drn_d_22", num_classes=3, backbone_weights="imagenet",
                                       include_preprocessing=False)
    assert preprocessing_of(segmenter) is None


def test_without_pretrained_weights_the_default_is_the_bare_model(tmp_path):
    """No weights (or a file, whose statistics nothing records): normalised input, as before;
    True asks for the layer (ImageNet's statistics), mean/std for other statistics."""
    assert preprocessing_of(keras_drn.DRN_D_22(include_top=False)) is None
    assert preprocessing_of(keras_drn.DRNSegmenter("drn_d_22", num_classes=3)) is None
    assert preprocessing_of(keras_drn.build_classifier(3, "drn_d_22")) is None
    path = tmp_path / "d22.weights.h5"
    keras_drn.DRN_D_22(include_top=False).save_weights(path)
    assert preprocessing_of(keras_drn.DRN_D_22(include_top=False, weights=str(path))) is None
    for model in (keras_drn.DRN_D_22(include_top=False, include_preprocessing=True),
                  keras_drn.DRNSegmenter("drn_d_22", num_classes=3, include_preprocessing=True),
                  keras_drn.build_classifier(3, "drn_d_22", include_preprocessing=True)):
        _close(preprocessing_of(model), (IMAGENET_MEAN, IMAGENET_STD))
    own = keras_drn.DRNSegmenter("drn_d_22", num_classes=3, mean=TABLE_MEAN, std=TABLE_STD)
    _close(preprocessing_of(own), (TABLE_MEAN, TABLE_STD))


def test_contradictions_and_bad_values_are_refused():
    with pytest.raises(ValueError, match="include_preprocessing=False builds the model without"):
        keras_drn.DRNSegmenter("drn_d_22", include_preprocessing=False, mean=TABLE_MEAN,
                               std=TABLE_STD)
    with pytest.raises(ValueError, match="both mean and std"):
        keras_drn.build_classifier(3, "drn_d_22", mean=TABLE_MEAN)
    with pytest.raises(ValueError, match="include_preprocessing must be None, True or False; "
                                         "received include_preprocessing='imagenet'"):
        keras_drn.DRN_D_22(include_preprocessing="imagenet")


def test_the_old_preprocessing_argument_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="include_preprocessing=True, mean=.*std="):
        old = keras_drn.DRNSegmenter("drn_d_22", num_classes=3,
                                     preprocessing=(TABLE_MEAN, TABLE_STD))
    _close(preprocessing_of(old), (TABLE_MEAN, TABLE_STD))
    with pytest.warns(DeprecationWarning, match=r"use include_preprocessing=True\."):
        old = keras_drn.DRNSegmenter("drn_d_22", num_classes=3, preprocessing="imagenet")
    _close(preprocessing_of(old), (IMAGENET_MEAN, IMAGENET_STD))
    with pytest.raises(ValueError, match="deprecated spelling.*Give only the new arguments"):
        keras_drn.DRNSegmenter("drn_d_22", preprocessing="imagenet", include_preprocessing=False)


def test_the_preprocessing_layer_survives_a_keras_file_and_the_config(tmp_path):
    model = keras_drn.DRN_D_22(classes=3, include_preprocessing=True, input_shape=(24, 24, 3))
    raw = _raw()
    expected = keras.ops.convert_to_numpy(model(raw, training=False))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    rebuilt = type(model).from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    for other in (loaded, rebuilt):
        _close(preprocessing_of(other), (IMAGENET_MEAN, IMAGENET_STD))
        assert other.feature_info == model.feature_info
        np.testing.assert_allclose(keras.ops.convert_to_numpy(other(raw, training=False)),
                                   expected, rtol=1e-5, atol=1e-6)


# === preprocess_input ===


def test_preprocess_input_on_numpy():
    raw = _raw((2, 3, 4, 3)).round()
    expected = (raw / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    for x in (raw, raw.astype("uint8"), raw.tolist()):
        out = keras_drn.preprocess_input(x)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert keras_drn.preprocess_input(raw.astype("float64")).dtype == np.float64
    np.testing.assert_allclose(
        keras_drn.preprocess_input(raw, weights="cityscapes"),
        (raw / 255.0 - np.array(CITYSCAPES_MEAN)) / np.array(CITYSCAPES_STD), rtol=1e-6,
        atol=1e-6)
    np.testing.assert_array_equal(keras_drn.preprocess_input(raw, weights="imagenet:official"),
                                  keras_drn.preprocess_input(raw))


def test_preprocess_input_on_backend_tensors():
    raw = _raw((2, 3, 4, 3)).round()
    expected = (raw / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    for x in (keras.ops.convert_to_tensor(raw), keras.ops.convert_to_tensor(raw, "uint8")):
        out = keras_drn.preprocess_input(x)
        assert keras.ops.is_tensor(out)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, rtol=1e-5,
                                   atol=1e-5)


def test_preprocess_input_names_what_it_takes():
    with pytest.raises(ValueError, match=r"one of \['imagenet', 'cityscapes', 'imagenet:"
                                         r"imgclsmob', 'imagenet:official'\]; received 'voc'"):
        keras_drn.preprocess_input(_raw(), weights="voc")
    with pytest.raises(ValueError, match=r"RGB images \(\.\.\., 3\); received the shape "
                                         r"\(2, 4, 4\)"):
        keras_drn.preprocess_input(np.zeros((2, 4, 4)))
