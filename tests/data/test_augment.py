"""The reference augmentation: fidelity to PIL (what fyu/drn's data_transforms.py runs, compared
before its ToTensor + Normalize, which the model now carries), image and mask alignment, 255 in
the padded and rotated-in areas, seeds, raw 0-255 outputs."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_drn.data import augment_pair, crop_pair, normalize, rescale_pair, rotate_pair

MEAN, STD = (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)
# Class c is painted in PALETTE[c]: colours far apart, so a pixel's class can be read back.
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.float32)


def _noise(height, width, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    mask = rng.integers(0, 4, (height, width)).astype(np.uint8)
    return image, mask


def _smooth(height, width):
    yy, xx = np.mgrid[0:height, 0:width]
    channels = [np.sin(xx / 5), np.cos(yy / 4), np.sin((xx + yy) / 7)]
    return np.stack([128 + 100 * c for c in channels], -1).astype(np.uint8)


def _layout(height=48, width=40):
    """An asymmetric class layout (no symmetry a flip or small rotation could hide)."""
    mask = np.zeros((height, width), np.uint8)
    mask[: height // 3, : width // 2] = 1
    mask[height // 2 :, width // 4 :] = 2
    mask[height // 2 : height - 6, 5 : width // 2] = 3
    return PALETTE[mask].astype(np.uint8), mask


def _reference_rotate(image, mask, angle):
    """fyu/drn RandomRotate for a given angle: pad, PIL rotate, crop back."""
    h, w = mask.shape
    padded_mask = np.pad(mask, ((h, h), (w, w)), constant_values=255)
    mask = np.asarray(Image.fromarray(padded_mask).rotate(angle, resample=Image.NEAREST))
    padded = np.pad(image, ((h, h), (w, w), (0, 0)), mode="reflect")
    image = np.asarray(Image.fromarray(padded).rotate(angle, resample=Image.BILINEAR))
    return image[h : 2 * h, w : 2 * w], mask[h : 2 * h, w : 2 * w]


@pytest.mark.parametrize("angle", [-10, -4, 7, 10])
@pytest.mark.parametrize("shape", [(37, 50), (24, 24)])
def test_rotation_matches_the_reference(angle, shape):
    image, mask = _noise(*shape)
    rotated, rotated_mask = rotate_pair(image, mask, angle)
    expected, expected_mask = _reference_rotate(image, mask, angle)
    assert rotated.dtype == tf.float32 and rotated_mask.dtype == tf.uint8
    assert rotated.shape == (*shape, 3) and rotated_mask.shape == shape
    # The corners brought in from outside: 255 in the mask, reflected image content.
    assert rotated_mask[0, 0] == 255 and rotated_mask[-1, -1] == 255
    # Nearest sampling agrees except at exact ties; PIL rounds the bilinear image to uint8.
    assert np.mean(rotated_mask.numpy() == expected_mask) > 0.99
    assert np.abs(rotated.numpy() - expected).max() <= 1.01


def test_augment_pair_rotation_is_the_reference_rotation_on_the_0_255_scale():
    """augment_pair's output is comparable with PIL's (the reference's) as it comes out, with no
    normalisation to undo: a rotation-only draw equals the reference rotation of its angle."""
    image, mask = _noise(37, 50)
    out, out_mask = augment_pair(image, mask, tf.constant([5, 1]), rotate=10, scale=1.0,
                                 flip=False)
    out, out_mask = out.numpy(), out_mask.numpy()
    errors = {angle: np.abs(out - _reference_rotate(image, mask, angle)[0]).max()
              for angle in range(-10, 11)}
    angle = min(errors, key=errors.get)
    assert angle != 0 and errors[angle] <= 1.01
    assert np.mean(out_mask == _reference_rotate(image, mask, angle)[1]) > 0.99


@pytest.mark.parametrize("ratio", [0.5, 0.62, 1.5, 2.0])
def test_rescale_matches_the_reference(ratio):
    # Odd sides: no output pixel centre falls exactly between two input pixels, where nearest
    # sampling would depend on float rounding.
    image = _smooth(37, 51)
    _, mask = _noise(37, 51)
    scaled, scaled_mask = rescale_pair(image, mask, ratio)
    size = (int(ratio * 51), int(ratio * 37))  # PIL (width, height), int() as the reference
    assert scaled_mask.shape == size[::-1] and scaled.shape == (*size[::-1], 3)
    method = Image.LANCZOS if ratio < 1 else Image.BICUBIC
    expected = np.asarray(Image.fromarray(image).resize(size, method), np.float32)
    assert np.abs(scaled.numpy() - expected).max() <= 1.5
    expected_mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
    np.testing.assert_array_equal(scaled_mask.numpy(), expected_mask)


def test_crop_pads_by_reflection_and_with_ignore_label():
    image, mask = _noise(5, 7)
    padded, padded_mask = crop_pair(image, mask, (16, 20))
    # Centred padding (rows 5 before, 6 after; columns 6 and 7), NumPy "reflect", reflected
    # again where the padding exceeds the image (as the reference's recursive pad_reflection).
    np.testing.assert_array_equal(
        padded.numpy(), np.pad(image, ((5, 6), (6, 7), (0, 0)), mode="reflect")
    )
    expected_mask = np.full((16, 20), 255, np.uint8)
    expected_mask[5:10, 6:13] = mask
    np.testing.assert_array_equal(padded_mask.numpy(), expected_mask)


def test_crop_window():
    image, mask = _noise(10, 12)
    cropped, cropped_mask = crop_pair(image, mask, 4, offset=(2, 3))
    np.testing.assert_array_equal(cropped.numpy(), image[2:6, 3:7])
    np.testing.assert_array_equal(cropped_mask.numpy(), mask[2:6, 3:7])
    centred, _ = crop_pair(image, mask, (4, 6))
    np.testing.assert_array_equal(centred.numpy(), image[3:7, 3:9])
    # Taller than the image, narrower: padded on one axis, cropped on the other.
    tall, tall_mask = crop_pair(image, mask, (14, 6), offset=(0, 1))
    assert tall.shape == (14, 6, 3)
    np.testing.assert_array_equal(tall_mask.numpy()[2:12], mask[:, 1:7])
    assert np.all(tall_mask.numpy()[:2] == 255) and np.all(tall_mask.numpy()[12:] == 255)


def test_normalize_uses_mean_and_std():
    image = np.array([[[0, 255, 51]]], np.uint8)
    out = normalize(image, MEAN, STD).numpy()
    expected = (np.array([0.0, 1.0, 0.2]) - MEAN) / STD
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6)
    assert out.dtype == np.float32


def test_flip_and_crop_keep_image_and_mask_exactly_aligned():
    """Without interpolation every labelled pixel keeps exactly its class's colour."""
    image, mask = _layout()  # 48 x 40
    flips = []
    for seed in range(12):
        out, out_mask = augment_pair(image, mask, tf.constant([seed, 1]),
                                     crop_size=(40, 48), rotate=0, scale=1.0)
        out, out_mask = out.numpy(), out_mask.numpy()
        labelled = out_mask != 255
        np.testing.assert_allclose(out[labelled], PALETTE[out_mask[labelled]], atol=1e-3)
        # Crop narrower than the image height, wider than its width: 4 padded columns a side.
        assert np.all(out_mask[:, :4] == 255) and np.all(out_mask[:, 44:] == 255)
        window = out_mask[:, 4:44]
        matches = [(top, flip) for top in range(9) for flip in (False, True)
                   if np.array_equal(window, mask[top : top + 40, ::-1] if flip
                                     else mask[top : top + 40])]
        assert len(matches) == 1
        flips.append(matches[0][1])
    assert 0 < sum(flips) < len(flips)


def test_augmentation_keeps_image_and_mask_aligned():
    """Rotation, scale, crop and flip together: away from class borders (where the image is
    interpolated and the mask is not) each labelled pixel's colour gives back its class."""
    image, mask = _layout()
    checked, ignored, outputs = 0, 0, set()
    for seed in range(16):
        out, out_mask = augment_pair(image, mask, tf.constant([seed, 2]),
                                     crop_size=32, rotate=10, scale=2.0)
        assert out.shape == (32, 32, 3) and out_mask.shape == (32, 32)
        assert out.dtype == tf.float32 and out_mask.dtype == tf.int32
        out, out_mask = out.numpy(), out_mask.numpy()
        outputs.add(out_mask.tobytes())
        # Pixels whose 7x7 neighbourhood holds one class (padding the border with 255).
        padded = np.pad(out_mask, 3, constant_values=255)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (7, 7))
        interior = (windows == out_mask[..., None, None]).all(axis=(-1, -2)) & (out_mask != 255)
        distances = ((out[interior][:, None, :] - PALETTE[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(distances.argmin(-1), out_mask[interior])
        checked += interior.sum()
        ignored += (out_mask == 255).sum()
    assert checked > 0.2 * 16 * 32 * 32 and ignored > 0
    assert len(outputs) == 16


def test_augmentation_is_deterministic_given_the_seed():
    image, mask = _noise(30, 26)
    kwargs = dict(crop_size=20, rotate=10, scale=2.0)
    first = augment_pair(image, mask, tf.constant([3, 4]), **kwargs)
    again = augment_pair(image, mask, tf.constant([3, 4]), **kwargs)
    other = augment_pair(image, mask, tf.constant([3, 5]), **kwargs)
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    assert not np.array_equal(first[0].numpy(), other[0].numpy())


def test_no_augmentation_is_identity():
    image, mask = _noise(9, 11)
    out, out_mask = augment_pair(image, mask, tf.constant([0, 0]),
                                 rotate=0, scale=1.0, flip=False)
    # Raw RGB, exactly: the pipelines no longer divide by 255 nor normalise.
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), image.astype(np.float32))
    np.testing.assert_array_equal(out_mask.numpy(), mask)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rotate=-1), "rotate must be an int"),
        (dict(rotate=2.5), "rotate must be an int"),
        (dict(scale=0.5), "scale must be >= 1"),
        (dict(crop_size=0), "crop_size must be a positive int"),
        (dict(crop_size=(3, 4, 5)), "crop_size must be a positive int"),
    ],
)
def test_bad_arguments(kwargs, message):
    image, mask = _noise(8, 8)
    with pytest.raises(ValueError, match=message):
        augment_pair(image, mask, tf.constant([0, 0]), **kwargs)


