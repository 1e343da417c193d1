"""Dice (F1) and IoU scores for segmentation with the ignore label, accumulated over batches:
``DiceScore`` and ``IoUScore``, ``keras.metrics.Metric`` subclasses for ``model.compile``.

Both keep per-class true-positive, false-positive and false-negative pixel counts over every
batch since the last reset. Per class ``c``: Dice = ``2 TP / (2 TP + FP + FN)``, IoU =
``TP / (TP + FP + FN)``.

- ``per_image=False`` (default): the dataset-level score of the pooled counts; ``result()``
  is the mean over the scored classes with ``TP + FP + FN > 0`` (classes in neither labels
  nor predictions are left out, as ``np.nanmean`` in ``keras_drn.evaluation``), and 1.0 when
  no scored class occurs at all (an empty prediction of an empty mask is right).
- ``per_image=True``: each image and class scored alone, 1 where the class is neither
  labelled nor predicted in that image, then the mean over images and scored classes: the
  "mean Dice over image-class pairs" of Kaggle leaderboards (SIIM-ACR, Severstal).

``per_class()`` gives every class's score as numpy, NaN where undefined.

Why not Keras's own (3.15): ``keras.metrics.F1Score`` is for (batch, classes) multi-label
outputs without an ignore label; ``keras.metrics.BinaryIoU`` thresholds the raw values (no
sigmoid of logits) and has no ignore label; ``MeanIoU`` has no Dice. Counts are int64 on
TensorFlow and torch and int32 on JAX (without ``jax_enable_x64``): exact up to 2**31 pixels
per class between resets there.
"""

import keras
import numpy as np
from keras import ops

from keras_drn.constants import IGNORE_LABEL


def _count_dtype():
    """int64, or int32 where JAX runs without x64 (it would truncate int64, with a warning)."""
    if keras.backend.backend() == "jax":
        import jax

        return "int64" if jax.config.jax_enable_x64 else "int32"
    return "int64"


class _OverlapScore(keras.metrics.Metric):
    """Per-class TP / FP / FN counts; subclasses define the score of the counts."""

    def __init__(self, num_classes, ignore_class=IGNORE_LABEL, from_logits=True, threshold=0.5,
                 target_class_ids=None, per_image=False, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"num_classes must be 1 (binary masks, one score per pixel) or the number of "
                f"classes >= 2, got {num_classes!r}."
            )
        if ignore_class is not None and (isinstance(ignore_class, bool)
                                         or not isinstance(ignore_class, int)):
            raise ValueError(f"ignore_class must be an integer or None, got {ignore_class!r}.")
        if not isinstance(from_logits, bool):
            raise ValueError(f"from_logits must be True or False, got {from_logits!r}.")
        if not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold!r}.")
        scored = 1 if num_classes == 1 else num_classes
        if target_class_ids is not None:
            target_class_ids = [int(c) for c in target_class_ids]
            if not target_class_ids or not all(0 <= c < scored for c in target_class_ids):
                raise ValueError(
                    f"target_class_ids must be a non-empty list of ids in [0, {scored}), got "
                    f"{target_class_ids!r}" + (" (binary: only the foreground, 0, is scored)."
                                               if num_classes == 1 else ".")
                )
        self.num_classes = num_classes
        self.ignore_class = ignore_class
        self.from_logits = from_logits
        self.threshold = float(threshold)
        self.target_class_ids = target_class_ids
        self.per_image = bool(per_image)
        counts = _count_dtype()
        self.true_positives = self.add_variable((scored,), "zeros", counts, name="tp")
        self.false_positives = self.add_variable((scored,), "zeros", counts, name="fp")
        self.false_negatives = self.add_variable((scored,), "zeros", counts, name="fn")
        # per_image: the sum over images of each class's score (1 where empty and predicted
        # empty), and the number of images.
        self.image_scores = self.add_variable((scored,), "zeros", "float32", name="image_scores")
        self.images = self.add_variable((), "zeros", "float32", name="images")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """``y_true``: ``(batch, H, W)`` or ``(batch, H, W, 1)`` labels; ``y_pred``: ``(batch,
        H, W, num_classes)`` scores (argmax), or for ``num_classes=1`` ``(batch, H, W, 1)``
        logits (sigmoid > threshold) or probabilities (> threshold). Labels equal to
        ``ignore_class`` or outside the class range are left out."""
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} counts pixels and takes no sample_weight; mark pixels "
                f"to leave out with the ignore label ({self.ignore_class}) instead."
            )
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_true.shape) == 4 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        channels = 1 if self.num_classes == 1 else self.num_classes
        if len(y_pred.shape) != 4 or y_pred.shape[-1] != channels:
            raise ValueError(
                f"{type(self).__name__}(num_classes={self.num_classes}) expects y_pred of shape "
                f"(batch, H, W, {channels}), got {y_pred.shape}."
            )
        labels = ops.cast(y_true, "int32")
        if self.num_classes == 1:
            scores = ops.cast(y_pred[..., 0], "float32")
            if self.from_logits:
                scores = ops.sigmoid(scores)
            predicted = ops.cast(scores > self.threshold, "int32")
            classes, offset = 2, 1
        else:
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
            classes, offset = self.num_classes, 0
        valid = (labels >= 0) & (labels < classes)
        if self.ignore_class is not None:
            valid = valid & ops.not_equal(labels, self.ignore_class)
        dtype = self.true_positives.dtype
        valid = ops.cast(valid, dtype)[..., None]
        truth = ops.one_hot(ops.where(valid[..., 0] > 0, labels, 0), classes, dtype=dtype)
        guess = ops.one_hot(predicted, classes, dtype=dtype)
        truth, guess = truth[..., offset:] * valid, guess[..., offset:] * valid
        hits = ops.sum(truth * guess, axis=(1, 2))  # (batch, classes)
        false_positives = ops.sum(guess, axis=(1, 2)) - hits
        false_negatives = ops.sum(truth, axis=(1, 2)) - hits
        self.true_positives.assign_add(ops.sum(hits, axis=0))
        self.false_positives.assign_add(ops.sum(false_positives, axis=0))
        self.false_negatives.assign_add(ops.sum(false_negatives, axis=0))
        if self.per_image:
            tp, fp, fn = (ops.cast(v, "float32") for v in (hits, false_positives,
                                                            false_negatives))
            scores = ops.where(tp + fp + fn > 0, self._scores(tp, fp, fn), 1.0)
            self.image_scores.assign_add(ops.sum(scores, axis=0))
            self.images.assign_add(ops.cast(ops.shape(hits)[0], "float32"))

    def _scores(self, tp, fp, fn):
        raise NotImplementedError

    def _counts(self):
        return [ops.cast(v, "float32") for v in
                (self.true_positives, self.false_positives, self.false_negatives)]

    def result(self):
        if self.per_image:
            scores = self.image_scores / ops.maximum(self.images, 1.0)
            weights = ops.ones_like(scores) * ops.cast(self.images > 0, "float32")
        else:
            tp, fp, fn = self._counts()
            occurs = (tp + fp + fn) > 0
            scores = ops.where(occurs, self._scores(tp, fp, fn), 0.0)
            weights = ops.cast(occurs, "float32")
        if self.target_class_ids is not None:
            chosen = [1.0 if c in self.target_class_ids else 0.0 for c in range(scores.shape[0])]
            weights = weights * ops.convert_to_tensor(chosen, "float32")
        counted = ops.sum(weights)
        return ops.where(counted > 0, ops.sum(scores * weights) / ops.maximum(counted, 1.0), 1.0)

    def per_class(self):
        """``(classes,)`` float64 numpy scores (binary: the foreground's alone), NaN for a
        class in neither labels nor predictions (per_image: the mean over images, NaN
        before any image)."""
        if self.per_image:
            images = float(ops.convert_to_numpy(self.images))
            scores = np.asarray(ops.convert_to_numpy(self.image_scores), "float64")
            return scores / images if images else np.full(scores.shape, np.nan)
        tp, fp, fn = (np.asarray(ops.convert_to_numpy(v), "float64") for v in
                      (self.true_positives, self.false_positives, self.false_negatives))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(tp + fp + fn > 0, self._scores(tp, fp, fn), np.nan)

    def reset_state(self):
        for variable in (self.true_positives, self.false_positives, self.false_negatives,
                         self.image_scores, self.images):
            variable.assign(ops.zeros(variable.shape, variable.dtype))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_class": self.ignore_class, "from_logits": self.from_logits,
                "threshold": self.threshold, "target_class_ids": self.target_class_ids,
                "per_image": self.per_image}


