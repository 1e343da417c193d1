"""keras_drn.cli.export: ``keras-drn export`` exports a .keras file or a variant and prints the
report; end to end, a variant is built with ImageNet preprocessing (the published weights'
statistics) and a .keras model without preprocessing needs --mean/--std."""

import importlib
import json
import os

import numpy as np
import pytest

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.cli.export import build_parser, main
from keras_drn.models.preprocessing import preprocessing_of
from tests.export.helpers import needs, tiny_segmenter

cli = importlib.import_module("keras_drn.cli.export")


def test_command_line_exports_a_keras_file_and_prints_the_histogram(tmp_path, capsys):
    needs("tensorflow", "ai_edge_litert")
    source = tmp_path / "tiny.keras"
    tiny_segmenter().save(source)
    output = tmp_path / "tiny.tflite"
    output.write_bytes(b"an older export")
    args = [str(source), str(output), "--format", "litert", "--input-shape", "24", "32"]
    with pytest.raises(FileExistsError):
        main(args)
    assert main(args + ["--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "op histogram" in printed and "CONV_2D" in printed and "PASSED" in printed
    assert "dilated convolutions carried by a single conv op: 1" in printed
    assert output.read_bytes()[4:8] == b"TFL3"  # the LiteRT flatbuffer identifier
    assert sorted(os.listdir(tmp_path)) == ["tiny.keras", "tiny.tflite"]
    with pytest.raises(SystemExit):
        main([str(source), str(output), "--quantize", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["segmenter", "classifier"])
def test_a_variant_exported_end_to_end_is_built_with_imagenet_preprocessing(task):
    def model(*extra):
        return cli._load_model(build_parser().parse_args(
            ["drn_d_22", "out", "--task", task, "--num-classes", "3", *extra]))

    carried = preprocessing_of(model("--end-to-end"))
    np.testing.assert_allclose(carried, (IMAGENET_MEAN, IMAGENET_STD), atol=1e-6)
    own = preprocessing_of(model("--end-to-end", "--mean", "0.5", "0.5", "0.5",
                                 "--std", "0.25", "0.25", "0.25"))
    np.testing.assert_allclose(own, ((0.5,) * 3, (0.25,) * 3), atol=1e-6)
    assert preprocessing_of(model()) is None  # takes normalised inputs, as the reference


def test_a_keras_file_without_preprocessing_needs_mean_and_std_end_to_end(tmp_path, capsys):
    needs("tensorflow")
    source = tmp_path / "tiny.keras"
    tiny_segmenter().save(source)
    output = tmp_path / "mask"
    with pytest.raises(ValueError, match="no 'preprocessing' layer.*--mean R G B --std R G B"):
        main([str(source), str(output), "--end-to-end"])
    with pytest.raises(SystemExit, match="both --mean and --std"):
        main([str(source), str(output), "--end-to-end", "--mean", "0.5", "0.5", "0.5"])
    assert sorted(os.listdir(tmp_path)) == ["tiny.keras"]
    # A run folder records the statistics: the error says which flags to add.
    (tmp_path / "info.json").write_text(json.dumps({"mean": [0.5, 0.4, 0.3],
                                                    "std": [0.2, 0.25, 0.3]}))
    with pytest.raises(ValueError, match="info.json.*add --mean 0.5 0.4 0.3 --std 0.2 0.25 0.3"):
        main([str(source), str(output), "--end-to-end"])
    assert main([str(source), str(output), "--end-to-end", "--mean", "0.5", "0.4", "0.3",
                 "--std", "0.2", "0.25", "0.3"]) == 0
    printed = capsys.readouterr().out
    assert "normalisation ADDED by the export" in printed and "mean=(0.5, 0.4, 0.3)" in printed
    assert (output / "saved_model.pb").is_file()
    assert sorted(os.listdir(tmp_path)) == ["info.json", "mask", "tiny.keras"]


def test_int8_calibrates_on_the_representative_data_file_under_any_backend(tmp_path, capsys):
    """--representative-data FILE.npy reaches the converter, under JAX and PyTorch through the
    TensorFlow subprocess too: the input's int8 scale is the calibration samples' range / 255
    (uniform in [-20, 20] here, far from the embedded scenes' range)."""
    needs("tensorflow", "ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    source = tmp_path / "tiny.keras"
    tiny_segmenter().save(source)
    samples = np.random.default_rng(0).uniform(-20, 20, (8, 16, 16, 3)).astype("float32")
    np.save(tmp_path / "calibration.npy", samples)
    output = tmp_path / "int8.tflite"
    assert main([str(source), str(output), "--format", "litert", "--input-shape", "16", "16",
                 "--quantize", "int8", "--representative-data",
                 str(tmp_path / "calibration.npy")]) == 0
    printed = capsys.readouterr().out
    assert "litert (int8)" in printed and "PASSED" in printed and "QUANTIZE 1" in printed
    interpreter = Interpreter(model_path=str(output))
    quantized = [detail["quantization"] for detail in interpreter.get_tensor_details()
                 if detail["name"].startswith("tfl.quantize")]
    assert len(quantized) == 1
    scale, _ = quantized[0]
    span = samples.max() - samples.min()
    assert scale == pytest.approx(span / 255, rel=1e-3)


@pytest.mark.slow  # a DRN-D-22 SavedModel
def test_a_variant_exported_end_to_end_through_the_command_takes_uint8_and_returns_its_mask(
        tmp_path, monkeypatch):
    """keras-drn export drn_d_22 out/ --end-to-end: the SavedModel's mask is the argmax of the
    built segmenter without its preprocessing layer fed ImageNet-normalised images (computed
    here), so a missing, doubled or non-ImageNet normalisation fails."""
    tf = pytest.importorskip("tensorflow")
    from tests.export.helpers import drn_segmenter
    from tests.export.test_serving import assert_equal_up_to_ties, centre_logits, normalised

    images = np.random.default_rng(3).integers(0, 256, size=(2, 24, 40, 3), dtype="uint8")
    built = []
    real = cli._load_model

    def load(args):
        model = real(args)
        centre_logits(model, "seg", images)  # else one class wins everywhere
        built.append(model)
        return model

    monkeypatch.setattr(cli, "_load_model", load)
    assert main(["drn_d_22", str(tmp_path / "mask"), "--num-classes", "3",
                 "--end-to-end"]) == 0
    model, = built
    twin = drn_segmenter()  # preprocessing=None: takes normalised images
    twin.set_weights(model.get_weights())
    expected = twin.predict(normalised(images, IMAGENET_MEAN, IMAGENET_STD), verbose=0)
    loaded = tf.saved_model.load(str(tmp_path / "mask"))
    masks = loaded.serve(tf.constant(images)).numpy()
    assert masks.dtype == np.uint8 and masks.shape == (2, 24, 40)
    assert_equal_up_to_ties(masks, expected)
    raw = twin.predict(images.astype("float32"), verbose=0).argmax(-1)
    assert np.mean(raw != expected.argmax(-1)) > 0.05  # the normalisation matters here


def test_a_truncated_keras_file_is_named_as_damaged_not_missing(tmp_path):
    source = tmp_path / "tiny.keras"
    tiny_segmenter().save(source)
    source.write_bytes(source.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"tiny\.keras' \([\d,]+ bytes\) is damaged or "
                                         "truncated"):
        main([str(source), str(tmp_path / "tiny.tflite"), "--format", "litert"])
