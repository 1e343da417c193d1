"""keras_drn.export.serving: end to end, the artifact takes uint8 RGB and returns class ids,
and its only normalisation is the model's own ``preprocessing`` layer. Checked against a
twin without a preprocessing layer fed inputs normalised independently in numpy, with
statistics that are not ImageNet's: normalising twice, or with ImageNet's statistics instead
of the model's, fails these tests."""

import keras
import numpy as np
import pytest

from keras_drn import build_classifier
from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.export import export
from tests.export.helpers import drn_segmenter, keras_outputs, litert_run, needs, tiny_segmenter

# Statistics far from ImageNet's.
MEAN, STD = (0.2, 0.7, 0.4), (0.1, 0.5, 0.3)


def normalised(images, mean=MEAN, std=STD):
    return ((images / 255.0 - np.float32(mean)) / np.float32(std)).astype("float32")


def centre_logits(model, layer_name, images):
    """Shifts (and scales) the bias of ``layer_name`` so that its classes are balanced on
    ``images``: at random initialisation one class wins almost everywhere, and the argmax
    would hardly depend on the input (nor on its normalisation)."""
    layer = model.get_layer(layer_name)
    logits = keras.Model(model.input, layer.output).predict(images.astype("float32"), verbose=0)
    kernel, bias = layer.get_weights()
    centre = logits.reshape(-1, logits.shape[-1]).mean(0)
    layer.set_weights([10 * kernel, 10 * (bias - centre)])


def assert_equal_up_to_ties(ids, logits):
    """Class ids equal the argmax of ``logits`` except where its two best values tie."""
    expected = logits.argmax(-1)
    differ = ids != expected
    top2 = np.sort(logits, axis=-1)[..., -2:]
    assert differ.mean() < 1e-3
    assert np.all(top2[..., 1][differ] - top2[..., 0][differ] < 1e-3)


# TensorFlow only (tests/conftest.py): under JAX and PyTorch the TensorFlow subprocess builds the
# served model from the .keras file, so the artifacts are the same; those backends keep the
# hand-off of a model with its own preprocessing layer (the classifier test below) and the
# uint8 mask of a model given its statistics (the tiny case of the saved_model test).
@pytest.mark.tensorflow_only
def test_end_to_end_segmenter_normalises_once_with_its_own_statistics(tmp_path):
    """LiteRT and SavedModel masks equal the argmax of a DRNSegmenter(include_preprocessing=False)
    twin (same weights) fed (x / 255 - mean) / std computed here."""
    needs("tensorflow", "ai_edge_litert")
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 32, 32, 3), dtype="uint8")
    model = drn_segmenter(mean=MEAN, std=STD)
    centre_logits(model, "seg", images)
    twin = drn_segmenter()
    twin.set_weights(model.get_weights())
    logits = keras_outputs(twin, normalised(images))
    # The test can fail: wrong statistics change a good share of the mask.
    for wrong in (normalised(normalised(images)), normalised(images, IMAGENET_MEAN, IMAGENET_STD)):
        assert np.mean(keras_outputs(twin, wrong).argmax(-1) != logits.argmax(-1)) > 0.05

    litert = export(model, tmp_path / "mask.tflite", format="litert", input_shape=(32, 32),
                    end_to_end=True, verbose=False)
    assert litert.passed and litert.preprocessing["added"] is False
    np.testing.assert_allclose(litert.preprocessing["mean"], MEAN, atol=1e-6)
    masks = np.concatenate([litert_run(tmp_path / "mask.tflite", image[None])[0]
                            for image in images])
    assert masks.dtype == np.uint8 and masks.shape == (2, 32, 32)
    assert_equal_up_to_ties(masks, logits)

    assert export(model, tmp_path / "mask", end_to_end=True, verbose=False).passed
    loaded = tf.saved_model.load(str(tmp_path / "mask"))  # owns the variables: keep it alive
    other = rng.integers(0, 256, size=(2, 40, 56, 3), dtype="uint8")
    for batch in (images, other):
        masks = loaded.serve(tf.constant(batch)).numpy()
        assert masks.dtype == np.uint8 and masks.shape == batch.shape[:3]
        assert_equal_up_to_ties(masks, keras_outputs(twin, normalised(batch)))


