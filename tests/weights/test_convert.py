"""Reference PyTorch state_dicts (written by an independent PyTorch implementation with the
reference's module names, tests/weights/torch_reference.py) load into keras_drn by key and
give the reference's numbers, on every backend; anything that does not fit is named."""

import pathlib
import runpy
import sys

import numpy as np
import pytest

import keras_drn
from keras_drn.weights.convert import convert_checkpoint, state_dict_to_model
from tests.helpers import random_input, to_numpy

torch = pytest.importorskip("torch")
from tests.weights.torch_reference import (  # noqa: E402
    Seg, randomize, reference_net, run_torch, save)

FAST = ("drn_a_18", "drn_c_26", "drn_d_22", "drn_c_58")
TOOL = pathlib.Path(__file__).parents[2] / "tools" / "convert_weights.py"


def _assert_close(ours, ref):
    """Max abs difference <= 1e-4 relative to the reference's largest value (at least 1)."""
    assert ours.shape == ref.shape
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(ours - ref).max() <= 1e-4 * scale


def _assert_logits_match(model, net, sizes=((72, 88), (67, 93))):
    for size in sizes:  # not multiples of 8, and odd: stride-2 padding and borders
        x = random_input((1, *size, 3), seed=size[1])
        _assert_close(to_numpy(model(x, training=False)), run_torch(net, x))


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
             for n in keras_drn.list_models()])
def test_converted_logits_equal_the_reference(name, tmp_path):
    net = reference_net(name)
    path = save(net.state_dict(), tmp_path / f"{name}.pth")
    model = keras_drn.get_model(name, weights=path, classifier_activation=None)
    _assert_logits_match(model, net)


@pytest.mark.parametrize("layout", ["legacy", "data_parallel"])
def test_legacy_serialisation_and_data_parallel_wrapping(layout, tmp_path):
    net = reference_net("drn_d_22", seed=1)
    if layout == "legacy":
        path = save(net.state_dict(), tmp_path / "d22.pt", _use_new_zipfile_serialization=False)
    else:
        wrapped = {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}
        path = save(wrapped, tmp_path / "d22.pth")
    model = keras_drn.DRN_D_22(weights=path, classifier_activation=None)
    _assert_logits_match(model, net, sizes=[(40, 57)])


def test_drn_c_58_unused_projection_is_skipped():
    state = {k: v.numpy() for k, v in reference_net("drn_c_58").state_dict().items()}
    assert state["layer7.0.downsample.0.weight"].shape == (512, 2048, 1, 1)
    state_dict_to_model(state, keras_drn.DRN_C_58(), "drn_c_58")  # no error


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
    _assert_close(to_numpy(backbone(x, training=False)), run_torch(net, x, "features"))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "fc classifier is not used" in lines[0]

    model = keras_drn.DRN_C_26(classes=10, weights=path)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "freshly initialised" in lines[0]
    assert model.output_shape == (None, 10)
    for name in ("conv1", "layer8_0"):
        for ours, theirs in zip(model.get_layer(name).weights, backbone.get_layer(name).weights):
            np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))


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
    _assert_logits_match(model, net, sizes=[(32, 41)])

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
