"""Segmentation losses of Kaggle-style training, with the ignore label: Dice, Lovász-Softmax,
Lovász hinge, focal, and a weighted sum of losses (BCE + Dice, CE + Lovász, ...).

Inputs, for every loss here:

- ``y_true``: integer masks ``(batch, H, W)`` or ``(batch, H, W, 1)``: class ids in
  ``[0, C)`` for ``C`` classes, ``0``/``1`` for a binary mask, and ``ignore_class`` (default
  ``IGNORE_LABEL`` = 255; ``None`` for none) for pixels left out. Ignored pixels contribute
  nothing to the value nor to the gradient (their scores are replaced by 0 before any
  arithmetic, so even a NaN there stays out). Any other value (a 2 for a binary model, a 19
  for 19 classes) is refused: the loss raises naming it, from inside the compiled step too
  (TensorFlow: an ``Assert`` op, an ``InvalidArgumentError`` carrying the message; JAX: a
  host callback, whose ``ValueError`` arrives wrapped in a ``JaxRuntimeError``; PyTorch: a
  ``ValueError``). One exception: TensorFlow compiles ``Assert`` out under XLA
  (``jit_compile=True``; Keras's "auto" picks it on a GPU), where the check does not run;
  ``keras_drn.data.segmentation_pipeline`` checks its masks in any case.
- ``y_pred``: ``(batch, H, W, C)`` scores, logits (``from_logits=True``, the default) or
  probabilities; ``C == 1`` is a binary model (one logit per pixel, sigmoid), ``C >= 2`` a
  multi-class one (softmax).

Each loss casts the scores to float32 first (under ``mixed_float16`` / ``mixed_bfloat16`` the
loss, its sort and its sums run in float32) and returns a float32 scalar for the whole batch.
Losses defined on a whole batch (Dice, Lovász) have no per-sample weights, so a
``sample_weight`` is refused rather than silently misapplied; ``FocalLoss`` takes per-sample
``(batch,)`` or per-pixel ``(batch, H, W)`` weights. Under TensorFlow's ``MirroredStrategy``
each replica computes the loss on its own part of the batch (the Dice and Lovász terms of a
replica's images; JAX's ``DataParallel`` sees the global batch) and, as Keras's own losses,
divides it by the number of replicas, whose gradients are summed.

Why not Keras's own (3.15): ``keras.losses.Dice`` has no ignore label, no smoothing term and
no per-class mean; ``keras.losses.CategoricalFocalCrossentropy`` / ``BinaryFocalCrossentropy``
have no ignore label and clip probabilities to ``[1e-7, 1 - 1e-7]`` before the log, which caps
the loss at 16.1 and zeroes the gradient of confidently wrong pixels, the hard examples focal
loss is for (here: log-softmax / log-sigmoid); Keras has no Lovász loss, and
``keras.losses.BinaryCrossentropy`` has no ignore label (``FocalLoss(gamma=0)`` is the
cross-entropy, binary or multi-class, with the ignore label).

References: Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: a tractable surrogate
for the optimization of the intersection-over-union measure in neural networks", CVPR 2018
(Alg. 1, Eq. 9-12; reference code github bermanmaxim/LovaszSoftmax); Lin, Goyal, Girshick, He,
Dollár, "Focal Loss for Dense Object Detection", ICCV 2017 (Eq. 5); Milletari, Navab, Ahmadi,
"V-Net", 3DV 2016 (soft Dice).
"""

import functools

import keras
from keras import ops

from keras_drn.constants import IGNORE_LABEL

LOVASZ_CLASSES = ("present", "all")


def _check_from_logits(from_logits):
    if not isinstance(from_logits, bool):
        raise ValueError(f"from_logits must be True or False, got {from_logits!r}.")
    return from_logits


def _check_ignore_class(ignore_class):
    if ignore_class is not None and (isinstance(ignore_class, bool)
                                     or not isinstance(ignore_class, int)):
        raise ValueError(
            f"ignore_class must be an integer label (such as 255) or None, got "
            f"{ignore_class!r}."
        )
    return ignore_class


def _label_error(name, value, classes, ignore_class, binary):
    if binary:
        allowed = "0 or 1 (a binary model: one logit per pixel)"
        fix = "remap the masks (a 0/255 mask: 255 is the object, divide it by 255)"
    else:
        allowed = f"in [0, {classes})"
        fix = "compile for as many classes as the masks hold, or map the value to the ignore label"
    ignore = "" if ignore_class is None else f" or {ignore_class} (ignore)"
    return f"{name}: a mask holds the label {value}; labels must be {allowed}{ignore}: {fix}."


