import keras
import numpy as np
import pytest

from keras_drn.layers import AdaptiveBlurPool, DilatedResidualBlock
from tests.helpers import random_input, run_layer_test, to_numpy

CASES = [
    ({"filters": 8}, (2, 9, 10, 8), (2, 9, 10, 8)),
    ({"filters": 8, "strides": 2}, (2, 9, 10, 4), (2, 5, 5, 8)),
    ({"filters": 8, "dilation": (2, 4)}, (2, 11, 10, 8), (2, 11, 10, 8)),
    ({"filters": 8, "dilation": 2, "residual": False}, (2, 9, 10, 4), (2, 9, 10, 8)),
    ({"filters": 4, "block": "bottleneck", "strides": 2}, (2, 9, 10, 8), (2, 5, 5, 16)),
    ({"filters": 4, "block": "bottleneck", "dilation": 4}, (2, 12, 10, 16), (2, 12, 10, 16)),
    ({"filters": 8, "strides": 2, "anti_alias": "blur"}, (2, 9, 10, 8), (2, 5, 5, 8)),
    (
        {"filters": 8, "block": "bottleneck", "strides": 2, "anti_alias": "adaptive",
         "anti_alias_groups": 4},
        (2, 9, 10, 8),
        (2, 5, 5, 32),
    ),
    # The folded form (keras_drn.fold_batch_norm): biased convs, Identity in each BN's place.
    (
        {"filters": 4, "block": "bottleneck", "strides": 2, "anti_alias": "adaptive",
         "anti_alias_groups": 4, "batch_norm": False},
        (2, 9, 10, 8),
        (2, 5, 5, 16),
    ),
]


@pytest.mark.parametrize("kwargs, input_shape, output_shape", CASES)
def test_standard_checks(kwargs, input_shape, output_shape, tmp_path):
    run_layer_test(DilatedResidualBlock, kwargs, input_shape, output_shape, tmp_path)


@pytest.mark.parametrize(
    "kwargs, in_channels, has_projection",
    [
        ({"filters": 8}, 8, False),
        ({"filters": 8}, 4, True),
        ({"filters": 8, "strides": 2}, 8, True),
        ({"filters": 8, "residual": False}, 4, False),  # DRN-C degridding: no shortcut at all
        ({"filters": 4, "block": "bottleneck"}, 16, False),
        ({"filters": 4, "block": "bottleneck"}, 8, True),
    ],
)
def test_projection_only_when_stride_or_channels_change(kwargs, in_channels, has_projection):
    block = DilatedResidualBlock(**kwargs)
    block.build((None, None, None, in_channels))
    assert block.has_projection is has_projection
    names = [w.path.split("/")[-2] for w in block.weights]
    assert ("downsample_conv" in names) is has_projection


def _torch_block(x, block, weights, strides, dilation, residual, projection):
    """The reference BasicBlock/Bottleneck forward (inference) in torch.nn.functional."""
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    w = [torch.from_numpy(np.asarray(a)) for a in weights]

    def conv(t, kernel, stride=1, dil=1):
        k = kernel.shape[0]
        return f.conv2d(t, kernel.permute(3, 2, 0, 1), stride=stride,
                        padding=dil * (k - 1) // 2, dilation=dil)

    def bn(t, params):
        gamma, beta, mean, var = params
        return f.batch_norm(t, mean, var, gamma, beta, False, 0.0, 1e-5)

    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    if block == "basic":
        y = f.relu(bn(conv(t, w[0], strides, dilation[0]), w[1:5]))
        y = bn(conv(y, w[5], 1, dilation[1]), w[6:10])
        rest = w[10:]
    else:
        y = f.relu(bn(conv(t, w[0]), w[1:5]))
        y = f.relu(bn(conv(y, w[5], strides, dilation[1]), w[6:10]))
        y = bn(conv(y, w[10]), w[11:15])
        rest = w[15:]
    if residual:
        y = y + (bn(conv(t, rest[0], strides), rest[1:5]) if projection else t)
    return f.relu(y).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize(
    "block, filters, in_channels, strides, dilation, residual",
    [
        ("basic", 8, 4, 2, (1, 1), True),
        ("basic", 8, 8, 1, (2, 2), True),
        ("basic", 8, 8, 1, (2, 1), False),
        ("bottleneck", 4, 8, 2, (1, 1), True),
        ("bottleneck", 4, 16, 1, (4, 4), True),
    ],
)
@pytest.mark.parametrize("size", [(12, 16), (11, 9)])
def test_matches_reference_semantics(block, filters, in_channels, strides, dilation, residual,
                                     size):
    """Symmetric padding (also at stride 2 on even sizes) and BN epsilon 1e-5, as in PyTorch."""
    x = random_input((2, *size, in_channels))
    layer = DilatedResidualBlock(filters, block=block, strides=strides, dilation=dilation,
                                 residual=residual)
    layer(x)
    rng = np.random.default_rng(1)
    weights = []
    for w in layer.get_weights():
        if w.ndim == 4:
            weights.append(rng.normal(0, 0.3, w.shape).astype("float32"))
        else:  # gamma, beta, mean, variance in turn
            weights.append(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
    layer.set_weights(weights)
    expected = _torch_block(x, block, weights, strides, dilation, residual, layer.has_projection)
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), expected, rtol=1e-4,
                               atol=1e-4)


