"""examples/export_mobile.py and tools/benchmark_export.py run end to end at tiny sizes with
models that carry their preprocessing (slow: CI runs them on the TensorFlow backend)."""

import os
import pathlib
import subprocess
import sys

import pytest

from tests.export.helpers import needs

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_tool_and_example_run(tmp_path):
    needs("tensorflow", "ai_edge_litert", "tf2onnx", "onnxruntime")
    env = dict(os.environ, KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    tool = [sys.executable, str(ROOT / "tools" / "benchmark_export.py"), "--size", "32",
            "--runs", "2", "--only", "litert:none", "--fold-batch-norm",
            "--workdir", str(tmp_path / "bench")]
    out = subprocess.run(tool, capture_output=True, text=True, env=env, check=True).stdout
    assert "| Keras (tensorflow) | float32 |" in out and "| litert | float32 |" in out
    assert "| Keras (tensorflow) BN folded | float32 |" in out
    assert "| litert BN folded | float32 |" in out
    assert "1.00x" in out
    example = [sys.executable, str(ROOT / "examples" / "export_mobile.py"), "--size", "32",
               "--train", "32", "--epochs", "1", "--output", str(tmp_path / "mobile")]
    out = subprocess.run(example, capture_output=True, text=True, env=env, check=True).stdout
    assert "mobile-friendly: yes" in out
    assert "the model's own preprocessing layer" in out and "ADDED" not in out
    assert {"drn_mask_int8.tflite", "drn_mask_float16.tflite", "drn_mask_saved_model"} <= set(
        os.listdir(tmp_path / "mobile"))