def _raise_for_labels(count, value, name, classes, ignore_class, binary):
    if int(count):
        raise ValueError(_label_error(name, int(value), classes, ignore_class, binary))


def checked_labels(labels, classes, ignore_class, name, binary=False):
    """``labels`` (integers), after a check that every one is in ``[0, classes)`` (``binary``:
    0 or 1) or ``ignore_class``; raises naming a bad value otherwise, eagerly and inside
    compiled steps (module docstring: all backends, except TensorFlow under XLA)."""
    classes = 2 if binary else classes
    bad = (labels < 0) | (labels >= classes)
    if ignore_class is not None:
        bad = bad & ops.not_equal(labels, ignore_class)
    count = ops.sum(ops.cast(bad, "int32"))
    value = ops.max(ops.where(bad, labels, -(2**31)))
    fail = functools.partial(_raise_for_labels, name=name, classes=classes,
                             ignore_class=ignore_class, binary=binary)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.executing_eagerly():
            fail(count, value)
            return labels
        head, tail = _label_error(name, "@", classes, ignore_class, binary).split("@")
        check = tf.debugging.Assert(tf.equal(count, 0), [head, value, tail])
        with tf.control_dependencies([check]):
            return tf.identity(labels)
    if backend == "jax":
        import jax

        if isinstance(count, jax.core.Tracer):
            jax.debug.callback(fail, count, value)
        else:
            fail(count, value)
        return labels
    if backend == "torch" and count.device.type == "meta":  # shapes only: nothing to check
        return labels
    fail(ops.convert_to_numpy(count), ops.convert_to_numpy(value))
    return labels


def _prepare(y_true, y_pred, ignore_class, name):
    """``(labels, valid, scores)``: int32 ``(B, H, W)`` labels (ignored ones set to 0), float32
    ``(B, H, W)`` 1/0 validity, float32 ``(B, H, W, C)`` scores (0 at ignored pixels)."""
    scores = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    y_true = ops.convert_to_tensor(y_true)
    if len(scores.shape) != 4:
        raise ValueError(
            f"{name}: y_pred must be (batch, H, W, classes) scores, got shape {scores.shape}."
        )
    labels = y_true
    if len(labels.shape) == 4 and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    if len(labels.shape) != 3:
        raise ValueError(
            f"{name}: y_true must be (batch, H, W) or (batch, H, W, 1) integer masks, got "
            f"shape {y_true.shape}."
        )
    labels = ops.cast(ops.round(ops.cast(labels, "float32")), "int32")
    labels = checked_labels(labels, scores.shape[-1], ignore_class, name,
                            binary=scores.shape[-1] == 1)
    if ignore_class is None:
        valid = ops.ones_like(labels, dtype="bool")
    else:
        valid = ops.not_equal(labels, ignore_class)
    labels = ops.where(valid, labels, 0)
    scores = ops.where(valid[..., None], scores, 0.0)
    return labels, ops.cast(valid, "float32"), scores


def _probabilities(scores, from_logits):
    """Per-class probabilities ``(B, H, W, K)``: softmax of ``C >= 2`` logits, or
    ``(1 - p, p)`` for one sigmoid logit (binary)."""
    if scores.shape[-1] == 1:
        positive = ops.sigmoid(scores) if from_logits else scores
        return ops.concatenate([1.0 - positive, positive], axis=-1)
    return ops.softmax(scores, axis=-1) if from_logits else scores


def _groups(x, per_image):
    """``(B, H, W, K)`` -> ``(G, N, K)``: one group per image, or the whole batch as one."""
    if per_image:
        return ops.reshape(x, (ops.shape(x)[0], -1, x.shape[-1]))
    return ops.reshape(x, (1, -1, x.shape[-1]))


