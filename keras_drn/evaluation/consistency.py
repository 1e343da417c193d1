"""Shift consistency: does a prediction stay put when the input moves by a few pixels?

The anti-aliasing papers measure it on classifiers (Zhang, "Making Convolutional Networks
Shift-Invariant Again", ICML 2019, section 4.1; Zou, Xiao, Yu, Lee, "Delving Deeper into
Anti-aliasing in ConvNets", BMVC 2020): the fraction of images whose top-1 class is the same
for two random crops of the image, offset within a margin (ImageNet: 224 crops of 256 images,
shifts up to 32 pixels). The segmentation analogue is the fraction of pixels whose predicted
label does not change when the input shifts; dilated networks without degridding (DRN-A) and
strided networks without low-pass filters are expected to score lower.

Both measures use crops of real pixels only, so no padding enters a view that the other view
sees as image content:

- ``segmentation_consistency``: for every image of side ``H x W`` and each shift ``d``, the
  crop ``[0, H - m) x [0, W - m)`` and the crop shifted diagonally by ``(d, d)``, where ``m``
  is the largest shift. Both views have the same size for every shift (one compiled shape).
  Pixel ``(y, x)`` of the first view is pixel ``(y - d, x - d)`` of the second; the labels are
  compared on the ``(H - m - d) x (W - m - d)`` overlap. A network that is exactly
  translation equivariant away from the borders scores 1 except near the crop borders; a
  network with output stride ``s`` and no anti-aliasing is equivariant only to multiples of
  ``s``, so shift 8 of an output-stride-8 DRN scores higher than shifts 1 to 7.
- ``classification_consistency``: for every image and ``trials`` times, two crops of side
  ``(H - m) x (W - m)`` at independent random offsets in ``[0, m]`` on each axis; the fraction
  of pairs with the same top-1 class.
"""

from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

DEFAULT_SHIFTS = tuple(range(1, 9))


@dataclass
class ConsistencyReport:
    """Shift consistency of a model on a set of images.

    Attributes:
        kind: ``"segmentation"`` (fraction of overlapping pixels with an unchanged label) or
            ``"classification"`` (fraction of random crop pairs with the same top-1 class).
        consistency: the overall fraction in [0, 1]: for segmentation the mean over the
            shifts of ``per_shift`` (every shift weighs the same), for classification the
            fraction over all pairs.
        per_shift: segmentation: ``{d: fraction}`` for each diagonal shift ``(d, d)``;
            classification: empty.
        images: number of images measured.
        max_shift: the margin ``m`` (the largest shift).
    """

    kind: str
    consistency: float
    per_shift: dict = field(default_factory=dict)
    images: int = 0
    max_shift: int = 0

    def __str__(self):
        if self.kind == "classification":
            return (f"top-1 shift consistency {100 * self.consistency:.2f}% ({self.images} "
                    f"images, random shifts up to {self.max_shift} pixels)")
        shifts = " ".join(f"{d}:{100 * v:.1f}" for d, v in self.per_shift.items())
        return (f"shift consistency {100 * self.consistency:.2f}% of pixels unchanged "
                f"({self.images} images; per diagonal shift (d, d), %: {shifts})")


def _predict_fn(model_or_fn, batch_size):
    """A numpy ``(n, H, W, C)`` -> numpy scores function, batched for a Keras model."""
    if isinstance(model_or_fn, keras.Model):
        def predict(images):
            outputs = [
                np.asarray(ops.convert_to_numpy(
                    model_or_fn.predict_on_batch(images[i:i + batch_size])))
                for i in range(0, len(images), batch_size)
            ]
            return np.concatenate(outputs, axis=0)
        return predict
    if not callable(model_or_fn):
        raise ValueError(f"Expected a keras.Model or a callable; received {model_or_fn!r}.")
    return lambda images: np.asarray(ops.convert_to_numpy(model_or_fn(images)))


def _check_shift(max_shift):
    if not isinstance(max_shift, (int, np.integer)) or max_shift < 1:
        raise ValueError(f"The shifts must be positive ints; received a largest shift of "
                         f"{max_shift!r}.")


def _check_batch(images, max_shift):
    images = np.asarray(ops.convert_to_numpy(images), dtype="float32")
    if images.ndim != 4:
        raise ValueError(f"images must be (batch, H, W, channels); received shape "
                         f"{images.shape}.")
    if min(images.shape[1:3]) <= 2 * max_shift:
        raise ValueError(f"Images of {images.shape[1]}x{images.shape[2]} are too small for "
                         f"shifts up to {max_shift}: each side must exceed {2 * max_shift}.")
    return images


def _batches(images, max_shift, batch_size):
    """Checked numpy batches from an array ``(n, H, W, C)`` (split in ``batch_size`` chunks)
    or from an iterable of batches (arrays, or tuples whose first element is the images, as
    a ``tf.data`` pipeline of ``(images, masks)`` yields)."""
    if hasattr(images, "shape") and hasattr(images, "dtype"):
        images = _check_batch(images, max_shift)
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
        return
    for batch in images:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        yield _check_batch(batch, max_shift)


