"""imgclsmob's DRN files (pytorchcv's key layout) load into keras_drn and give pytorchcv's own
numbers: its models/drn.py builds each network, with random weights and BN statistics."""

import pathlib
import zipfile

import numpy as np
import pytest

import keras_drn
from tests.helpers import random_input, to_numpy

torch = pytest.importorskip("torch")
pytorchcv_drn = pytest.importorskip(
    "pytorchcv.models.drn",
    reason="pytorchcv is not installed: pip install --no-deps pytorchcv==0.0.74 (.ci/run does)",
)
from tests.weights.torch_reference import assert_close, randomize, run_torch, save  # noqa: E402

# keras_drn variant -> pytorchcv constructor; D-22 and C-26 run fast on every backend.
MODELS = {"drn_d_22": "drnd22", "drn_c_26": "drnc26", "drn_c_42": "drnc42",
          "drn_c_58": "drnc58", "drn_d_38": "drnd38", "drn_d_54": "drnd54",
          "drn_d_105": "drnd105"}
FAST = ("drn_d_22", "drn_c_26")


def _cases():
    for name in MODELS:
        marks = () if name in FAST else (pytest.mark.slow,)
        yield pytest.param(name, marks=marks, id=name)


class _Features(torch.nn.Module):
    """pytorchcv's ``features`` up to (without) its final AvgPool2d(28)."""

    def __init__(self, net):
        super().__init__()
        self.body = torch.nn.Sequential(*list(net.features.children())[:-1])

    def forward(self, x):
        return self.body(x)


def pytorchcv_net(name, seed=0):
    """pytorchcv's network for ``name``, randomised, in eval mode. Its AvgPool2d(28) (224x224
    inputs only) becomes a global average: equal at 224, and small inputs work."""
    net = getattr(pytorchcv_drn, MODELS[name])()
    net.features.final_pool = torch.nn.AdaptiveAvgPool2d(1)
    return randomize(net, seed)


@pytest.mark.parametrize("name", list(_cases()))
def test_logits_equal_pytorchcv(name, tmp_path):
    net = pytorchcv_net(name)
    assert next(iter(net.state_dict())) == "features.init_block.conv.weight"
    path = save(net.state_dict(), tmp_path / f"{name}.pth")
    model = keras_drn.get_model(name, weights=path, classifier_activation=None)
    x = random_input((1, 40, 35, 3), seed=3)
    assert_close(to_numpy(model(x, training=False)), run_torch(net, x))


def _zipped(path, member=None):
    target = pathlib.Path(f"{path}.zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, member or pathlib.Path(path).name)
    return str(target)


def test_zipped_file_and_segmenter_backbone(tmp_path, capsys):
    net = pytorchcv_net("drn_d_22", seed=4)
    path = _zipped(save(net.state_dict(), tmp_path / "drnd22.pth"))
    model = keras_drn.DRN_D_22(weights=path, classifier_activation=None)
    x = random_input((1, 32, 32, 3), seed=5)
    assert_close(to_numpy(model(x, training=False)), run_torch(net, x))

    segmenter = keras_drn.DRNSegmenter("drn_d_22", num_classes=3, backbone_weights=path)
    line, = capsys.readouterr().out.splitlines()
    assert "drn_d_22 backbone" in line and "fc classifier is not used" in line
    features = keras_drn.feature_model(segmenter, levels=[8])
    assert_close(to_numpy(features(x, training=False)["level8"]),
                  run_torch(_Features(net).eval(), x))


def test_a_file_of_another_variant_is_refused_by_key(tmp_path):
    path = save(pytorchcv_net("drn_c_26").state_dict(), tmp_path / "c26.pth")
    with pytest.raises(ValueError, match=r"Unexpected keys in the file: \['features\.stage1\."
                                         r"unit1\.body\.conv1\.conv\.weight', 'features"):
        keras_drn.DRN_A_18(weights=path)
    state = pytorchcv_net("drn_d_22").state_dict()
    state["features.stage4.unit9.body.conv.weight"] = state["output.weight"]
    path = save(state, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"Unexpected keys.*features\.stage4\.unit9"):
        keras_drn.DRN_D_22(weights=path)