@keras.saving.register_keras_serializable(package="keras_drn")
class DiceScore(_OverlapScore):
    """Dice / F1 score ``2 TP / (2 TP + FP + FN)`` per class, and their mean (``result``).

    Args:
        num_classes: classes of a multi-class model (``>= 2``; prediction = argmax of its
            ``num_classes`` scores), or 1 for binary masks (one logit or probability per
            pixel; prediction = ``sigmoid(x) > threshold`` for logits, ``p > threshold``
            otherwise; the foreground class 1 is scored).
        ignore_class: label left out (default 255; None for none).
        from_logits: binary scores are logits (default) or probabilities.
        threshold: binary decision threshold on the probability (default 0.5).
        target_class_ids: classes the mean runs over (default all; for example all but the
            background 0).
        per_image: False (default): the score of the pooled counts; True: each image and
            class scored alone (1 when the class is neither labelled nor predicted there),
            then the mean over images and classes: the "mean Dice over image-class pairs"
            of Kaggle leaderboards (SIIM-ACR, Severstal).
    """

    def __init__(self, num_classes, ignore_class=IGNORE_LABEL, from_logits=True, threshold=0.5,
                 target_class_ids=None, per_image=False, name="dice", dtype=None):
        super().__init__(num_classes, ignore_class, from_logits, threshold, target_class_ids,
                         per_image, name=name, dtype=dtype)

    def _scores(self, tp, fp, fn):
        return 2 * tp / (2 * tp + fp + fn)


@keras.saving.register_keras_serializable(package="keras_drn")
class IoUScore(_OverlapScore):
    """Jaccard index ``TP / (TP + FP + FN)`` per class, and their mean (``result``); the
    arguments are ``DiceScore``'s. With ``num_classes=1``: the foreground IoU of binary masks
    from logits, with the ignore label (what ``keras.metrics.BinaryIoU`` cannot do)."""

    def __init__(self, num_classes, ignore_class=IGNORE_LABEL, from_logits=True, threshold=0.5,
                 target_class_ids=None, per_image=False, name="iou", dtype=None):
        super().__init__(num_classes, ignore_class, from_logits, threshold, target_class_ids,
                         per_image, name=name, dtype=dtype)

    def _scores(self, tp, fp, fn):
        return tp / (tp + fp + fn)
