"""The DRN segmentation training recipe in Keras: schedules, optimizer, compile, callbacks.

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017; the recipe is that of the
official ``segment.py`` (github fyu/drn): ``NLLLoss2d(ignore_index=255)`` on log-softmax
scores, ``torch.optim.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4)`` over the backbone and the
1x1 classifier (the fixed bilinear ``up`` layer is frozen and left out), and a learning rate
that is either "step" (x0.1 every ``step`` epochs) or "poly" (``lr * (1 - epoch/epochs)^0.9``).

Typical use::

    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=19)
    steps = epochs * steps_per_epoch
    compile_segmenter(model, 19, optimizer=reference_optimizer(poly_schedule(0.01, steps)))
    model.fit(train, validation_data=val, epochs=epochs,
              callbacks=training_callbacks("runs/drn_d_22"))
"""

import contextlib
import contextvars
import numbers

import keras
from keras import ops

from keras_drn.constants import (
    IGNORE_LABEL,
    REFERENCE_LEARNING_RATE,
    REFERENCE_MOMENTUM,
    REFERENCE_WEIGHT_DECAY,
)
from keras_drn.evaluation import segmentation_miou

_ELEMENTWISE_SGD = contextvars.ContextVar("keras_drn_elementwise_sgd", default=False)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {name}={value!r}.")


def poly_schedule(learning_rate, total_steps, power=0.9):
    """The reference's "poly" schedule, per optimizer step: ``lr * (1 - step/total)^power``.

    ``segment.py`` sets ``lr * (1 - epoch/epochs)^0.9`` once per epoch; this is the same curve
    evaluated at every step (``total_steps = epochs * steps_per_epoch``), which is how poly is
    usually run (DeepLab). It reaches 0 at ``total_steps`` and stays there.

    Returns:
        ``keras.optimizers.schedules.PolynomialDecay(learning_rate, total_steps, 0, power)``.
    """
    _positive_int("total_steps", total_steps)
    return keras.optimizers.schedules.PolynomialDecay(
        learning_rate, decay_steps=total_steps, end_learning_rate=0.0, power=power
    )


def step_schedule(learning_rate, steps_per_epoch, step_epochs, gamma=0.1):
    """The reference's "step" schedule: ``lr * gamma^(epoch // step_epochs)``, exactly.

    The epoch of optimizer step ``s`` (counted from 0) is ``s // steps_per_epoch``, so this is
    a staircase ``ExponentialDecay`` with ``decay_steps = steps_per_epoch * step_epochs``
    (DRN-D-22 on Cityscapes: ``step_epochs=100`` over 250 epochs).
    """
    _positive_int("steps_per_epoch", steps_per_epoch)
    _positive_int("step_epochs", step_epochs)
    return keras.optimizers.schedules.ExponentialDecay(
        learning_rate,
        decay_steps=steps_per_epoch * step_epochs,
        decay_rate=gamma,
        staircase=True,
    )


@contextlib.contextmanager
def elementwise_sgd():
    """Within it, ``ReferenceSGD`` updates (and training steps traced then) take Keras's
    element-wise ops instead of TensorFlow's fused ``ResourceApplyMomentum``: the same
    numbers, a baseline for ``tools/benchmark.py --sgd-baseline``."""
    token = _ELEMENTWISE_SGD.set(True)
    try:
        yield
    finally:
        _ELEMENTWISE_SGD.reset(token)


