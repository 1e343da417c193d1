"""Reference PyTorch state_dicts (written by an independent PyTorch implementation with the
reference's module names, tests/weights/torch_reference.py) load into keras_drn by key and
give the reference's numbers, on every backend; anything that does not fit is named."""

import pathlib
import runpy
import sys

import numpy as np
import pytest

import keras_drn
from keras_drn.models.registry import convert_checkpoint
from tests.helpers import random_input, to_numpy

torch = pytest.importorskip("torch")
from tests.weights.torch_reference import (  # noqa: E402
    Seg, assert_close, randomize, reference_net, run_torch, save)

TOOL = pathlib.Path(__file__).parents[2] / "tools" / "convert_weights.py"


def _assert_logits_match(model, net, size):
    x = random_input((1, *size, 3), seed=size[1])
    assert_close(to_numpy(model(x, training=False)), run_torch(net, x))


# One variant of each architecture on every backend (with DRN-C-58 below, a bottleneck); the
# others carry the slow mark, so CI compares them on TensorFlow only: the conversion is numpy,
# the same on every backend, which only runs the layers these cover.
EVERY_BACKEND = ("drn_a_18", "drn_c_26", "drn_d_22")


def _variant_cases():
    """Every variant; sizes alternate between even and odd sides, neither a multiple of 8
    (stride-2 padding, borders)."""
    for index, name in enumerate(keras_drn.list_models()):
        size = (67, 93) if index % 2 else (72, 88)
        marks = () if name in EVERY_BACKEND else (pytest.mark.slow,)
        yield pytest.param(name, size, id=name, marks=marks)


@pytest.mark.parametrize("name, size", list(_variant_cases()))
def test_converted_logits_equal_the_reference(name, size, tmp_path):
    net = reference_net(name)
    path = save(net.state_dict(), tmp_path / f"{name}.pth")
    model = keras_drn.get_model(name, weights=path, classifier_activation=None)
    _assert_logits_match(model, net, size)


@pytest.mark.parametrize("layout", ["legacy", "data_parallel"])
def test_legacy_serialisation_and_data_parallel_wrapping(layout, tmp_path):
    net = reference_net("drn_d_22", seed=1)
    if layout == "legacy":
        path = save(net.state_dict(), tmp_path / "d22.pt", _use_new_zipfile_serialization=False)
    else:
        wrapped = {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}
        path = save(wrapped, tmp_path / "d22.pth")
    model = keras_drn.DRN_D_22(weights=path, classifier_activation=None)
    _assert_logits_match(model, net, (40, 57))


# TensorFlow only (tests/conftest.py): which keys load is decided in Python from the file and
# the variant table; every backend loads converted checkpoints in the tests above and below.
@pytest.mark.tensorflow_only
def test_drn_c_58_loads_despite_its_unused_projection(tmp_path):
    net = reference_net("drn_c_58")
    assert net.state_dict()["layer7.0.downsample.0.weight"].shape == (512, 2048, 1, 1)
    model = keras_drn.DRN_C_58(weights=save(net.state_dict(), tmp_path / "c58.pth"),
                               classifier_activation=None)
    _assert_logits_match(model, net, (67, 93))


def test_another_architecture_names_missing_and_unexpected_keys(tmp_path):
    path = save(reference_net("drn_d_22").state_dict(), tmp_path / "d22.pth")
    with pytest.raises(ValueError) as error:
        keras_drn.DRN_C_26(weights=path)
    message = str(error.value)
    assert "Model weights missing from the file: ['conv1/kernel'" in message
    assert "Unexpected keys in the file: ['layer0.0.weight'" in message


def test_shape_mismatch_names_key_and_both_shapes(tmp_path):
    state = reference_net("drn_d_22").state_dict()
    state["layer3.0.conv1.weight"] = torch.zeros(64, 32, 5, 5)
    path = save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"layer3\.0\.conv1\.weight: \(64, 32, 5, 5\) in the "
                                         r"file, \(3, 3, 32, 64\)"):
        keras_drn.DRN_D_22(weights=path)