def lovasz_extension(errors, foreground, valid):
    """The Lovász extension of the Jaccard loss at ``errors`` (Berman et al., Alg. 1 and
    Eq. 9), for every group and class at once.

    ``errors``, ``foreground`` (0/1), ``valid`` (0/1): ``(G, N, K)`` float32 (``valid`` may be
    ``(G, N, 1)``); returns ``(G, K)``. Errors are sorted in decreasing order along ``N``; the
    weight of the ``i``-th is the increase of the Jaccard loss ``1 - |fg \\ top_i| / |fg U
    top_i|`` when pixel ``i`` joins the ``i - 1`` largest. Invalid pixels are counted in
    neither the intersection nor the union, so their weight is exactly 0 wherever the sort
    puts them (no data-dependent shapes: works under jit). A group and class with no valid
    pixel gives 0.
    """
    valid = valid * ops.ones_like(errors)
    order = ops.argsort(-errors, axis=1)
    errors_sorted = ops.take_along_axis(errors, order, axis=1)
    foreground = ops.cast(foreground * valid, "int32")
    foreground_sorted = ops.take_along_axis(foreground, order, axis=1)
    valid_sorted = ops.take_along_axis(ops.cast(valid, "int32"), order, axis=1)
    # Integer running counts: exact past 2**24 pixels, where float32 sums would round.
    total = ops.sum(foreground, axis=1, keepdims=True)
    intersection = total - ops.cumsum(foreground_sorted, axis=1)
    union = total + ops.cumsum(valid_sorted - foreground_sorted, axis=1)
    intersection = ops.cast(intersection, "float32")
    union = ops.cast(union, "float32")
    jaccard = ops.where(union > 0, 1.0 - intersection / ops.maximum(union, 1.0), 0.0)
    weights = ops.concatenate([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=1)
    errors_sorted = errors_sorted * ops.cast(valid_sorted, "float32")
    return ops.sum(errors_sorted * weights, axis=1)


def _per_replica(value):
    """``value`` divided by the replicas of a TensorFlow distribution strategy, as Keras's own
    losses do (its ``scale_loss_for_distribution`` is private, and skipped for a loss that is
    already a scalar): ``MirroredStrategy`` sums the replicas' gradients."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            value = value / replicas
    return value


class _BatchLoss(keras.losses.Loss):
    """A loss defined on the whole batch: ``sample_weight`` refused, config of its own."""

    def __init__(self, from_logits=True, ignore_class=IGNORE_LABEL, name=None):
        super().__init__(name=name, dtype="float32")
        self.from_logits = _check_from_logits(from_logits)
        self.ignore_class = _check_ignore_class(ignore_class)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} is computed over the whole batch and takes no "
                "sample_weight; drop the sample weights (or class_weight) for this loss, or "
                "use FocalLoss, which takes per-sample and per-pixel weights."
            )
        return _per_replica(super().__call__(y_true, y_pred))

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}


@keras.saving.register_keras_serializable(package="keras_drn")
class DiceLoss(_BatchLoss):
    """Soft Dice loss: ``1 - mean over classes of (2 sum(p y) + smooth) / (sum p + sum y +
    smooth)``, sums over every valid pixel of the batch (Milletari et al. 2016, with the
    additive smoothing of Kaggle practice).

    Multi-class (``C >= 2`` logits): softmax probabilities against the one-hot mask, the mean
    over all ``C`` classes (a class absent from the batch scores ``smooth / (sum p +
    smooth)``: near 1 when it is not predicted). Binary (one logit): sigmoid probability of
    the foreground against the 0/1 mask, the foreground class only.

    Args:
        from_logits: scores are logits (default) or probabilities.
        ignore_class: label left out (default 255; None for none).
        smooth: added to numerator and denominator (default 1.0; > 0 keeps an empty batch at
            loss 0 and the gradient finite).
    """

    def __init__(self, from_logits=True, ignore_class=IGNORE_LABEL, smooth=1.0, name="dice"):
        super().__init__(from_logits, ignore_class, name)
        if not isinstance(smooth, (int, float)) or isinstance(smooth, bool) or smooth < 0:
            raise ValueError(f"smooth must be a number >= 0, got {smooth!r}.")
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        labels, valid, scores = _prepare(y_true, y_pred, self.ignore_class, "DiceLoss")
        probabilities = _probabilities(scores, self.from_logits)
        classes = probabilities.shape[-1]
        target = ops.one_hot(labels, classes, dtype="float32")
        if scores.shape[-1] == 1:
            probabilities, target = probabilities[..., 1:], target[..., 1:]
        weight = valid[..., None]
        intersection = ops.sum(probabilities * target * weight, axis=(0, 1, 2))
        total = ops.sum((probabilities + target) * weight, axis=(0, 1, 2))
        dice = (2.0 * intersection + self.smooth) / (total + self.smooth)
        return 1.0 - ops.mean(dice)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


def _per_group_mean(values, weights):
    """Mean over classes weighted 0/1 (0 where no class counts), then over groups."""
    counted = ops.sum(weights, axis=1)
    per_group = ops.sum(values * weights, axis=1) / ops.maximum(counted, 1.0)
    return ops.mean(per_group)


@keras.saving.register_keras_serializable(package="keras_drn")
class LovaszSoftmaxLoss(_BatchLoss):
    """Lovász-Softmax loss (Berman et al. 2018, Eq. 12): for each class, the Lovász extension
    of its Jaccard loss at the errors ``|y_c - p_c|`` of the softmax probabilities, then the
    mean over classes.

    Defaults are the authors' (``lovasz_softmax`` in their reference code): ``classes=
    "present"``, the mean over the classes present in the (valid) labels; ``per_image=False``,
    the loss over the whole batch at once (``True``: one loss per image, then the mean over
    images; an image with no valid pixel counts as 0). ``classes="all"`` averages over every
    class; a list of class ids over those. One logit (binary): the two classes ``(1 - p,
    p)`` of its sigmoid.

    Args:
        from_logits: scores are logits (default) or probabilities.
        ignore_class: label left out (default 255; None for none).
        classes: ``"present"`` (default), ``"all"`` or a list of class ids.
        per_image: loss per image, then the mean (default False).
    """

    def __init__(self, from_logits=True, ignore_class=IGNORE_LABEL, classes="present",
                 per_image=False, name="lovasz_softmax"):
        super().__init__(from_logits, ignore_class, name)
        if isinstance(classes, (list, tuple)):
            if not classes or not all(isinstance(c, int) and not isinstance(c, bool)
                                      and c >= 0 for c in classes):
                raise ValueError(
                    f"classes must be 'present', 'all' or a non-empty list of class ids >= 0, "
                    f"got {classes!r}."
                )
            classes = [int(c) for c in classes]
        elif classes not in LOVASZ_CLASSES:
            raise ValueError(
                f"classes must be 'present', 'all' or a list of class ids, got {classes!r}."
            )
        self.classes = classes
        self.per_image = bool(per_image)

    def call(self, y_true, y_pred):
        labels, valid, scores = _prepare(y_true, y_pred, self.ignore_class, "LovaszSoftmaxLoss")
        probabilities = _probabilities(scores, self.from_logits)
        count = probabilities.shape[-1]
        if isinstance(self.classes, list) and max(self.classes) >= count:
            raise ValueError(
                f"LovaszSoftmaxLoss: classes {self.classes} name a class beyond the "
                f"{count} the scores have."
            )
        foreground = ops.one_hot(labels, count, dtype="float32")
        errors = ops.abs(foreground - probabilities)
        groups = [_groups(x, self.per_image) for x in (errors, foreground, valid[..., None])]
        losses = lovasz_extension(*groups)
        if self.classes == "present":
            weights = ops.cast(ops.sum(groups[1] * groups[2], axis=1) > 0, "float32")
        elif self.classes == "all":
            weights = ops.ones_like(losses)
        else:
            chosen = [1.0 if c in self.classes else 0.0 for c in range(count)]
            weights = ops.ones_like(losses) * ops.convert_to_tensor(chosen, "float32")
        return _per_group_mean(losses, weights)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "per_image": self.per_image}


@keras.saving.register_keras_serializable(package="keras_drn")
class LovaszHingeLoss(_BatchLoss):
    """Binary Lovász hinge loss (Berman et al. 2018, Eq. 10-11): the Lovász extension of the
    foreground Jaccard loss at the hinge errors ``max(0, 1 - s x)`` (``s = +1`` for
    foreground, ``-1`` for background) of the logits ``x``.

    ``per_image=True`` by default, as ``lovasz_hinge`` in the authors' reference code (their
    binary experiments optimise the IoU of each image; the Lovász-Softmax defaults to the
    batch): one loss per image (an image with no valid pixel counts as 0), then the mean.
    ``y_pred``: one logit per pixel ``(batch, H, W, 1)``; masks 0/1 plus ``ignore_class``.

    Args:
        from_logits: must be True: the hinge is defined on real-valued scores (logits), not
            probabilities.
        ignore_class: label left out (default 255; None for none).
        per_image: loss per image, then the mean (default True).
    """

    def __init__(self, from_logits=True, ignore_class=IGNORE_LABEL, per_image=True,
                 name="lovasz_hinge"):
        if from_logits is not True:
            raise ValueError(
                "LovaszHingeLoss needs logits (from_logits=True): the hinge is defined on "
                "real-valued scores, not probabilities. Feed the model's pre-sigmoid output."
            )
        super().__init__(from_logits, ignore_class, name)
        self.per_image = bool(per_image)

    def call(self, y_true, y_pred):
        labels, valid, scores = _prepare(y_true, y_pred, self.ignore_class, "LovaszHingeLoss")
        if scores.shape[-1] != 1:
            raise ValueError(
                f"LovaszHingeLoss is binary: y_pred must have one logit per pixel (batch, H, W, "
                f"1), got {scores.shape[-1]} channels. Use LovaszSoftmaxLoss for classes."
            )
        foreground = ops.cast(ops.equal(labels, 1), "float32")[..., None]
        errors = ops.relu(1.0 - scores * (2.0 * foreground - 1.0))
        groups = [_groups(x, self.per_image) for x in (errors, foreground, valid[..., None])]
        return ops.mean(lovasz_extension(*groups))

    def get_config(self):
        return {**super().get_config(), "per_image": self.per_image}


@keras.saving.register_keras_serializable(package="keras_drn")
class FocalLoss(keras.losses.Loss):
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017, Eq. 5), the mean over
    the valid pixels of the batch (0 for a batch with none).

    Multi-class (``C >= 2`` logits): ``p_t`` the softmax probability of the labelled class;
    ``alpha`` None (no weighting) or a list of ``C`` per-class weights. Binary (one logit):
    ``p_t`` the sigmoid probability of the labelled side; ``alpha`` None or the foreground
    weight in ``[0, 1]`` (background ``1 - alpha``; Lin et al. use 0.25). ``gamma=0`` and
    ``alpha=None`` give the (binary) cross-entropy with the ignore label.

    Args:
        from_logits: scores are logits (default) or probabilities (clipped to ``[1e-7, 1]``).
        ignore_class: label left out (default 255; None for none).
        gamma: focusing parameter >= 0 (default 2.0, the paper's).
        alpha: class weighting as above (default None).
    ``sample_weight``: ``(batch,)`` or ``(batch, H, W)``; the mean stays over valid pixels.
    """

    def __init__(self, from_logits=True, ignore_class=IGNORE_LABEL, gamma=2.0, alpha=None,
                 name="focal"):
        super().__init__(name=name, dtype="float32")
        self.from_logits = _check_from_logits(from_logits)
        self.ignore_class = _check_ignore_class(ignore_class)
        if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or gamma < 0:
            raise ValueError(f"gamma must be a number >= 0, got {gamma!r}.")
        self.gamma = float(gamma)
        if isinstance(alpha, (list, tuple)):
            if not all(isinstance(a, (int, float)) and a >= 0 for a in alpha):
                raise ValueError(f"alpha must be non-negative class weights, got {alpha!r}.")
            alpha = [float(a) for a in alpha]
        elif alpha is not None:
            if not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
                raise ValueError(
                    f"alpha must be None, a foreground weight in [0, 1] (binary) or a list "
                    f"of per-class weights, got {alpha!r}."
                )
            alpha = float(alpha)
        self.alpha = alpha

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            labels, valid, scores = _prepare(y_true, y_pred, self.ignore_class, "FocalLoss")
            values = self._pixel_losses(labels, scores)
            if sample_weight is not None:
                weight = ops.cast(sample_weight, "float32")
                if len(weight.shape) == 4 and weight.shape[-1] == 1:
                    weight = ops.squeeze(weight, axis=-1)
                if len(weight.shape) == 1:
                    weight = weight[:, None, None]
                elif len(weight.shape) != 3:
                    raise ValueError(
                        f"FocalLoss: sample_weight must be (batch,) or (batch, H, W), got "
                        f"shape {weight.shape}."
                    )
                values = values * weight
            return _per_replica(ops.sum(values * valid) / ops.maximum(ops.sum(valid), 1.0))

    def _pixel_losses(self, labels, scores):
        """``(B, H, W)`` focal losses at every pixel (finite at ignored ones, whose scores
        are 0)."""
        if scores.shape[-1] == 1:
            return self._binary(ops.cast(labels, "float32"), scores[..., 0])
        classes = scores.shape[-1]
        if self.from_logits:
            log_probabilities = ops.log_softmax(scores, axis=-1)
        else:
            log_probabilities = ops.log(ops.clip(scores, 1e-7, 1.0))
        target = ops.one_hot(labels, classes, dtype="float32")
        log_pt = ops.sum(target * log_probabilities, axis=-1)
        # 1 - p_t as -expm1(log p_t): no cancellation for p_t near 1.
        values = -log_pt if self.gamma == 0 else (  # x**0's gradient at x=0 is nan
            -ops.power(ops.maximum(-ops.expm1(log_pt), 0.0), self.gamma) * log_pt)
        if isinstance(self.alpha, list):
            if len(self.alpha) != classes:
                raise ValueError(
                    f"FocalLoss: alpha has {len(self.alpha)} class weights but the scores "
                    f"have {classes} classes."
                )
            values = values * ops.sum(target * ops.convert_to_tensor(self.alpha), axis=-1)
        elif self.alpha is not None:
            values = values * self.alpha
        return values

    def _binary(self, foreground, scores):
        if isinstance(self.alpha, list):
            raise ValueError(
                "FocalLoss: with one logit (binary) alpha is the foreground weight in [0, 1], "
                f"not a list, got {self.alpha!r}."
            )
        if self.from_logits:
            signed = scores * (2.0 * foreground - 1.0)
            log_pt = ops.log_sigmoid(signed)
            miss = ops.sigmoid(-signed)
        else:
            pt = ops.where(foreground > 0, scores, 1.0 - scores)
            pt = ops.clip(pt, 1e-7, 1.0)
            log_pt = ops.log(pt)
            miss = 1.0 - pt
        values = -log_pt if self.gamma == 0 else -ops.power(miss, self.gamma) * log_pt
        if self.alpha is not None:
            values = values * (foreground * self.alpha + (1.0 - foreground) * (1 - self.alpha))
        return values

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class, "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="keras_drn")
class SparseCrossentropy(keras.losses.SparseCategoricalCrossentropy):
    """``keras.losses.SparseCategoricalCrossentropy`` (its arguments, its values) that refuses
    a label outside ``[0, C)`` other than ``ignore_class``, as the losses here do: Keras's
    own raises for one on TensorFlow's CPU, gives NaN on its GPU, and scores it as no class
    at all (loss 0) on JAX."""

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        labels = ops.cast(ops.round(ops.cast(ops.convert_to_tensor(y_true), "float32")),
                          "int32")
        labels = checked_labels(labels, y_pred.shape[-1], self.ignore_class,
                                type(self).__name__)
        return super().call(labels, y_pred)