def test_batch_norm_uses_pytorch_defaults():
    block = DilatedResidualBlock(8)
    block.build((None, None, None, 8))
    assert block.bn1.epsilon == 1e-5 and block.bn1.momentum == 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 8, "block": "wide"}, "block must be one of"),
        ({"filters": 8, "strides": 3}, "strides must be 1 or 2"),
        ({"filters": 0}, "filters must be a positive int"),
        ({"filters": 8, "dilation": (1, 2, 3)}, "dilation"),
        ({"filters": 8, "strides": 2, "dilation": 2}, "strided conv cannot also be dilated"),
        ({"filters": 8, "anti_alias": "gauss"}, "anti_alias must be one of"),
        ({"filters": 8, "batch_norm": "no"}, "batch_norm must be True or False"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DilatedResidualBlock(**kwargs)


def test_unknown_channel_count_is_refused():
    with pytest.raises(ValueError, match="known channel count"):
        DilatedResidualBlock(8).build((None, None, None, None))


def test_any_spatial_size_in_a_model():
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, DilatedResidualBlock(8, strides=2)(inputs))
    for size in [(5, 7), (32, 33), (1, 1)]:
        out = model(random_input((1, *size, 4)))
        assert tuple(out.shape) == (1, -(-size[0] // 2), -(-size[1] // 2), 8)


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")  # one tap
@pytest.mark.parametrize("anti_alias", ["blur", "adaptive"])
@pytest.mark.parametrize("block, filters, in_channels", [("basic", 8, 4),
                                                         ("bottleneck", 4, 8)])
@pytest.mark.parametrize("size", [(12, 16), (11, 9)])
def test_size_one_anti_alias_is_the_plain_strided_block(block, filters, in_channels,
                                                         anti_alias, size):
    """The documented placement: the strided conv runs at stride 1 and is followed (after its
    BN-ReLU) by the stride-2 filter, and the projection shortcut is filter then 1x1 conv.
    A 1x1 filter is plain subsampling (BlurPool; AdaptiveBlurPool's per-group softmax of one
    tap is 1), so the block equals the plain stride-2 block with the same weights; a filter
    after the wrong conv, a double stride or a shifted subsampling does not."""
    x = random_input((2, *size, in_channels))
    plain = DilatedResidualBlock(filters, block=block, strides=2)
    plain(x)
    rng = np.random.default_rng(1)
    weights = []
    for w in plain.weights:
        low, high = (-0.5, 0.5) if len(w.shape) == 4 else (0.5, 1.5)
        weights.append(rng.uniform(low, high, w.shape).astype("float32"))
    plain.set_weights(weights)
    blurred = DilatedResidualBlock(filters, block=block, strides=2, anti_alias=anti_alias,
                                   anti_alias_size=1, anti_alias_groups=2)
    blurred(x)
    by_path = {w.path.split("/", 1)[1]: w for w in blurred.weights}
    for w in plain.weights:
        by_path.pop(w.path.split("/", 1)[1]).assign(w)
    assert all("blur" in path for path in by_path)  # only AdaptiveBlurPool's predictor left
    expected = to_numpy(plain(x, training=False))
    np.testing.assert_allclose(to_numpy(blurred(x, training=False)), expected, rtol=1e-5,
                               atol=1e-5)
    # The real filter (size 4 / 3) low-passes: same shape, different numbers.
    smooth = DilatedResidualBlock(filters, block=block, strides=2, anti_alias=anti_alias,
                                  anti_alias_groups=2)
    smooth(x)
    by_path = {w.path.split("/", 1)[1]: w for w in smooth.weights}
    for w in plain.weights:
        by_path.pop(w.path.split("/", 1)[1]).assign(w)
    out = to_numpy(smooth(x, training=False))
    assert out.shape == expected.shape and np.abs(out - expected).max() > 1e-2


@pytest.mark.parametrize("layer_cls", [DilatedResidualBlock, AdaptiveBlurPool])
def test_config_saved_before_the_batch_norm_flag_loads_the_normalised_layer(layer_cls):
    config = (layer_cls(8) if layer_cls is DilatedResidualBlock else layer_cls()).get_config()
    del config["batch_norm"]  # .keras files written before the flag existed
    layer = layer_cls.from_config(config)
    assert layer.batch_norm is True
    layer.build((None, 8, 8, 8))
    assert any(isinstance(sub, keras.layers.BatchNormalization)
               for sub in layer._flatten_layers(include_self=False))
