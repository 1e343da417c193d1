"""keras_drn.export: every format loads back and matches Keras; LiteRT graphs are mobile
friendly; SavedModels keep height and width dynamic; bad input fails early and a failed export
leaves nothing behind. Under JAX and PyTorch the artifacts are written by a TensorFlow
subprocess and compared with the model of the running backend."""

import importlib
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_drn
from keras_drn.export import ExportVerificationError, export, op_histogram

# The module, not the function: keras_drn.export is also the name of the public function.
export_module = importlib.import_module("keras_drn.export")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def needs(*modules):
    for module in modules:
        pytest.importorskip(module)


def tiny_segmenter(classes=3, size=None):
    """A 2-conv model with one dilated conv: fast to export, same code paths as a DRN."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras_drn.layers.DilatedConv2D(8, 3, padding="same", dilation_rate=2, activation="relu")(
        inputs)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 1)(x))


def drn_segmenter(**kwargs):
    return keras_drn.DRNSegmenter("drn_d_22", num_classes=kwargs.pop("num_classes", 3), **kwargs)


def keras_outputs(model, x):
    return np.asarray(model.predict(x, verbose=0), "float32")


def dilated_keras_convs(model):
    """Conv layers with a dilation > 1 anywhere in ``model``, nested blocks included."""
    return sum(
        1 for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
        and max(layer.dilation_rate) > 1
    )


def litert_run(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    assert tuple(source["shape"]) == x.shape
    interpreter.set_tensor(source["index"], x)
    interpreter.invoke()
    ops = {detail["op_name"] for detail in interpreter._get_ops_details()}
    return interpreter.get_tensor(target["index"]), ops


# === Bad input ===


@pytest.mark.parametrize("fmt", ["tflite", "coreml", "saved_model"])
def test_unknown_format_lists_the_choices(tmp_path, fmt):
    with pytest.raises(ValueError, match="tf_saved_model.*litert.*onnx") as info:
        export(tiny_segmenter(), tmp_path / "out", format=fmt)
    assert repr(fmt) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_unknown_quantization_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match="float16.*dynamic_int8.*int8.*'int4'"):
        export(tiny_segmenter(), tmp_path / "m.tflite", format="litert", input_shape=(8, 8),
               quantize="int4")


def test_saved_model_takes_no_quantization(tmp_path):
    with pytest.raises(ValueError, match="litert"):
        export(tiny_segmenter(), tmp_path / "sm", quantize="float16")


def test_int8_without_representative_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match="representative_data.*'embedded'"):
        export(tiny_segmenter(), tmp_path / "m.tflite", format="litert", input_shape=(16, 16),
               quantize="int8")
    with pytest.raises(ValueError, match="only used by quantize='int8'"):
        export(tiny_segmenter(), tmp_path / "m.tflite", format="litert", input_shape=(16, 16),
               representative_data="embedded")
    with pytest.raises(ValueError, match=r"representative_data samples are \(8, 8\)"):
        export(tiny_segmenter(), tmp_path / "m.tflite", format="litert", input_shape=(16, 16),
               quantize="int8", representative_data=np.zeros((4, 8, 8, 3), "float32"))
    assert os.listdir(tmp_path) == []


def test_litert_needs_a_static_size_and_suffixes_are_checked(tmp_path):
    with pytest.raises(ValueError, match="input_shape=\\(height, width\\)"):
        export(tiny_segmenter(), tmp_path / "m.tflite", format="litert")
    with pytest.raises(ValueError, match=r"\.tflite"):
        export(tiny_segmenter(), tmp_path / "m.onnx", format="litert", input_shape=(8, 8))
    with pytest.raises(ValueError, match=r"\.onnx"):
        export(tiny_segmenter(), tmp_path / "m.tflite", format="onnx")
    with pytest.raises(ValueError, match="does not match the model's fixed input size"):
        export(tiny_segmenter(size=16), tmp_path / "sm", input_shape=(32, 32))
    with pytest.raises(ValueError, match="input_shape must be None or \\(height, width\\)"):
        export(tiny_segmenter(), tmp_path / "sm", input_shape=(32, 32, 3))


def test_existing_path_is_refused_without_overwrite(tmp_path):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export(tiny_segmenter(), target, format="litert", input_shape=(8, 8))
    (tmp_path / "sm").mkdir()
    with pytest.raises(FileExistsError):
        export(tiny_segmenter(), tmp_path / "sm")
    assert target.read_bytes() == b"keep me"


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """The writer dies half way through the file: nothing appears, an old file survives."""

    def half_written(model, staged, job, calibration, staging):
        with open(staged, "wb") as handle:
            handle.write(b"TFL3" + b"\0" * 1000)
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module, "_write_artifact", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        export(tiny_segmenter(), tmp_path / "m.tflite", format="litert", input_shape=(8, 8))
    assert os.listdir(tmp_path) == []
    old = tmp_path / "old.tflite"
    old.write_bytes(b"previous export")
    with pytest.raises(RuntimeError, match="disk full"):
        export(tiny_segmenter(), old, format="litert", input_shape=(8, 8), overwrite=True)
    assert os.listdir(tmp_path) == ["old.tflite"] and old.read_bytes() == b"previous export"


def test_failed_verification_writes_nothing(tmp_path, monkeypatch):
    """The artifact is written but does not match Keras: it is not installed, the old one
    stays."""
    needs("tensorflow")
    target = tmp_path / "sm"
    target.mkdir()
    (target / "stale.txt").write_text("old export")
    real_load = export_module._load_artifact

    def off_by_one(path, fmt):
        run = real_load(path, fmt)
        return lambda inputs: run(inputs) + 1.0

    monkeypatch.setattr(export_module, "_load_artifact", off_by_one)
    with pytest.raises(ExportVerificationError, match="exceeds 1e-04") as info:
        export(tiny_segmenter(), target, overwrite=True, verbose=False)
    assert info.value.report.max_abs_diff == pytest.approx(1.0, abs=1e-4)
    assert not info.value.report.passed
    assert sorted(os.listdir(tmp_path)) == ["sm"] and os.listdir(target) == ["stale.txt"]


# === LiteRT: builtin ops, one dilated CONV_2D per dilated conv ===


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


# === SavedModel: dynamic height and width, optional uint8 in / mask out ===


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


@pytest.mark.parametrize("build", [
    pytest.param(lambda: tiny_segmenter(classes=5), id="tiny"),
    pytest.param(lambda: drn_segmenter(num_classes=5), id="drn_d_22", marks=pytest.mark.slow),
])
def test_end_to_end_saved_model_takes_uint8_and_returns_the_argmax_mask(tmp_path, build):
    tf = pytest.importorskip("tensorflow")
    model = build()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    path = tmp_path / "mask"
    report = export(model, path, end_to_end=True, mean=mean, std=std, verbose=False)
    assert report.passed and report.input_dtype == "uint8" and report.output_dtype == "uint8"
    assert report.agreement > 0.999
    loaded = tf.saved_model.load(str(path))  # owns the variables: keep it alive
    rng = np.random.default_rng(2)
    for height, width in ((200, 300), (61, 47)):
        image = rng.integers(0, 256, size=(2, height, width, 3), dtype="uint8")
        mask = loaded.serve(tf.constant(image)).numpy()
        assert mask.dtype == np.uint8 and mask.shape == (2, height, width)
        logits = keras_outputs(model, (image / 255.0 - mean) / std)
        expected = logits.argmax(-1)
        top2 = np.sort(logits, axis=-1)[..., -2:]
        differ = mask != expected
        # Identical up to ties of Keras's two best logits.
        assert differ.mean() < 1e-3
        assert np.all(top2[..., 1][differ] - top2[..., 0][differ] < 1e-3)


# === ONNX ===


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


# === Command line and the TensorFlow subprocess ===


def test_command_line_exports_a_keras_file_and_prints_the_histogram(tmp_path, capsys):
    needs("tensorflow", "ai_edge_litert")
    source = tmp_path / "tiny.keras"
    tiny_segmenter().save(source)
    output = tmp_path / "tiny.tflite"
    output.write_bytes(b"an older export")
    args = [str(source), str(output), "--format", "litert", "--input-shape", "24", "32"]
    with pytest.raises(FileExistsError):
        export_module.main(args)
    assert export_module.main(args + ["--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "op histogram" in printed and "CONV_2D" in printed and "PASSED" in printed
    assert "dilated convolutions carried by a single conv op: 1" in printed
    assert output.read_bytes()[4:8] == b"TFL3"  # the LiteRT flatbuffer identifier
    assert sorted(os.listdir(tmp_path)) == ["tiny.keras", "tiny.tflite"]
    with pytest.raises(SystemExit):
        export_module.main([str(source), str(output), "--quantize", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def test_tensorflow_subprocess_writes_what_the_backend_cannot(tmp_path):
    """The route models built under JAX or PyTorch take, run from any backend."""
    tf = pytest.importorskip("tensorflow")
    model = tiny_segmenter()
    job = export_module._Job("tf_saved_model", None, (None, None, None, 3), False,
                             export_module.IMAGENET_MEAN, export_module.IMAGENET_STD, "float32")
    staged = tmp_path / "staged"
    export_module._write_in_subprocess(model, str(staged), job, None, str(tmp_path))
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
    assert report.checks[0]["samples"] == export_module.AGREEMENT_SAMPLES
    assert 0.5 <= report.agreement <= 1.0 and report.dilated_convs == 9


@pytest.mark.slow
def test_end_to_end_litert_int8_is_uint8_in_and_out(tmp_path):
    needs("tensorflow", "ai_edge_litert")
    model = drn_segmenter(num_classes=5)
    path = tmp_path / "mask.tflite"
    report = export(model, path, format="litert", input_shape=(48, 48), quantize="int8",
                    representative_data="embedded", end_to_end=True, verbose=False)
    assert report.passed and report.mobile_friendly and report.agreement > 0.9
    assert "ARG_MAX" in report.op_histogram
    image = np.random.default_rng(6).integers(0, 256, size=(1, 48, 48, 3), dtype="uint8")
    mask, _ = litert_run(path, image)
    assert mask.dtype == np.uint8 and mask.shape == (1, 48, 48) and mask.max() < 5


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


@pytest.mark.slow
def test_benchmark_tool_and_example_run(tmp_path):
    needs("tensorflow", "ai_edge_litert", "tf2onnx", "onnxruntime")
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    tool = [sys.executable, str(ROOT / "tools" / "benchmark_export.py"), "--size", "32",
            "--runs", "2", "--only", "litert:none",
            "--workdir", str(tmp_path / "bench")]
    out = subprocess.run(tool, capture_output=True, text=True, env=env, check=True).stdout
    assert "| Keras (tensorflow) | float32 |" in out and "| litert | float32 |" in out
    assert "1.00x" in out
    example = [sys.executable, str(ROOT / "examples" / "export_mobile.py"), "--size", "32",
               "--train", "32", "--epochs", "1", "--output", str(tmp_path / "mobile")]
    out = subprocess.run(example, capture_output=True, text=True, env=env, check=True).stdout
    assert "mobile-friendly: yes" in out
    assert {"drn_mask_int8.tflite", "drn_mask_float16.tflite", "drn_mask_saved_model"} <= set(
        os.listdir(tmp_path / "mobile"))
