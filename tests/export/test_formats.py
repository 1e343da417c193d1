"""keras_drn.export.formats: the registry of export formats that the export, its writer and
its verification read; the old names derived from it; importable without Keras."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_drn.export import formats, job
from keras_drn.export import export
from tests.export.helpers import tiny_segmenter


def test_the_old_names_come_from_the_registry():
    for name in ("FORMATS", "QUANTIZATIONS", "FORMAT_QUANTIZATIONS", "SUFFIXES"):
        assert getattr(job, name) is getattr(formats, name), name  # one source, not a copy
    assert job.FORMATS == ("tf_saved_model", "litert", "onnx")
    assert job.QUANTIZATIONS == (None, "float16", "dynamic_int8", "int8")
    assert job.FORMAT_QUANTIZATIONS == {
        "tf_saved_model": (None,), "litert": job.QUANTIZATIONS, "onnx": job.QUANTIZATIONS}
    assert job.SUFFIXES == {"litert": ".tflite", "onnx": ".onnx"}
    assert {name: f.suffix for name, f in formats.REGISTRY.items()} == {
        "tf_saved_model": None, "litert": ".tflite", "onnx": ".onnx"}
    with pytest.raises(ValueError, match=r"one of \('tf_saved_model', 'litert', 'onnx'\); "
                                         r"received format='coreml'"):
        formats.get_format("coreml")


def test_the_registry_imports_without_keras():
    code = ("import sys; sys.argv[0] = 'keras-drn'; "  # the command defers Keras
            "from keras_drn.export.job import FORMATS; from keras_drn.export import formats; "
            "print(sorted({'keras', 'tensorflow'} & set(sys.modules)), FORMATS)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[] ('tf_saved_model', 'litert', 'onnx')"


def _keras_file_format():
    """A format of one entry: the served graph as a .keras file, run by Keras."""

    def write(served, path, signature, job, calibration):
        served.save(path)

    def load(path):
        model = keras.saving.load_model(path)
        return lambda inputs: np.asarray(model.predict(inputs, verbose=0))

    def histogram(path):
        model = keras.saving.load_model(path)
        return {type(layer).__name__: 1 for layer in model.layers}, None

    return formats.ExportFormat("keras_file", ".keras", (None,), write, load, histogram,
                                static_quantizations={None: "This format wants a size."})


@pytest.mark.tensorflow_only
def test_a_new_format_is_one_entry(tmp_path, monkeypatch):
    """Checks, writing, loading back, verifying and counting all go through the entry."""
    monkeypatch.setitem(formats.REGISTRY, "keras_file", _keras_file_format())
    with pytest.raises(ValueError, match=r"A keras_file export is a \.keras file"):
        export(tiny_segmenter(), tmp_path / "m.onnx", format="keras_file")
    with pytest.raises(ValueError, match="This format wants a size. Pass input_shape"):
        export(tiny_segmenter(), tmp_path / "m.keras", format="keras_file")
    with pytest.raises(ValueError, match=r"format='keras_file' takes quantize in \(None,\)"):
        export(tiny_segmenter(), tmp_path / "m.keras", format="keras_file", input_shape=(8, 8),
               quantize="float16")
    report = export(tiny_segmenter(), tmp_path / "m.keras", format="keras_file",
                    input_shape=(16, 16), verbose=False)
    assert report.passed and report.max_abs_diff == 0.0
    assert report.op_histogram["DilatedConv2D"] == 1 and report.mobile_friendly is None
    assert report.input_shape == (None, 16, 16, 3)
    assert os.listdir(tmp_path) == ["m.keras"]
