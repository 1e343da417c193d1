"""Segmentation scores as the DRN reference computes them (``segment.py``): a confusion matrix
over labels in ``[0, classes)`` (the ignore label 255 and any other value dropped), IoU per
class = diag / (row + col - diag), mIoU = the mean over classes that occur (nanmean)."""

import keras
import numpy as np

IGNORE_LABEL = 255


def confusion_matrix(labels, predictions, num_classes):
    """``(num_classes, num_classes)`` int64 counts, rows = ground truth, columns = prediction.

    ``labels`` and ``predictions`` are integer arrays of the same shape; labels outside
    ``[0, num_classes)`` (such as 255) are ignored.
    """
    labels = np.asarray(labels).reshape(-1).astype("int64")
    predictions = np.asarray(predictions).reshape(-1).astype("int64")
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions differ in size: {labels.size} vs {predictions.size}."
        )
    keep = (labels >= 0) & (labels < num_classes)
    index = num_classes * labels[keep] + predictions[keep]
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(confusion):
    """IoU of every class (NaN for a class absent from both labels and predictions)."""
    confusion = np.asarray(confusion, dtype="float64")
    diag = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - diag
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


def segmentation_miou(num_classes, name="miou"):
    """Keras's MeanIoU on logits with the ignore label: a metric for ``model.compile``."""
    return keras.metrics.MeanIoU(
        num_classes, ignore_class=IGNORE_LABEL, sparse_y_pred=False, name=name
    )