def test_backbone_or_other_classes_keep_a_fresh_head(tmp_path, capsys):
    net = reference_net("drn_c_26")
    path = save(net.state_dict(), tmp_path / "c26.pth")
    backbone = keras_drn.DRN_C_26(include_top=False, weights=path)
    x = random_input((1, 48, 40, 3))
    assert_close(to_numpy(backbone(x, training=False)), run_torch(net, x, "features"))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "fc classifier is not used" in lines[0]

    model = keras_drn.DRN_C_26(classes=10, weights=path)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "freshly initialised" in lines[0]
    assert model.output_shape == (None, 10)
    for name in ("conv1", "layer8_0"):
        for ours, theirs in zip(model.get_layer(name).weights, backbone.get_layer(name).weights):
            np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))


@pytest.mark.parametrize("name", ["drn_d_22", "drn_c_26", "drn_a_18"])
def test_segment_py_checkpoint_reproduces_the_reference(name, tmp_path):
    """segment.py's DRNSeg returns log-softmax scores; ours returns logits."""
    seg = randomize(Seg(reference_net(name), classes=5), seed=2)
    model = keras_drn.DRNSegmenter(name, num_classes=5,
                                   weights=save(seg.state_dict(), tmp_path / "seg.pth"))
    for size in [(64, 80), (61, 75)]:  # a multiple of 8 and not: borders included
        x = random_input((1, *size, 3), seed=size[1])
        ref = run_torch(seg, x)[:, : size[0], : size[1]]
        logits = to_numpy(model(x, training=False))
        shifted = logits - logits.max(-1, keepdims=True)
        assert_close(shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)), ref)


def test_a_trained_up_kernel_is_refused(tmp_path):
    seg = Seg(reference_net("drn_d_22"), classes=3)
    with torch.no_grad():
        seg.up.weight.mul_(1.5)
    path = save(seg.state_dict(), tmp_path / "seg.pth")
    with pytest.raises(ValueError, match="not the fixed bilinear kernel"):
        keras_drn.DRNSegmenter("drn_d_22", num_classes=3, weights=path)


def test_drn_c_58_segmentation_checkpoint_skips_the_unused_projection(tmp_path):
    seg = randomize(Seg(reference_net("drn_c_58"), classes=3), seed=2)
    assert "base.9.0.downsample.0.weight" in seg.state_dict()
    path = save(seg.state_dict(), tmp_path / "seg.pth")
    keras_drn.DRNSegmenter("drn_c_58", num_classes=3, weights=path)  # no error


def test_convert_checkpoint_and_tool_write_loadable_weights(tmp_path, monkeypatch, capsys):
    net = reference_net("drn_d_22", classes=7)
    source = save(net.state_dict(), tmp_path / "d22.pth")
    target = tmp_path / "out" / "d22.weights.h5"
    monkeypatch.setattr(sys, "argv", [str(TOOL), source, str(target), "--variant", "drn_d_22"])
    with pytest.raises(SystemExit) as exit_code:
        runpy.run_path(str(TOOL), run_name="__main__")
    assert exit_code.value.code == 0
    assert capsys.readouterr().out.startswith(f"wrote {target}")
    assert [p.name for p in target.parent.iterdir()] == ["d22.weights.h5"]  # no temp file
    model = keras_drn.DRN_D_22(classes=7, weights=str(target), classifier_activation=None)
    _assert_logits_match(model, net, (32, 41))

    again = convert_checkpoint(source, target, "drn_d_22")  # overwrites in place
    assert again.output_shape == (None, 7)
    with pytest.raises(ValueError, match="must end with .weights.h5; received .*x.h5"):
        convert_checkpoint(source, tmp_path / "x.h5", "drn_d_22")
    with pytest.raises(ValueError, match="Unknown variant 'drn_x'.*'drn_c_26'"):
        convert_checkpoint(source, target, "drn_x")


def test_tool_help(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(TOOL), "--help"])
    with pytest.raises(SystemExit) as exit_code:
        runpy.run_path(str(TOOL), run_name="__main__")
    assert exit_code.value.code == 0
    assert "--variant" in capsys.readouterr().out
