"""Same weights in, same numbers out: reference PyTorch state_dicts (written here by an
independent PyTorch implementation with the reference's module names) converted into
keras_drn give the reference's outputs, on every backend."""

import numpy as np
import pytest

import keras_drn
from keras_drn.models.drn import VARIANTS
from keras_drn.weights.convert import convert_checkpoint, main as convert_main
from tests.helpers import random_input, to_numpy

torch = pytest.importorskip("torch")
from tests.weights.torch_reference import Net, Seg, randomize  # noqa: E402

def _reference(name, seed=0, classes=1000):
    spec = VARIANTS[name]
    return randomize(Net(spec.arch, spec.block == "bottleneck", spec.depths, classes), seed)


def _run_torch(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()


def _assert_close(ours, ref):
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(ours - ref).max() <= 1e-4 * scale


@pytest.mark.parametrize("name", keras_drn.list_models())
def test_converted_logits_equal_the_reference(name, tmp_path):
    """Every variant, every backend (about 1.5 minutes in all on 2 CPU cores)."""
    net = _reference(name)
    path = tmp_path / f"{name}.pth"
    torch.save(net.state_dict(), path)
    model = keras_drn.get_model(name, weights=str(path), classifier_activation=None)
    for size in [(72, 88), (67, 93)]:
        x = random_input((1, *size, 3), seed=size[0])
        _assert_close(to_numpy(model(x, training=False)), _run_torch(net, x))


def test_legacy_format_and_data_parallel_wrapping(tmp_path):
    net = _reference("drn_d_22", seed=1)
    path = tmp_path / "wrapped.pth"
    state = {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    model = keras_drn.DRN_D_22(weights=str(path), classifier_activation=None)
    x = random_input((1, 40, 56, 3))
    _assert_close(to_numpy(model(x, training=False)), _run_torch(net, x))


def test_drn_c_58_skips_the_unused_projection(tmp_path):
    net = _reference("drn_c_58")
    assert "layer7.0.downsample.0.weight" in net.state_dict()
    path = tmp_path / "c58.pth"
    torch.save(net.state_dict(), path)
    keras_drn.DRN_C_58(weights=str(path))  # loads: the extra keys are skipped, not fatal


def test_another_architecture_names_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "d22.pth"
    torch.save(_reference("drn_d_22").state_dict(), path)
    with pytest.raises(ValueError) as error:
        keras_drn.DRN_C_26(weights=str(path))
    message = str(error.value)
    assert "Model weights missing from the file: ['conv1/kernel'" in message
    assert "Unexpected keys in the file: ['layer0.0.weight'" in message


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    state = _reference("drn_d_22").state_dict()
    state["layer3.0.conv1.weight"] = torch.zeros(64, 32, 5, 5)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"layer3\.0\.conv1\.weight: \(64, 32, 5, 5\) in the "
                                         r"file, \(3, 3, 32, 64\)"):
        keras_drn.DRN_D_22(weights=str(path))


def test_backbone_or_other_classes_keep_a_fresh_head(tmp_path, capsys):
    net = _reference("drn_c_26")
    path = tmp_path / "c26.pth"
    torch.save(net.state_dict(), path)
    x = random_input((1, 48, 48, 3))
    backbone = keras_drn.DRN_C_26(include_top=False, weights=str(path))
    with torch.no_grad():
        ref = net.features(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    _assert_close(to_numpy(backbone(x, training=False)), ref)
    assert "fc classifier is not used" in capsys.readouterr().out
    model = keras_drn.DRN_C_26(classes=10, weights=str(path))
    assert model.output_shape == (None, 10)
    assert "freshly initialised" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["drn_d_22", "drn_c_26", "drn_a_18"])
def test_segment_py_checkpoint_reproduces_the_reference(name, tmp_path):
    seg = randomize(Seg(_reference(name), classes=5), seed=2)
    path = tmp_path / "seg.pth"
    torch.save(seg.state_dict(), path)
    model = keras_drn.DRNSegmenter(name, num_classes=5, weights=str(path))
    for size in [(64, 80), (61, 75)]:  # a multiple of 8 and not: borders included
        x = random_input((1, *size, 3), seed=size[1])
        ref = _run_torch(seg, x).transpose(0, 2, 3, 1)[:, : size[0], : size[1]]
        logits = to_numpy(model(x, training=False))
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        _assert_close(log_probs, ref)


def test_a_trained_up_kernel_is_refused(tmp_path):
    seg = Seg(_reference("drn_d_22"), classes=3)
    with torch.no_grad():
        seg.up.weight.mul_(1.5)
    path = tmp_path / "seg.pth"
    torch.save(seg.state_dict(), path)
    with pytest.raises(ValueError, match="not the fixed bilinear kernel"):
        keras_drn.DRNSegmenter("drn_d_22", num_classes=3, weights=str(path))


def test_convert_checkpoint_cli_writes_loadable_weights(tmp_path, capsys):
    net = _reference("drn_d_22", classes=7)
    source, target = tmp_path / "d22.pth", tmp_path / "out" / "d22.weights.h5"
    torch.save(net.state_dict(), source)
    assert convert_main([str(source), str(target), "--variant", "drn_d_22"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in target.parent.iterdir()) == ["d22.weights.h5"]
    model = keras_drn.DRN_D_22(classes=7, weights=str(target), classifier_activation=None)
    x = random_input((1, 32, 40, 3))
    _assert_close(to_numpy(model(x, training=False)), _run_torch(net, x))
    with pytest.raises(ValueError, match="must end with .weights.h5"):
        convert_checkpoint(source, tmp_path / "x.h5", "drn_d_22")
