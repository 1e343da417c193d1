"""The key layouts are detected from the keys, and keras_drn.weights stays below the models:
it never imports keras_drn.models or the package root (the models pass it CheckpointNames)."""

import ast
import pathlib

import pytest

from keras_drn.models.drn import checkpoint_names
from keras_drn.weights.layouts import detect_layout, pytorchcv_modules, reference_names

WEIGHTS = pathlib.Path(__file__).parents[2] / "keras_drn" / "weights"


@pytest.mark.parametrize("keys, layout", [
    (["layer0.0.weight", "fc.bias"], "reference"),
    (["conv1.weight", "layer1.0.downsample.0.weight"], "reference"),
    (["base.0.0.weight", "seg.weight", "up.weight"], "segment"),
    (["features.init_block.conv.weight", "output.bias"], "pytorchcv"),
])
def test_layout_is_detected_from_the_keys(keys, layout):
    assert detect_layout(dict.fromkeys(keys)) == layout


def test_pytorchcv_stages_follow_the_reference_levels():
    """pytorchcv opens a stage at each stride-2 level; levels 5-8 continue stage 4."""
    modules = pytorchcv_modules(checkpoint_names("drn_d_22"))
    assert modules["features.init_block.conv"] == "layer0.0"
    assert modules["features.stage1.unit1.body.bn"] == "layer1.1"
    assert modules["features.stage4.unit2.body.conv2.bn"] == "layer4.1.bn2"
    assert modules["features.stage4.unit3.identity_conv.conv"] == "layer5.0.downsample.0"
    assert modules["features.stage4.unit8.body.conv"] == "layer8.0"
    assert modules["output"] == "fc"
    names, _ = reference_names(dict.fromkeys(["features.stage4.unit9.body.conv.weight"]),
                               checkpoint_names("drn_d_22"))
    assert names == {"features.stage4.unit9.body.conv.weight": None}  # D-22 has 8 units


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""


def test_weights_never_imports_the_models_or_the_package_root():
    offenders = []
    for path in sorted(WEIGHTS.glob("*.py")):
        tree = ast.parse(path.read_text())
        for name in _imports(tree):
            if name == "keras_drn" or name.startswith("keras_drn.models"):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []
