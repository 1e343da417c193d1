"""Segmentation scores as the DRN reference computes them (``segment.py``): a confusion matrix
over labels in ``[0, classes)`` (the ignore label 255 and any other value dropped), IoU per
class = diag / (row + col - diag), mIoU = the mean over classes that occur (nanmean); and the
reference's multi-scale test (``test_ms``), with optional flipping."""

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_drn.constants import IGNORE_LABEL  # re-exported: keras_drn.evaluation.IGNORE_LABEL

# segment.py test_ms: the image itself plus scales 0.5, 0.75, 1.25, 1.5, 1.75.
MULTI_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def confusion_matrix(labels, predictions, num_classes, misses=False):
    """``(num_classes, num_classes)`` int64 counts, rows = ground truth, columns = prediction.

    ``labels`` and ``predictions`` are integer arrays of the same shape; labels outside
    ``[0, num_classes)`` (such as 255) are ignored. A labelled pixel predicted outside
    ``[0, num_classes)`` (255, say) has no column: with ``misses=True`` it is counted as the
    official Cityscapes evaluation counts it, as a miss of its true class, in an extra last
    column (the matrix is then ``(num_classes, num_classes + 1)``; ``iou_per_class``,
    ``dice_per_class`` and ``iou_table`` take it: that class's IoU drops and no other
    changes). Without ``misses`` such a pixel is refused (ValueError naming the value).
    """
    labels = np.asarray(labels).reshape(-1).astype("int64")
    predictions = np.asarray(predictions).reshape(-1).astype("int64")
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions differ in size: {labels.size} vs {predictions.size}."
        )
    keep = (labels >= 0) & (labels < num_classes)
    labels, predictions = labels[keep], predictions[keep]
    outside = (predictions < 0) | (predictions >= num_classes)
    if outside.any() and not misses:
        raise ValueError(
            f"{int(outside.sum())} labelled pixel(s) are predicted {predictions[outside][0]}, "
            f"outside [0, {num_classes}): pass misses=True to count them as misses of their "
            "true class (as the Cityscapes evaluation does), or fix the predictions."
        )
    columns = num_classes + 1 if misses else num_classes
    index = columns * labels + np.where(outside, num_classes, predictions)
    return np.bincount(index, minlength=num_classes * columns).reshape(num_classes, columns)


def _parts(confusion):
    """``(square part, row totals)`` of a ``(C, C)`` or ``(C, C + 1)`` (misses) matrix."""
    confusion = np.asarray(confusion, dtype="float64")
    classes = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape[1] not in (classes, classes + 1):
        raise ValueError(f"A confusion matrix is (C, C) or (C, C + 1) (misses); received "
                         f"shape {confusion.shape}.")
    return confusion[:, :classes], confusion.sum(axis=1)


def iou_per_class(confusion):
    """IoU of every class (NaN for a class absent from both labels and predictions); a
    ``(C, C + 1)`` matrix's last column (``confusion_matrix(..., misses=True)``) counts in its
    row's total only."""
    square, rows = _parts(confusion)
    diag = np.diag(square)
    union = square.sum(axis=0) + rows - diag
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, diag / union, np.nan)


def iou_table(confusion, class_names=None):
    """Printable per-class IoU table with the mIoU as its last line."""
    ious = iou_per_class(confusion)
    names = class_names or [f"class {i}" for i in range(len(ious))]
    width = max(len(n) for n in names)
    lines = [f"{name:<{width}}  {100 * iou:6.2f}" for name, iou in zip(names, ious)]
    lines.append(f"{'mIoU':<{width}}  {100 * np.nanmean(ious):6.2f}")
    return "\n".join(lines)


def segmentation_miou(num_classes, name="miou", ignore_label=IGNORE_LABEL):
    """Keras's MeanIoU on logits with the ignore label: a metric for ``model.compile``.

    ``y_true``: ``(batch, H, W)`` labels; ``y_pred``: ``(batch, H, W, num_classes)`` logits.
    Pixels labelled ``ignore_label`` (or outside ``[0, num_classes)``) are dropped and the
    mean runs over the classes present in labels or predictions, as ``np.nanmean`` of
    ``iou_per_class``. Checked against the numpy confusion matrix on every backend, eagerly
    and inside compiled ``evaluate`` (an earlier Keras 3 failed on JAX under jit with
    ``ignore_class``: keras issue 19524, fixed in 2024). Its counts are int32 on JAX and torch
    (int64 on TensorFlow), so a single cell overflows past 2**31 pixels between resets (one
    epoch); ``evaluate_segmenter`` counts in int64 numpy for final numbers.
    """
    return keras.metrics.MeanIoU(
        num_classes, ignore_class=ignore_label, sparse_y_pred=False, name=name
    )