def segmentation_consistency(model, images, shifts=DEFAULT_SHIFTS, batch_size=16):
    """Fraction of pixels whose predicted label is unchanged under diagonal input shifts.

    Args:
        model: a segmenter (a ``keras.Model``: ``(batch, h, w, 3)`` -> scores ``(batch, h,
            w, classes)`` at the input resolution, such as ``keras_drn.DRNSegmenter``) or a
            callable with that contract; labels are the argmax over the last axis.
        images: ``(n, H, W, 3)`` inputs preprocessed as the model expects, or an iterable of
            such batches (sizes may differ between batches; ``(images, masks)`` tuples are
            fine); sides larger than twice the largest shift.
        shifts: positive pixel shifts ``d``; each compares the crop at ``(0, 0)`` with the
            crop at ``(d, d)`` (see the module docstring).
        batch_size: images per ``predict_on_batch`` call when ``images`` is one array.

    Returns:
        A ``ConsistencyReport`` of kind ``"segmentation"``; ``per_shift[d]`` pools all
        overlapping pixels of all images.
    """
    shifts = tuple(int(d) for d in shifts)
    if not shifts or min(shifts) < 1:
        raise ValueError(f"shifts must be positive ints, at least one; received {shifts}.")
    margin = max(shifts)
    predict = _predict_fn(model, batch_size)
    same = dict.fromkeys(shifts, 0)
    total = dict.fromkeys(shifts, 0)
    count = 0
    for batch in _batches(images, margin, batch_size):
        height, width = batch.shape[1] - margin, batch.shape[2] - margin
        base = np.argmax(predict(batch[:, :height, :width]), axis=-1)
        if base.shape != batch.shape[:1] + (height, width):
            raise ValueError(f"A segmenter must output scores at the input resolution: crops "
                             f"of {height}x{width} gave outputs of shape {base.shape + (-1,)}.")
        for d in shifts:
            moved = np.argmax(predict(batch[:, d:d + height, d:d + width]), axis=-1)
            agree = base[:, d:, d:] == moved[:, :height - d, :width - d]
            same[d] += int(agree.sum())
            total[d] += agree.size
        count += len(batch)
    if not count:
        raise ValueError("No images to measure.")
    per_shift = {d: same[d] / total[d] for d in shifts}
    return ConsistencyReport("segmentation", float(np.mean(list(per_shift.values()))),
                             per_shift, count, margin)


def classification_consistency(model, images, max_shift=8, trials=2, seed=0, batch_size=32):
    """The anti-aliasing papers' consistency: how often two random shifts of an image get the
    same top-1 class.

    Args:
        model: a classifier (``keras.Model`` or callable: ``(batch, h, w, 3)`` -> ``(batch,
            classes)`` scores).
        images: ``(n, H, W, 3)`` inputs preprocessed as the model expects, or an iterable
            of such batches (as for ``segmentation_consistency``).
        max_shift: the margin ``m``: crops of ``(H - m) x (W - m)`` at offsets drawn
            uniformly from ``[0, m]`` on each axis, independently for the two crops.
        trials: pairs drawn per image.
        seed: seed of the offsets.
        batch_size: images per ``predict_on_batch`` call when ``images`` is one array.

    Returns:
        A ``ConsistencyReport`` of kind ``"classification"``.
    """
    _check_shift(max_shift)
    predict = _predict_fn(model, batch_size)
    rng = np.random.default_rng(seed)
    agree = []
    for batch in _batches(images, max_shift, batch_size):
        height, width = batch.shape[1] - max_shift, batch.shape[2] - max_shift
        for _ in range(trials):
            tops = []
            for _ in range(2):
                offsets = rng.integers(0, max_shift + 1, size=(len(batch), 2))
                crops = np.stack([image[y:y + height, x:x + width]
                                  for image, (y, x) in zip(batch, offsets)])
                scores = predict(crops)
                if scores.ndim != 2:
                    raise ValueError(f"A classifier must output (batch, classes) scores; "
                                     f"received shape {scores.shape}.")
                tops.append(np.argmax(scores, axis=-1))
            agree.append(tops[0] == tops[1])
    if not agree:
        raise ValueError("No images to measure.")
    agree = np.concatenate(agree)
    return ConsistencyReport("classification", float(agree.mean()), {},
                             len(agree) // trials, max_shift)


def output_rank(model):
    """The rank of a Keras model's output: 4 for a segmenter, 2 for a classifier."""
    output = model.outputs[0] if getattr(model, "outputs", None) else model.output
    return len(output.shape)


def shift_consistency(model, images, shifts=DEFAULT_SHIFTS, trials=2, seed=0, batch_size=16):
    """``segmentation_consistency`` or ``classification_consistency`` by the rank of the
    Keras model's output (4: per-pixel scores, 2: class scores); a classifier's margin is the
    largest of ``shifts``."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"shift_consistency needs a keras.Model to tell a segmenter from a "
                         f"classifier; received {model!r}. Call segmentation_consistency or "
                         "classification_consistency with a callable.")
    shifts = tuple(int(d) for d in shifts)
    rank = output_rank(model)
    if rank == 4:
        return segmentation_consistency(model, images, shifts, batch_size=batch_size)
    if rank == 2:
        _check_shift(max(shifts or (0,)))
        return classification_consistency(model, images, max(shifts), trials=trials,
                                          seed=seed, batch_size=batch_size)
    raise ValueError(f"Expected a segmenter (output rank 4) or a classifier (rank 2); the "
                     f"output of {model.name!r} has rank {rank}.")