@keras.saving.register_keras_serializable(package="keras_drn")
class ReferenceSGD(keras.optimizers.Optimizer):
    """SGD with PyTorch's ``torch.optim.SGD`` semantics (momentum, coupled L2 weight decay).

    Per variable ``w`` with gradient ``g`` and the current learning rate ``lr``::

        d = g + weight_decay * w          # L2 penalty folded into the gradient
        v = momentum * v + d              # velocity of raw gradients (dampening 0)
        w = w - lr * v

    This differs from ``keras.optimizers.SGD(momentum=..., weight_decay=...)`` in two ways
    that matter for reproducing ``segment.py``: Keras's weight decay is decoupled
    (``w -= lr * wd * w`` outside the momentum, so at momentum 0.9 the reference's decay is
    about 10x stronger at steady state), and Keras's velocity accumulates ``lr * g``, so when
    the step schedule drops the rate x0.1 the reference slows down at once while Keras keeps
    the old velocity for ~1/(1-momentum) steps. With a constant rate and ``weight_decay=0``
    the two coincide.

    Decay applies to every variable the optimizer updates (the model's trainable weights:
    kernels, biases and BatchNormalization scales and offsets, as in the reference).
    """

    def __init__(
        self,
        learning_rate=REFERENCE_LEARNING_RATE,
        momentum=REFERENCE_MOMENTUM,
        weight_decay=REFERENCE_WEIGHT_DECAY,
        name="reference_sgd",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); received momentum={momentum!r}.")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; received weight_decay={weight_decay!r}.")
        self.momentum = float(momentum)
        # Not ``self.weight_decay``: the base class would apply that one decoupled as well.
        self.l2_weight_decay = float(weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2_weight_decay:
            gradient = gradient + ops.cast(self.l2_weight_decay, variable.dtype) * variable
        velocity = self.velocities[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, variable.dtype)
        if (keras.backend.backend() == "tensorflow" and not _ELEMENTWISE_SGD.get()
                and not _sparse(gradient)):
            # TensorFlow's fused training op computes ``v = momentum * v + d; w -= lr * v``,
            # this rule exactly, in one pass over each variable; Keras expresses an update as
            # separate element-wise ops (5 passes here). DRN-D-22 segmentation training, batch
            # 4, 2-core CPU: 1.06-1.08x a step at 128x128, 1.02-1.06x at 256x256 (README,
            # "Speed"). Inside a tf.distribute update, ``handle`` is the replica's variable.
            import tensorflow as tf

            tf.raw_ops.ResourceApplyMomentum(
                var=variable.handle, accum=velocity.handle, lr=learning_rate, grad=gradient,
                momentum=momentum, use_locking=False, use_nesterov=False)
            return
        self.assign(velocity, momentum * velocity + gradient)
        self.assign_sub(variable, learning_rate * velocity)

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, weight_decay=self.l2_weight_decay)
        return config


def _sparse(gradient):
    """True for TensorFlow's ``IndexedSlices`` (an embedding's gradient; no fused path)."""
    import tensorflow as tf

    return isinstance(gradient, tf.IndexedSlices)


def reference_optimizer(
    schedule_or_lr=REFERENCE_LEARNING_RATE,
    momentum=REFERENCE_MOMENTUM,
    weight_decay=REFERENCE_WEIGHT_DECAY,
    coupled=True,
):
    """The optimizer of ``segment.py``: SGD, momentum 0.9, weight decay 1e-4.

    Args:
        schedule_or_lr: a float or a ``keras.optimizers.schedules`` schedule
            (``poly_schedule`` / ``step_schedule``).
        momentum: momentum (reference 0.9).
        weight_decay: weight decay (reference 1e-4).
        coupled: ``True`` (default) gives ``ReferenceSGD``, PyTorch's update rule exactly
            (L2 decay added to the gradient, before the momentum). ``False`` gives Keras's own
            ``keras.optimizers.SGD(momentum=..., weight_decay=...)``, whose decay is decoupled
            (``w -= lr * wd * w`` each step): the usual Keras choice, but to get about the same
            regularisation as the reference at momentum 0.9, use ``weight_decay`` about 10x
            larger (1e-3).

    The frozen ``up`` layer of ``DRNSegmenter(head="drn")`` has no variables, so it is never
    updated or decayed; layers set ``trainable=False`` are excluded by Keras as usual.
    """
    if coupled:
        return ReferenceSGD(schedule_or_lr, momentum=momentum, weight_decay=weight_decay)
    return keras.optimizers.SGD(schedule_or_lr, momentum=momentum, weight_decay=weight_decay)