def test_drawn_angles_are_whole_degrees_over_all_of_minus_r_to_r_and_ratios_fill_1_over_s_to_s(
        monkeypatch):
    """The documented ranges, read off the values augment_pair hands to its transforms over
    300 seeds: every integer angle of [-r, r] (both ends included) and nothing else; ratios in
    [1/s, s] reaching near both ends, about as often below 1 as U[1/s, s] says."""
    from keras_drn.data import augment as module

    angles, ratios = [], []
    monkeypatch.setattr(module, "rotate_pair",
                        lambda image, mask, angle: (angles.append(angle.numpy()), image, mask)[1:])
    monkeypatch.setattr(module, "rescale_pair",
                        lambda image, mask, ratio: (ratios.append(ratio.numpy()), image, mask)[1:])
    image, mask = _noise(4, 4)
    for seed in range(300):
        augment_pair(image, mask, tf.constant([seed, 1]), rotate=3, scale=1.5, flip=False)
    angles, ratios = np.array(angles, "float64"), np.array(ratios, "float64")
    assert len(angles) == len(ratios) == 300
    assert set(angles) == {-3, -2, -1, 0, 1, 2, 3}
    assert ratios.min() >= 1 / 1.5 and ratios.max() <= 1.5
    assert ratios.min() < 1 / 1.5 + 0.02 and ratios.max() > 1.5 - 0.02
    below = np.mean(ratios < 1)  # U[2/3, 3/2]: P(ratio < 1) = (1 - 2/3) / (3/2 - 2/3) = 0.4
    assert 0.3 < below < 0.5
