"""keras_drn.export.tensorflow: LiteRT graphs are builtin-only with one dilated CONV_2D per
dilated conv; SavedModels keep height and width dynamic; under JAX and PyTorch a TensorFlow
subprocess writes the artifact, compared with the model of the running backend."""

import importlib
import os

import keras
import numpy as np
import pytest

import keras_drn
from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.export import AGREEMENT_SAMPLES, ExportVerificationError, export, op_histogram
from keras_drn.export.job import Job
from tests.export.helpers import (
    dilated_keras_convs,
    drn_segmenter,
    keras_outputs,
    litert_run,
    needs,
    tiny_segmenter,
)

writer = importlib.import_module("keras_drn.export.tensorflow")


# === LiteRT: builtin ops, one dilated CONV_2D per dilated conv ===


# TensorFlow only (tests/conftest.py): under JAX and PyTorch the TensorFlow subprocess loads the
# .keras file and converts it, so the graph's ops are the same; those backends keep the
# DRN-D-22 hand-off below (test_saved_model_serves_...) and LiteRT through the subprocess in
# tests/export/test_cli.py (float32 and int8 calibration).
@pytest.mark.tensorflow_only
def test_litert_segmenter_is_builtin_only_with_dilated_conv2d(tmp_path, capsys):
    needs("tensorflow", "ai_edge_litert")
    model = drn_segmenter()
    path = tmp_path / "seg.tflite"
    report = export(model, path, format="litert", input_shape=(48, 48))
    printed = capsys.readouterr().out
    assert "op histogram" in printed and "CONV_2D" in printed and "PASSED" in printed
    assert report.passed and report.input_shape == (1, 48, 48, 3)
    assert report.max_rel_diff <= 1e-4 and report.agreement == 1.0
    histogram = report.op_histogram
    assert not set(histogram) & {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}
    assert not [name for name in histogram if name.startswith("CUSTOM")]
    assert report.mobile_friendly
    expected = dilated_keras_convs(model)
    assert expected == 9 and report.dilated_convs == expected
    assert op_histogram(path, "litert") == (histogram, expected)

    # Independent runs on inputs that verification did not use (a batch of 2, the shape
    # verification compiled), and the interpreter's own op list.
    x = np.random.default_rng(7).normal(size=(2, 48, 48, 3)).astype("float32")
    want = keras_outputs(model, x)
    for sample, expected in zip(x, want):
        got, op_names = litert_run(path, sample[None])
        assert np.abs(got[0] - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    assert "CONV_2D" in op_names
    assert not op_names & {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "FlexConv2D"}


# === SavedModel: dynamic height and width ===


def test_saved_model_serves_200x300_and_512x1024(tmp_path):
    tf = pytest.importorskip("tensorflow")
    model = drn_segmenter()
    path = tmp_path / "seg"
    report = export(model, path, verbose=False)
    assert report.passed and report.input_shape == (None, None, None, 3)
    assert [check["size"] for check in report.checks] == [(64, 96), (75, 57)]
    loaded = tf.saved_model.load(str(path))
    rng = np.random.default_rng(1)
    for height, width in ((200, 300), (512, 1024)):
        x = rng.normal(size=(1, height, width, 3)).astype("float32")
        got = loaded.serve(tf.constant(x)).numpy()
        want = keras_outputs(model, x)
        assert got.shape == (1, height, width, 3)
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


# === The TensorFlow subprocess ===


def test_tensorflow_subprocess_writes_what_the_backend_cannot(tmp_path):
    """The route models built under JAX or PyTorch take, run from any backend."""
    tf = pytest.importorskip("tensorflow")
    model = tiny_segmenter()
    job = Job("tf_saved_model", None, (None, None, None, 3), False, "float32", IMAGENET_MEAN,
              IMAGENET_STD)
    staged = tmp_path / "staged"
    writer.write_in_subprocess(model, str(staged), job, None, str(tmp_path))
    x = np.random.default_rng(4).normal(size=(2, 21, 34, 3)).astype("float32")
    loaded = tf.saved_model.load(str(staged))
    got = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(got, keras_outputs(model, x), atol=1e-5)


def test_resize_by_equals_bilinear_upsampling2d_and_takes_any_size():
    """The segmenter's x2 bilinear step (DRN-A GCN heads): the values of Keras's UpSampling2D,
    without its failure on a second input size in a traced TensorFlow graph."""
    from keras_drn.layers.bilinear_upsampling import ResizeBy

    x = np.random.default_rng(9).normal(size=(2, 5, 7, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(
        keras.layers.UpSampling2D(2, interpolation="bilinear")(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ResizeBy(2)(x)), want, atol=1e-6)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, ResizeBy(2)(inputs))
    for height, width in ((5, 7), (6, 9)):
        y = model.predict(np.ones((1, height, width, 3), "float32"), verbose=0)
        assert y.shape == (1, 2 * height, 2 * width, 3)
    assert ResizeBy.from_config(ResizeBy(3).get_config()).factor == 3


# === Heavier checks (CI: tensorflow backend, pytest -m slow) ===


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["float16", "dynamic_int8", "int8"])
def test_litert_quantized_segmenter_reports_agreement(tmp_path, quantize):
    needs("tensorflow", "ai_edge_litert")
    model = drn_segmenter(num_classes=5)
    data = "embedded" if quantize == "int8" else None
    report = export(model, tmp_path / f"{quantize}.tflite", format="litert", input_shape=(48, 48),
                    quantize=quantize, representative_data=data, verbose=False)
    assert report.passed and report.mobile_friendly and report.dilated_convs == 9
    float_bytes = 4 * model.count_params()
    if quantize == "float16":
        assert report.max_rel_diff <= 1e-2 and report.size_bytes < 0.6 * float_bytes
    else:
        assert report.size_bytes < 0.35 * float_bytes
        assert report.agreement > 0.9 and 0.5 < report.miou <= 1.0
    if quantize == "int8":
        assert "QUANTIZE" in report.op_histogram and "DEQUANTIZE" in report.op_histogram
        assert report.agreement < 1.0  # int8 is lossy: a stricter bound must fail
        with pytest.raises(ExportVerificationError, match="below min_agreement"):
            export(model, tmp_path / "strict.tflite", format="litert", input_shape=(48, 48),
                   quantize="int8", representative_data="embedded", min_agreement=1.0,
                   verbose=False)
        assert sorted(os.listdir(tmp_path)) == ["int8.tflite"]


@pytest.mark.slow
def test_litert_int8_classifier_reports_top1_agreement(tmp_path):
    needs("tensorflow", "ai_edge_litert")
    model = keras_drn.DRN_D_22(classes=4)
    calibration = np.random.default_rng(5).normal(size=(8, 32, 32, 3)).astype("float32")
    report = export(model, tmp_path / "cls.tflite", format="litert", input_shape=(32, 32),
                    quantize="int8", representative_data=list(calibration), verbose=False)
    assert report.passed and report.task == "classifier" and report.miou is None
    assert report.checks[0]["samples"] == AGREEMENT_SAMPLES
    assert 0.5 <= report.agreement <= 1.0 and report.dilated_convs == 9


@pytest.mark.slow
@pytest.mark.parametrize("backbone, options", [
    ("drn_d_22", {"head": "gcn", "upsampling": "bilinear", "context": "parsenet"}),
    ("drn_a_18", {"head": "gcn", "upsampling": "bilinear"}),
    ("drn_c_26", {"head": "drn", "upsampling": "bilinear"}),
])
def test_bilinear_segmenters_export_with_dynamic_size(tmp_path, backbone, options):
    """ResizeLike and ResizeBy take symbolic sizes: Keras's UpSampling2D and
    ops.image.resize fail there (model.export, and model.predict at a second size)."""
    tf = pytest.importorskip("tensorflow")
    model = keras_drn.DRNSegmenter(backbone, num_classes=4, **options)
    report = export(model, tmp_path / "seg", verbose=False)
    assert report.passed and report.max_rel_diff <= 1e-4
    loaded = tf.saved_model.load(str(tmp_path / "seg"))
    x = np.random.default_rng(8).normal(size=(1, 90, 130, 3)).astype("float32")
    want = keras_outputs(model, x)
    got = loaded.serve(tf.constant(x)).numpy()
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


@pytest.mark.slow
def test_litert_gcn_parsenet_segmenter_is_mobile_friendly(tmp_path):
    needs("tensorflow", "ai_edge_litert")
    model = drn_segmenter(head="gcn", upsampling="bilinear", context="parsenet")
    report = export(model, tmp_path / "gcn.tflite", format="litert", input_shape=(64, 64),
                    verbose=False)
    assert report.passed and report.mobile_friendly
    assert report.dilated_convs == dilated_keras_convs(model)
    assert "RESIZE_BILINEAR" in report.op_histogram and "L2_NORMALIZATION" in report.op_histogram