def _scaled_size(height, width, scale):
    # segment.py: PIL resize to (int(w * s), int(h * s)).
    return max(1, int(height * scale)), max(1, int(width * scale))


def dice_per_class(confusion):
    """Dice (F1) per class from a confusion matrix: ``2 diag / (row + col)`` (NaN where a
    class is in neither labels nor predictions); takes ``iou_per_class``'s shapes."""
    square, rows = _parts(confusion)
    total = square.sum(axis=0) + rows
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * np.diag(square) / total, np.nan)


def multi_scale_predict(model, image, scales=MULTI_SCALES, flip=True, return_scores=False,
                        threshold=0.5):
    """Multi-scale (and flipped) inference, the DRN reference's ``test_ms`` (``segment.py``).

    For each scale ``s`` the image is resized bicubically to ``(int(H * s), int(W * s))``,
    the model's logits become log-probabilities (log-softmax, the output of the reference's
    DRNSeg), which are resized bilinearly back to ``(H, W)`` and summed over the scales.
    With ``flip`` the horizontally flipped image is run too and its scores, flipped back,
    are added: the reference does not flip (``flip=False`` reproduces it); flipping is the
    common extra step.

    Resizing uses ``keras.ops.image.resize(..., antialias=True)``, which equals PIL's
    ``resize`` (used by the reference) to ~1e-6 on every backend, up and down (checked);
    without antialias, torch's bicubic (a = -0.75) is off by up to ~0.25 and every backend's
    downscaling skips PIL's low-pass. One deliberate difference: for a scaled size that is
    not a multiple of 8 the reference resizes its ``8 * ceil(h / 8)`` output (a few rows
    past the image); ``DRNSegmenter`` crops its output to the image first, so the scales line
    up exactly.

    Args:
        model: a segmenter: ``(batch, h, w, 3)`` -> logits ``(batch, h, w, classes)`` at
            the input resolution (``keras_drn.DRNSegmenter``).
        image: ``(H, W, 3)`` or a batch ``(batch, H, W, 3)`` of same-size images as the
            model takes them: raw 0-255 RGB for the models keras_drn's workflows write (they
            normalise inside, as the reference normalises after resizing the 0-255 image).
        scales: scale factors (default the reference's 0.5, 0.75, 1, 1.25, 1.5, 1.75).
        flip: add horizontally flipped predictions.
        return_scores: return the summed log-probabilities instead of the labels.
        threshold: for a binary model (one logit per pixel, ``num_classes=1``): the object
            probability above which a pixel is labelled 1. Its views are combined as the
            mean of their sigmoid probabilities, and ``return_scores`` returns that mean.

    Returns:
        numpy labels ``(H, W)`` / ``(batch, H, W)`` (int), or with ``return_scores`` the
        summed scores ``(H, W, classes)`` / ``(batch, H, W, classes)`` (float32).
    """
    x = np.asarray(ops.convert_to_numpy(image), dtype="float32")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"image must be (H, W, 3) or (batch, H, W, 3); received shape {x.shape}."
        )
    if not scales:
        raise ValueError(f"scales must name at least one scale; received scales={scales!r}.")
    single = x.ndim == 3
    if single:
        x = x[None]
    batch, height, width = x.shape[:3]
    total, views = None, 0
    for scale in scales:
        size = _scaled_size(height, width, scale)
        resize = size != (height, width)
        view = x
        if resize:
            view = ops.image.resize(x, size, interpolation="bicubic", antialias=True)
        if flip:
            view = ops.concatenate([view, ops.flip(view, axis=2)], axis=0)
        logits = ops.convert_to_tensor(model.predict_on_batch(view), "float32")
        binary = logits.shape[-1] == 1
        scores = ops.sigmoid(logits) if binary else ops.log_softmax(logits, axis=-1)
        views += 2 if flip else 1
        if flip:
            scores = scores[:batch] + ops.flip(scores[batch:], axis=2)
        if resize:
            scores = ops.image.resize(
                scores, (height, width), interpolation="bilinear", antialias=True
            )
        total = scores if total is None else total + scores
    total = np.asarray(ops.convert_to_numpy(total))
    if binary:
        total = total / views  # the mean object probability
        result = total if return_scores else (total[..., 0] > threshold).astype("int64")
    else:
        result = total if return_scores else np.argmax(total, axis=-1)
    return result[0] if single else result