def compile_segmenter(
    model, num_classes, optimizer=None, ignore_label=IGNORE_LABEL, jit_compile="auto"
):
    """Compiles a segmenter (logits ``(batch, H, W, num_classes)``) as ``segment.py`` trains.

    Loss: ``SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignore_label)``,
    the reference's NLL of the log-softmax, averaged over the pixels whose label is not
    ``ignore_label`` (as ``NLLLoss2d(ignore_index=255)``; a batch with no valid pixel gives 0).
    Metric: ``miou`` (``evaluation.segmentation_miou``), so ``fit`` logs ``miou`` and
    ``val_miou``. Labels: ``(batch, H, W)`` integers in ``[0, num_classes)`` or the ignore label;
    any other label stops ``fit`` / ``evaluate`` with an error naming it (the loss checks them:
    ``keras_drn.losses.SparseCrossentropy``, Keras's with that check).

    ``num_classes=1`` (a binary model: one logit per pixel, masks 0/1): binary cross-entropy
    plus soft Dice, both with the ignore label (``keras_drn.losses``: ``FocalLoss(gamma=0)`` +
    ``DiceLoss``), the usual Kaggle recipe; metrics ``iou`` and ``dice`` of the object
    (``keras_drn.metrics``, sigmoid > 0.5). Labels other than 0, 1 and the ignore label are
    refused likewise.

    Args:
        model: the model to compile (for instance ``keras_drn.DRNSegmenter``).
        num_classes: number of classes of the logits (1: binary).
        optimizer: default ``reference_optimizer()`` (constant lr 0.01).
        ignore_label: label value left out of the loss and the metric.
        jit_compile: passed to ``model.compile``.

    Returns:
        The model, compiled.
    """
    _positive_int("num_classes", num_classes)
    if num_classes == 1:  # binary: one logit per pixel, BCE + Dice, the Kaggle recipe
        from keras_drn.losses import DiceLoss, FocalLoss, WeightedSum
        from keras_drn.metrics import DiceScore, IoUScore

        loss = WeightedSum([(FocalLoss(gamma=0.0, ignore_class=ignore_label), 1.0),
                            (DiceLoss(ignore_class=ignore_label), 1.0)])
        metrics = [IoUScore(1, ignore_class=ignore_label, name="iou"),
                   DiceScore(1, ignore_class=ignore_label, name="dice")]
    else:
        from keras_drn.losses import SparseCrossentropy

        loss = SparseCrossentropy(from_logits=True, ignore_class=ignore_label)
        metrics = [segmentation_miou(num_classes, ignore_label=ignore_label)]
    model.compile(
        optimizer=optimizer if optimizer is not None else reference_optimizer(),
        loss=loss, metrics=metrics, jit_compile=jit_compile,
    )
    return model


def monitored_metric(num_classes):
    """The validation score ``compile_segmenter``'s model is judged by: ``val_miou``, or
    ``val_dice`` for a binary model."""
    return "val_dice" if num_classes == 1 else "val_miou"


def training_callbacks(
    work_dir,
    monitor="val_miou",
    mode="auto",
    save_weights_only=False,
    csv_log=True,
    patience=None,
):
    """The callback that makes a long run safe to kill and resume: best model, CSV log and
    resume state of ``work_dir``, each written atomically (``keras_drn.workflows.runs.RunCheckpoint``).

    - ``best.keras`` (or ``best.weights.h5`` with ``save_weights_only``): the model of the
      best epoch by ``monitor``, replaced only by a rename.
    - ``log.csv``: one row per finished epoch.
    - ``state/``: weights and optimizer state (momenta, step count, so the schedule goes on
      where it stopped) of the last two finished epochs. Calling ``fit`` again with the same
      ``work_dir`` after an interruption (SIGKILL included, at any instant) restores them and
      resumes at the first unfinished epoch; the interrupted epoch's updates are discarded and
      its log row, if written, is dropped. A finished run trains no further epochs.

    As ``segment.py``'s ``--resume``, the run must be restarted with the same model and
    compile arguments; a larger ``epochs`` extends it.

    Args:
        work_dir: folder of the run (created).
        monitor: logged quantity that decides the best model (``compile_segmenter`` logs
            ``val_miou`` when ``fit`` gets validation data).
        mode: ``"max"``, ``"min"`` or ``"auto"`` (``"min"`` for names ending in ``loss``,
            else ``"max"``).
        save_weights_only: save ``best.weights.h5`` instead of the whole ``best.keras``.
        csv_log: write ``log.csv``.
        patience: stop after this many epochs without improvement (``None``: never); the
            count survives a resume.

    Returns:
        A list of callbacks for ``model.fit``.
    """
    from keras_drn.workflows.runs import RunCheckpoint

    return [RunCheckpoint(work_dir, monitor=monitor, mode=mode,
                          save_weights_only=save_weights_only, csv_log=csv_log,
                          patience=patience)]