@keras.saving.register_keras_serializable(package="keras_drn")
class WeightedSum(keras.losses.Loss):
    """``sum_i weight_i * loss_i(y_true, y_pred)``: BCE + Dice, CE + Lovász and the like.

    ``terms``: a list of ``(loss, weight)`` pairs; a loss is a ``keras.losses.Loss`` instance
    (or its serialized config). Each loss applies its own reduction;
    ``sample_weight`` goes to every one. Example::

        WeightedSum([(FocalLoss(gamma=0.0), 1.0), (DiceLoss(), 1.0)])  # BCE + Dice, ignore 255
    """

    def __init__(self, terms, name="weighted_sum"):
        super().__init__(name=name, dtype="float32")
        if not isinstance(terms, (list, tuple)) or not terms:
            raise ValueError(f"terms must be a non-empty list of (loss, weight), got {terms!r}.")
        resolved = []
        for term in terms:
            if not isinstance(term, (list, tuple)) or len(term) != 2:
                raise ValueError(f"Each term must be a (loss, weight) pair, got {term!r}.")
            loss, weight = term
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"The weight of {loss!r} must be a number, got {weight!r}.")
            if isinstance(loss, dict):
                loss = keras.saving.deserialize_keras_object(loss)
            if not isinstance(loss, keras.losses.Loss):
                raise ValueError(
                    f"{loss!r} is not a keras.losses.Loss instance; pass one, such as "
                    "keras.losses.BinaryCrossentropy(from_logits=True) or FocalLoss()."
                )
            resolved.append((loss, float(weight)))
        self.terms = resolved

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            total = 0.0
            for loss, weight in self.terms:
                value = loss(y_true, y_pred, sample_weight=sample_weight)
                total = total + weight * ops.cast(value, "float32")
            return total

    def get_config(self):
        return {
            "name": self.name,
            "terms": [[keras.saving.serialize_keras_object(loss), weight]
                      for loss, weight in self.terms],
        }
