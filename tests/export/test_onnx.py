"""keras_drn.export.onnx: ONNX files keep each dilation in one Conv, run in onnxruntime at
any size (the dilated-padding rewrite) and quantise."""

import os

import numpy as np
import pytest

from keras_drn.export import export
from tests.export.helpers import drn_segmenter, keras_outputs, needs, tiny_segmenter


def test_onnx_keeps_dilation_in_conv_and_matches_keras(tmp_path):
    needs("tensorflow", "tf2onnx", "onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    model = tiny_segmenter()
    path = tmp_path / "tiny.onnx"
    report = export(model, path, format="onnx", input_shape=(32, 32), verbose=False)
    assert report.passed and report.max_rel_diff <= 1e-4
    assert report.dilated_convs == 1 and report.op_histogram.get("Conv") == 2
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).normal(size=(3, 32, 32, 3)).astype("float32")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, keras_outputs(model, x), atol=1e-4)


def test_onnx_any_size_dilated_conv_runs_in_onnxruntime(tmp_path):
    """A dilated "SAME" conv of unknown size comes out of tf2onnx as auto_pad=SAME_UPPER,
    which onnxruntime refuses: the export writes its pads out."""
    needs("tensorflow", "tf2onnx", "onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    import onnx

    model = tiny_segmenter()
    path = tmp_path / "tiny.onnx"
    report = export(model, path, format="onnx", verbose=False)
    assert report.passed and report.input_shape == (None, None, None, 3)
    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    assert not [n for n in convs for a in n.attribute
                if a.name == "auto_pad" and a.s.startswith(b"SAME")
                and max(onnx.helper.get_attribute_value(
                    next(b for b in n.attribute if b.name == "dilations"))) > 1]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 24, 40, 3), (2, 33, 17, 3)]:
        x = np.random.default_rng(3).normal(size=shape).astype("float32")
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, keras_outputs(model, x), atol=1e-4)


def test_onnx_of_a_model_carrying_its_preprocessing(tmp_path):
    """A trained model carries a ``preprocessing`` Normalization layer; tf2onnx took its
    captured mean and variance for extra inputs of the ONNX model, which onnxruntime then
    demanded beside the image. Its only input is the image, and it normalises with the
    model's own statistics (checked against the model without the layer fed inputs
    normalised here)."""
    needs("tensorflow", "tf2onnx", "onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from keras_drn.models.preprocessing import with_preprocessing

    mean, std = (0.3, 0.5, 0.7), (0.2, 0.25, 0.3)
    core = tiny_segmenter()
    model = with_preprocessing(core, mean, std)
    layer = model.get_layer("preprocessing")
    tensors = (type(layer.mean), type(layer.variance))
    x = np.random.default_rng(4).uniform(0, 255, (2, 24, 40, 3)).astype("float32")
    expected = keras_outputs(core, (x / 255 - np.array(mean)) / np.array(std))
    for end_to_end in (False, True):
        path = tmp_path / f"e2e{end_to_end}.onnx"
        report = export(model, path, format="onnx", end_to_end=end_to_end, verbose=False)
        assert report.passed
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["image"]
        image = x.round().astype("uint8") if end_to_end else x
        got = session.run(None, {"image": image})[0]
        if end_to_end:
            twin = keras_outputs(core, (image / 255 - np.array(mean)) / np.array(std))
            assert (got == twin.argmax(-1)).mean() > 0.999
        else:
            np.testing.assert_allclose(got, expected, atol=1e-4)
    # The layer's statistics are its own tensors again after the export.
    assert (type(layer.mean), type(layer.variance)) == tensors
    np.testing.assert_allclose(keras_outputs(model, x), expected, atol=1e-4)


def test_onnx_float16_needs_a_static_size(tmp_path):
    needs("tensorflow", "tf2onnx", "onnx", "onnxruntime")
    with pytest.raises(ValueError, match="ONNX float16 needs a static size"):
        export(tiny_segmenter(classes=3), tmp_path / "seg.onnx", format="onnx",
               quantize="float16")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_onnx_int8_drn_segmenter_any_size(tmp_path, monkeypatch):
    """float32 ONNX: test_onnx_keeps_dilation_in_conv_and_matches_keras; float16 and
    dynamic_int8 round trips: the LiteRT tests (CI time)."""
    needs("tensorflow", "tf2onnx", "onnx", "onnxruntime")
    monkeypatch.chdir(tmp_path)  # onnxruntime's tools must leave nothing in the working dir
    model = drn_segmenter(num_classes=5)
    report = export(model, tmp_path / "seg.onnx", format="onnx", quantize="int8",
                    representative_data="embedded", verbose=False)
    assert report.passed and report.input_shape == (None, None, None, 3)
    assert len(report.checks) == 2
    assert report.agreement > 0.9
    assert os.listdir(tmp_path) == ["seg.onnx"]
