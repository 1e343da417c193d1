import numpy as np
import pytest

from keras_drn.layers import BilinearUpsampling, ResizeLike
from keras_drn.layers.bilinear_upsampling import bilinear_kernel
from tests.helpers import random_input, run_layer_test, to_numpy


def test_standard_checks(tmp_path):
    run_layer_test(BilinearUpsampling, {"factor": 8}, (2, 3, 4, 5), (2, 24, 32, 5), tmp_path)


def test_kernel_is_the_reference_profile():
    profile = 1 - np.abs(np.arange(16) / 8 - 0.9375)
    np.testing.assert_allclose(bilinear_kernel(8), np.outer(profile, profile), rtol=1e-6)


@pytest.mark.parametrize("size, factor", [((4, 5), 8), ((7, 3), 8), ((3, 4), 4)])
def test_matches_the_reference_transposed_convolution(size, factor):
    """The frozen ConvTranspose2d(C, C, 16, stride=8, padding=4, groups=C) of segment.py."""
    torch = pytest.importorskip("torch")
    x = random_input((2, *size, 3))
    kernel = torch.from_numpy(bilinear_kernel(factor))[None, None].repeat(3, 1, 1, 1)
    ref = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x).permute(0, 3, 1, 2), kernel, stride=factor, padding=factor // 2,
        groups=3
    ).permute(0, 2, 3, 1).numpy()
    ours = to_numpy(BilinearUpsampling(factor)(x))
    assert ours.shape == ref.shape == (2, factor * size[0], factor * size[1], 3)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    image = np.zeros((2, factor * size[0] - 5, factor * size[1] - 3, 1), "float32")
    cropped = to_numpy(BilinearUpsampling(factor)([x, image]))
    np.testing.assert_allclose(cropped, ref[:, : image.shape[1], : image.shape[2]], atol=1e-5)


def test_resize_like_crops_or_resizes():
    x = random_input((1, 10, 12, 2))
    reference = np.zeros((1, 7, 9, 5), "float32")
    np.testing.assert_array_equal(to_numpy(ResizeLike("crop")([x, reference])), x[:, :7, :9])
    assert to_numpy(ResizeLike("bilinear")([x, np.zeros((1, 20, 24, 1))])).shape == (1, 20, 24, 2)
    with pytest.raises(ValueError, match="mode must be"):
        ResizeLike("nearest")


def test_bad_factor():
    with pytest.raises(ValueError, match="even int"):
        BilinearUpsampling(3)
