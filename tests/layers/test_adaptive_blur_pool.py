import keras
import numpy as np
import pytest

from keras_drn.layers import AdaptiveBlurPool, adaptive_blur_pool
from tests.helpers import random_input, run_layer_test, to_numpy


def _randomize_bn(layer, seed=0):
    """Non-trivial moving statistics so that inference-mode checks mean something."""
    rng = np.random.default_rng(seed)
    kernel, gamma, beta, mean, var = layer.get_weights()
    layer.set_weights([
        kernel,
        rng.uniform(0.5, 1.5, gamma.shape),
        rng.normal(size=beta.shape),
        rng.normal(size=mean.shape),
        rng.uniform(0.5, 2.0, var.shape),
    ])


@pytest.mark.parametrize("scope, batch_norm", [("group", True), ("all", True), ("group", False)])
def test_standard_checks(scope, batch_norm, tmp_path):
    run_layer_test(
        AdaptiveBlurPool,
        {"kernel_size": 3, "groups": 2, "softmax_scope": scope, "batch_norm": batch_norm},
        (2, 9, 10, 4),
        (2, 5, 5, 4),
        tmp_path,
    )


def test_weight_layout():
    layer = AdaptiveBlurPool(kernel_size=5, groups=4)
    layer.build((None, None, None, 8))
    assert [tuple(w.shape) for w in layer.weights] == [
        (5, 5, 8, 100), (100,), (100,), (100,), (100,)
    ]


@pytest.mark.parametrize("scope", ["group", "all"])
@pytest.mark.parametrize("size", [(12, 16), (11, 13), (7, 10)])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_strided_equals_full_resolution_then_subsampling(scope, size, kernel_size):
    x = random_input((2, *size, 8))
    full = AdaptiveBlurPool(kernel_size=kernel_size, strides=1, groups=4, softmax_scope=scope)
    strided = AdaptiveBlurPool(kernel_size=kernel_size, strides=2, groups=4, softmax_scope=scope)
    full(x)
    _randomize_bn(full)
    strided(x)
    strided.set_weights(full.get_weights())
    expected = to_numpy(full(x, training=False))[:, ::2, ::2]
    ours = to_numpy(strided(x, training=False))
    assert ours.shape == expected.shape == (2, -(-size[0] // 2), -(-size[1] // 2), 8)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_group_filters_are_low_pass_and_all_scope_is_not():
    x = np.full((1, 9, 9, 8), 2.0, "float32")
    group = AdaptiveBlurPool(groups=4, softmax_scope="group")
    np.testing.assert_allclose(to_numpy(group(x, training=False)), 2.0, rtol=1e-5)
    released = AdaptiveBlurPool(groups=4, softmax_scope="all")
    out = to_numpy(released(x, training=False))
    assert np.all(out < 2.0)  # each group's weights sum to well below 1


def _reference_forward(x, weights, kernel_size, groups, stride):
    """The released PASA computation, in torch.nn.functional: softmax over all logits,
    unfold at every position, then subsample."""
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    kernel, gamma, beta, mean, var = (torch.from_numpy(np.asarray(w)) for w in weights)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    pad = kernel_size // 2
    # NumPy's reflect padding: torch's where torch allows it (sides > pad), reflected again
    # below.
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    padded = torch.from_numpy(padded).permute(0, 3, 1, 2)
    logits = f.conv2d(padded, kernel.permute(3, 2, 0, 1))
    logits = f.batch_norm(logits, mean, var, gamma, beta, False, 0.0, 1e-5)
    sigma = torch.softmax(logits, dim=1)
    n, c, h, w = xt.shape
    taps = kernel_size * kernel_size
    patches = f.unfold(padded, kernel_size).reshape(n, groups, c // groups, taps, h * w)
    sigma = sigma.reshape(n, groups, 1, taps, h * w)
    out = (patches * sigma).sum(dim=3).reshape(n, c, h, w)
    return out[:, :, ::stride, ::stride].permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("size", [(10, 12), (9, 7)])
def test_all_scope_reproduces_the_released_code(size):
    x = random_input((2, *size, 6))
    layer = AdaptiveBlurPool(kernel_size=3, strides=2, groups=3, softmax_scope="all")
    layer(x)
    _randomize_bn(layer, seed=3)
    expected = _reference_forward(x, layer.get_weights(), 3, 3, 2)
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), expected, atol=1e-5)


SIDES = [(side, 10 - side) for side in range(1, 10)]  # every side from 1 to 9


@pytest.mark.parametrize("kernel_size, shapes", [(3, SIDES), (5, [(1, 9), (2, 3), (3, 2), (6, 4)])])
def test_every_side_from_1_to_9(kernel_size, shapes, monkeypatch):
    """Any input size works (MirrorPad / torch's pad raised below 5 px inside a DRN): the
    released computation on NumPy-reflect-padded inputs, and bit for bit today's output
    wherever plain reflect padding was valid."""
    layer = AdaptiveBlurPool(kernel_size=kernel_size, strides=2, groups=2, softmax_scope="all")
    layer.build((None, None, None, 4))
    _randomize_bn(layer, seed=1)
    outputs = {}
    for height, width in shapes:
        x = random_input((1, height, width, 4))
        ours = to_numpy(layer(x, training=False))
        assert ours.shape == (1, -(-height // 2), -(-width // 2), 4)
        expected = _reference_forward(x, layer.get_weights(), kernel_size, 2, 2)
        np.testing.assert_allclose(ours, expected, atol=1e-5)
        outputs[height, width] = (x, ours)
    monkeypatch.setattr(adaptive_blur_pool, "pad_spatial", lambda x, pads, mode: keras.ops.pad(
        x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]], mode=mode))
    x, ours = outputs[6, 4]  # a size where reflect padding was valid: today's code path
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), ours)


def test_training_at_one_pixel():
    """Batch statistics over a 1x1 output and a gradient, on this backend."""
    layer = AdaptiveBlurPool(kernel_size=3, groups=2)
    x = random_input((2, 1, 1, 4))
    out = to_numpy(layer(x, training=True))
    assert out.shape == (2, 1, 1, 4) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-5)  # every tap is the one pixel


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 4}, "odd"),
        ({"softmax_scope": "channel"}, "softmax_scope"),
        ({"groups": 0}, "groups"),
        ({"strides": 0}, "strides"),
        ({"batch_norm": None}, "batch_norm must be True or False"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaptiveBlurPool(**kwargs)


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="divisible by groups"):
        AdaptiveBlurPool(groups=3)(keras.ops.ones((1, 8, 8, 8)))