def test_end_to_end_classifier_does_not_normalise_twice(tmp_path):
    """keras_drn.build_classifier(mean=, std=) normalises inside: main's export normalised again
    (with ImageNet's statistics) and its own check, fed the same inputs, passed."""
    tf = pytest.importorskip("tensorflow")
    images = np.random.default_rng(1).integers(0, 256, size=(16, 32, 32, 3), dtype="uint8")
    model = build_classifier(4, "drn_d_22", mean=MEAN, std=STD, input_shape=(32, 32, 3))
    centre_logits(model, "fc", images)
    twin = keras.Sequential([model.get_layer(name)
                             for name in ("backbone", "avgpool", "fc", "predictions")])
    probabilities = keras_outputs(twin, normalised(images))
    assert np.mean(keras_outputs(twin, normalised(normalised(images))).argmax(-1)
                   != probabilities.argmax(-1)) > 0.25

    report = export(model, tmp_path / "cls", end_to_end=True, verbose=False)
    assert report.passed and report.output_dtype == "int32"
    assert report.preprocessing["added"] is False
    loaded = tf.saved_model.load(str(tmp_path / "cls"))
    ids = loaded.serve(tf.constant(images)).numpy()
    assert ids.dtype == np.int32 and ids.shape == (16,)
    assert_equal_up_to_ties(ids, probabilities)


@pytest.mark.parametrize("build", [
    pytest.param(lambda: tiny_segmenter(classes=5), id="tiny"),
    pytest.param(lambda: drn_segmenter(num_classes=5), id="drn_d_22", marks=pytest.mark.slow),
])
def test_end_to_end_saved_model_takes_uint8_and_returns_the_argmax_mask(tmp_path, build):
    """A model without a preprocessing layer, given its statistics: the export adds the layer
    and says so."""
    tf = pytest.importorskip("tensorflow")
    model = build()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    path = tmp_path / "mask"
    report = export(model, path, end_to_end=True, mean=mean, std=std, verbose=False)
    assert report.passed and report.input_dtype == "uint8" and report.output_dtype == "uint8"
    assert report.agreement > 0.999
    assert report.preprocessing == {"mean": mean, "std": std, "added": True}
    assert "normalisation ADDED by the export" in report.summary()
    loaded = tf.saved_model.load(str(path))  # owns the variables: keep it alive
    rng = np.random.default_rng(2)
    for height, width in ((200, 300), (61, 47)):
        image = rng.integers(0, 256, size=(2, height, width, 3), dtype="uint8")
        mask = loaded.serve(tf.constant(image)).numpy()
        assert mask.dtype == np.uint8 and mask.shape == (2, height, width)
        logits = keras_outputs(model, (image / 255.0 - mean) / std)
        # Identical up to ties of Keras's two best logits.
        assert_equal_up_to_ties(mask, logits)


@pytest.mark.slow
def test_end_to_end_litert_int8_is_uint8_in_and_out(tmp_path):
    needs("tensorflow", "ai_edge_litert")
    model = drn_segmenter(num_classes=5, include_preprocessing=True)
    path = tmp_path / "mask.tflite"
    report = export(model, path, format="litert", input_shape=(48, 48), quantize="int8",
                    representative_data="embedded", end_to_end=True, verbose=False)
    assert report.passed and report.mobile_friendly and report.agreement > 0.9
    assert "ARG_MAX" in report.op_histogram
    image = np.random.default_rng(6).integers(0, 256, size=(1, 48, 48, 3), dtype="uint8")
    mask, _ = litert_run(path, image)
    assert mask.dtype == np.uint8 and mask.shape == (1, 48, 48) and mask.max() < 5
