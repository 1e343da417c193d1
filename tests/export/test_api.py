"""keras_drn.export.api: bad input fails early with an error naming the fix, before anything
is written; the normalisation contract (the model carries it; end to end never normalises on
its own) is enforced."""

import importlib
import os

import numpy as np
import pytest

from keras_drn import build_classifier
from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.export import export
from keras_drn.models.preprocessing import with_preprocessing
from tests.export.helpers import tiny_segmenter

writer = importlib.import_module("keras_drn.export.tensorflow")


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

    monkeypatch.setattr(writer, "write_artifact", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        export(tiny_segmenter(), tmp_path / "m.tflite", format="litert", input_shape=(8, 8))
    assert os.listdir(tmp_path) == []
    old = tmp_path / "old.tflite"
    old.write_bytes(b"previous export")
    with pytest.raises(RuntimeError, match="disk full"):
        export(tiny_segmenter(), old, format="litert", input_shape=(8, 8), overwrite=True)
    assert os.listdir(tmp_path) == ["old.tflite"] and old.read_bytes() == b"previous export"


# === The normalisation contract ===


def test_end_to_end_without_preprocessing_or_statistics_names_both_ways_out(tmp_path):
    """A model taking normalised inputs: end to end would have to guess its statistics (main
    used ImageNet's whatever the model was trained with)."""
    with pytest.raises(ValueError, match="no 'preprocessing' layer") as info:
        export(tiny_segmenter(), tmp_path / "mask", end_to_end=True)
    message = str(info.value)
    assert "--mean" in message and "--std" in message and "mean=" in message
    assert "include_preprocessing=True" in message and "keras_drn.build_classifier" in message
    with pytest.raises(ValueError, match="both mean and std"):
        export(tiny_segmenter(), tmp_path / "mask", end_to_end=True, mean=IMAGENET_MEAN)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("end_to_end", [True, False])
def test_statistics_that_differ_from_the_models_own_are_refused(tmp_path, end_to_end):
    """A classifier trained with its own statistics, exported with ImageNet's by habit."""
    model = build_classifier(3, "drn_d_22", mean=(0.3, 0.3, 0.3), std=(0.2, 0.2, 0.2),
                             input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="differ") as info:
        export(model, tmp_path / "cls", end_to_end=end_to_end, mean=IMAGENET_MEAN,
               std=IMAGENET_STD)
    message = str(info.value)
    assert "mean=(0.3, 0.3, 0.3), std=(0.2, 0.2, 0.2)" in message  # the model's
    assert "mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)" in message  # the given
    assert os.listdir(tmp_path) == []


def test_statistics_equal_to_the_models_own_are_accepted(tmp_path):
    pytest.importorskip("tensorflow")
    model = with_preprocessing(tiny_segmenter(), IMAGENET_MEAN, IMAGENET_STD)
    report = export(model, tmp_path / "mask", end_to_end=True, mean=IMAGENET_MEAN,
                    std=IMAGENET_STD, verbose=False)
    assert report.passed and report.preprocessing["added"] is False
    np.testing.assert_allclose(report.preprocessing["mean"], IMAGENET_MEAN, atol=1e-6)