@dataclass
class SegmentationReport:
    """Scores of a segmenter on a labelled set (``evaluate_segmenter``).

    Attributes:
        confusion: ``(classes, classes)`` int64 counts, rows = ground truth.
        iou: ``(classes,)`` IoU per class (NaN for a class in neither labels nor predictions).
        miou: mean IoU over the classes that occur (nanmean), in [0, 1].
        pixel_accuracy: correct / labelled pixels (ignore label excluded), in [0, 1].
        table: printable per-class IoU (%) table ending with the mIoU (``iou_table``), and for
            a binary model the object's Dice.
        dice: ``(classes,)`` Dice (F1) per class (``dice_per_class``).
    """

    confusion: np.ndarray
    iou: np.ndarray
    miou: float
    pixel_accuracy: float
    table: str
    dice: np.ndarray = None

    def __str__(self):
        return self.table


def evaluate_segmenter(model, dataset, num_classes, scales=(1.0,), flip=False, class_names=None,
                       threshold=0.5, name=None):
    """Scores a segmenter on ``(image, mask)`` batches as ``segment.py`` does.

    Args:
        model: a segmenter returning logits at the input resolution.
        dataset: an iterable of ``(images, masks)`` batches: a ``tf.data.Dataset``, a list
            of numpy pairs, a loader of tensors. ``images``: ``(batch, H, W, 3)`` as the model
            takes them (raw 0-255 for models that carry their normalisation);
            ``masks``: ``(batch, H, W)`` or ``(batch, H, W, 1)`` labels, 255 (or anything
            outside ``[0, num_classes)``) ignored. Extra elements (sample weights) are unused.
        num_classes: number of classes; 1 for a binary model (one logit per pixel, masks
            0/1): it is scored as the two classes background and object.
        scales, flip: the multi-scale protocol of ``multi_scale_predict``; the default
            ``(1.0,)`` without flip is plain single-scale inference.
        class_names: names for the table (default ``class 0``, ...; binary: background,
            object).
        threshold: object probability threshold of a binary model.
        name: what ``dataset`` is, for messages (``SegmentationData.name``).

    Returns:
        A ``SegmentationReport`` from the confusion matrix accumulated over all pixels.

    Raises:
        ValueError: no mask of ``dataset`` has a labelled pixel (every pixel is the ignore
            label or outside the classes): there is nothing to score, the mIoU would be NaN.
    """
    binary = num_classes == 1
    if binary:
        num_classes = 2
        class_names = ("background", class_names[-1] if class_names else "object")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names for {num_classes} classes: "
            f"{list(class_names)!r}."
        )
    confusion = np.zeros((num_classes, num_classes), dtype="int64")
    masks_seen = 0
    for batch in dataset:
        images, masks = batch[0], batch[1]
        masks = np.asarray(ops.convert_to_numpy(masks))
        if masks.ndim == 4 and masks.shape[-1] == 1:
            masks = masks[..., 0]
        masks_seen += len(masks)
        predictions = multi_scale_predict(model, images, scales=scales, flip=flip,
                                          threshold=threshold)
        if predictions.size and predictions.max() >= num_classes:
            raise ValueError(
                f"The model predicts class {predictions.max()}, beyond num_classes="
                f"{num_classes}: its logits have more channels than num_classes."
            )
        confusion += confusion_matrix(masks, predictions, num_classes)
    labelled = confusion.sum()
    if not labelled:
        values = "0 or 1" if binary else f"in [0, {num_classes})"
        raise ValueError(
            f"{name or 'The evaluation data'}: none of its {masks_seen} mask(s) has a pixel "
            f"labelled {values}; every pixel is the ignore label {IGNORE_LABEL} (or outside the "
            "classes), so there is nothing to score (the mIoU would be NaN). Check its masks.")
    ious = iou_per_class(confusion)
    dice = dice_per_class(confusion)
    table = iou_table(confusion, class_names)
    if binary:
        table += f"\n{'Dice (' + class_names[1] + ')':<12}  {100 * dice[1]:6.2f}"
    return SegmentationReport(
        confusion=confusion,
        iou=ious,
        miou=float(np.nanmean(ious)) if np.any(np.isfinite(ious)) else float("nan"),
        pixel_accuracy=float(np.trace(confusion) / labelled) if labelled else float("nan"),
        table=table,
        dice=dice,
    )
