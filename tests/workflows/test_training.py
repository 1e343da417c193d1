import contextlib
import csv
import json

import keras
import numpy as np
import pytest

import keras_drn
from keras_drn.evaluation import confusion_matrix, iou_per_class
from keras_drn.layers.bilinear_upsampling import BilinearUpsampling
from keras_drn.workflows.training import (
    ReferenceSGD,
    compile_segmenter,
    elementwise_sgd,
    poly_schedule,
    reference_optimizer,
    step_schedule,
    training_callbacks,
)
from tests.helpers import random_input, to_numpy

CLASSES = 3


def _lr(schedule, step):
    return float(to_numpy(schedule(step)))


def test_poly_schedule_follows_the_formula():
    schedule = poly_schedule(0.01, total_steps=1000)
    for step in (0, 1, 250, 999, 1000, 1500):
        expected = 0.01 * (1 - min(step, 1000) / 1000) ** 0.9
        assert _lr(schedule, step) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    with pytest.raises(ValueError, match="total_steps=0"):
        poly_schedule(0.01, 0)


def test_step_schedule_drops_tenfold_every_step_epochs():
    steps_per_epoch, step_epochs = 7, 100
    schedule = step_schedule(0.01, steps_per_epoch, step_epochs)
    for step in (0, 699, 700, 1399, 1400, 1749):
        epoch = step // steps_per_epoch
        expected = 0.01 * 0.1 ** (epoch // step_epochs)
        assert _lr(schedule, step) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="step_epochs=0"):
        step_schedule(0.01, 7, 0)


def _apply(optimizer, initial, gradients):
    variables = [keras.Variable(v) for v in initial]
    for grads in gradients:
        optimizer.apply_gradients(
            zip([keras.ops.convert_to_tensor(g) for g in grads], variables)
        )
    return [to_numpy(v) for v in variables]


def _problem(seed=0, steps=6):
    rng = np.random.default_rng(seed)
    initial = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=4).astype("float32")]
    gradients = [[rng.normal(size=v.shape).astype("float32") for v in initial]
                 for _ in range(steps)]
    return initial, gradients


def test_reference_optimizer_matches_torch_sgd_with_a_step_schedule():
    """Coupled L2 decay and PyTorch's momentum, including across a x0.1 drop of the rate."""
    torch = pytest.importorskip("torch")
    initial, gradients = _problem()
    keras_result = _apply(
        reference_optimizer(step_schedule(0.1, 2, 1), momentum=0.9, weight_decay=0.05),
        initial, gradients,
    )
    params = [torch.tensor(v, requires_grad=True) for v in initial]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.05)
    for step, grads in enumerate(gradients):
        for param, grad in zip(params, grads):
            param.grad = torch.tensor(grad)
        for group in optimizer.param_groups:
            group["lr"] = 0.1 * 0.1 ** (step // 2)  # segment.py's adjust_learning_rate
        optimizer.step()
    for ours, theirs in zip(keras_result, params):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    # Keras's own SGD (decoupled decay, lr-scaled velocity) is measurably different here.
    decoupled = _apply(reference_optimizer(step_schedule(0.1, 2, 1), weight_decay=0.05,
                                           coupled=False), initial, gradients)
    assert np.abs(decoupled[0] - params[0].detach().numpy()).max() > 1e-2


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="TensorFlow's fused training op")
@pytest.mark.parametrize("fused", [True, False])
def test_reference_sgd_compiled_step_is_one_fused_momentum_op_per_variable(fused):
    """In a traced step (as ``fit`` runs it) each variable is updated by TensorFlow's
    ``ResourceApplyMomentum`` (Keras's element-wise ops within ``elementwise_sgd()``), with
    the results of PyTorch's rule (computed here in numpy) either way."""
    import tensorflow as tf

    initial, gradients = _problem(steps=3)
    variables = [keras.Variable(v) for v in initial]
    optimizer = reference_optimizer(0.1, momentum=0.9, weight_decay=0.05)
    optimizer.build(variables)

    @tf.function
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    with contextlib.nullcontext() if fused else elementwise_sgd():
        graph = step.get_concrete_function([tf.constant(g) for g in gradients[0]]).graph
    op_types = [op.type for op in graph.get_operations()]
    for function in graph._functions.values():  # branches of conditionals, if any
        op_types += [op.type for op in function.graph.get_operations()]
    assert op_types.count("ResourceApplyMomentum") == (len(variables) if fused else 0), \
        sorted(set(op_types))
    weights, velocities = [w.copy() for w in initial], [np.zeros_like(w) for w in initial]
    for grads in gradients:
        step([tf.constant(g) for g in grads])
        for w, v, g in zip(weights, velocities, grads):
            v *= 0.9
            v += g + 0.05 * w
            w -= 0.1 * v
    for ours, expected in zip(variables, weights):
        np.testing.assert_allclose(to_numpy(ours), expected, rtol=1e-5, atol=1e-6)


def test_uncoupled_optimizer_is_keras_sgd_with_decoupled_decay():
    initial, gradients = _problem(steps=1)
    optimizer = reference_optimizer(0.1, momentum=0.9, weight_decay=0.05, coupled=False)
    assert isinstance(optimizer, keras.optimizers.SGD)
    result = _apply(optimizer, initial, gradients)
    for ours, w, g in zip(result, initial, gradients[0]):
        np.testing.assert_allclose(ours, w - 0.1 * 0.05 * w - 0.1 * g, rtol=1e-5, atol=1e-6)


def test_reference_sgd_config_round_trip():
    optimizer = reference_optimizer(poly_schedule(0.01, 100), momentum=0.8, weight_decay=3e-4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is ReferenceSGD
    assert restored.momentum == 0.8 and restored.l2_weight_decay == 3e-4
    assert restored.weight_decay is None  # no extra decoupled decay from the base class
    with pytest.raises(ValueError, match="momentum=1.5"):
        ReferenceSGD(momentum=1.5)


def _logits_and_labels(seed=0, shape=(2, 6, 7)):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.normal(size=(*shape, CLASSES))).astype("float32")
    labels = rng.integers(0, CLASSES, size=shape)
    labels[rng.random(shape) < 0.3] = 255
    return logits, labels


def _identity_model(shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def test_compiled_loss_and_miou_ignore_255_like_numpy():
    """Inside compiled evaluate on this backend: loss = mean NLL over labelled pixels, and
    mIoU = the numpy confusion-matrix mIoU; logits at ignored pixels change neither."""
    logits, labels = _logits_and_labels()
    model = compile_segmenter(_identity_model(logits.shape[1:]), CLASSES)
    result = model.evaluate(logits, labels, batch_size=2, verbose=0, return_dict=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels != 255
    picked = np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    assert result["loss"] == pytest.approx(-picked[valid].mean(), rel=1e-5)
    predictions = logits.argmax(-1)
    expected = np.nanmean(iou_per_class(confusion_matrix(labels, predictions, CLASSES)))
    assert result["miou"] == pytest.approx(expected, rel=1e-5)

    changed = logits.copy()
    changed[~valid] = np.random.default_rng(1).normal(size=(np.sum(~valid), CLASSES)) * 10
    again = model.evaluate(changed, labels, batch_size=2, verbose=0, return_dict=True)
    assert again["loss"] == pytest.approx(result["loss"], rel=1e-6)
    assert again["miou"] == pytest.approx(result["miou"], rel=1e-6)
    changed[valid] += 5.0 * (np.arange(CLASSES) == 0)  # changing labelled pixels does
    moved = model.evaluate(changed, labels, batch_size=2, verbose=0, return_dict=True)
    assert moved["loss"] != pytest.approx(result["loss"], rel=1e-3)


def test_drn_segmenter_fit_step_leaves_the_fixed_up_layer_alone():
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=CLASSES)
    up = model.get_layer("up")
    assert isinstance(up, BilinearUpsampling) and not up.weights
    probe = random_input((1, 4, 4, CLASSES))
    before = to_numpy(up(probe))
    compile_segmenter(model, CLASSES, optimizer=reference_optimizer(0.01))
    trainable = {id(w) for w in model.trainable_weights}
    x = random_input((2, 32, 32, 3))
    y = np.random.default_rng(0).integers(0, CLASSES, size=(2, 32, 32))
    y[:, :4] = 255
    seg_before = to_numpy(model.get_layer("seg").kernel)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and 0 <= history.history["miou"][0] <= 1
    assert not np.array_equal(to_numpy(model.get_layer("seg").kernel), seg_before)
    np.testing.assert_array_equal(to_numpy(up(probe)), before)
    np.testing.assert_allclose(before, to_numpy(BilinearUpsampling(8)(probe)), atol=0)
    # The optimizer holds one velocity per trainable weight, and the up layer has none.
    assert [v.shape for v in model.optimizer.velocities] == [
        w.shape for w in model.trainable_weights]
    assert not trainable & {id(w) for w in up.weights}


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.Conv2D(CLASSES, 1, name="classifier")(x)
    return keras.Model(inputs, outputs)


def _tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, CLASSES, size=(8, 8, 8))
    y[:, 0] = 255
    return x, y


class _Interrupt(keras.callbacks.Callback):
    """Raises after the first batch of the second epoch (epoch 1 finished, epoch 2 begun)."""

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == 1 and batch == 0:
            raise RuntimeError("interrupted")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.start_weights, self.end_weights = [], None, {}

    def on_train_begin(self, logs=None):
        self.start_weights = [to_numpy(w) for w in self.model.weights]

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.end_weights[epoch] = [to_numpy(w) for w in self.model.weights]


def _fit(work_dir, callbacks=(), epochs=3):
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    steps = epochs * 2
    compile_segmenter(model, CLASSES, optimizer=reference_optimizer(poly_schedule(0.05, steps)))
    x, y = _tiny_data()
    recorder = _Recorder()
    all_callbacks = [*training_callbacks(work_dir), recorder, *callbacks] if work_dir else [
        recorder, *callbacks]
    history = model.fit(x, y, batch_size=4, epochs=epochs, validation_data=(x, y),
                        shuffle=False, verbose=0, callbacks=all_callbacks)
    return model, recorder, history


def test_interrupted_run_resumes_at_the_first_unfinished_epoch(tmp_path):
    reference, _, _ = _fit(None)
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(tmp_path, callbacks=[_Interrupt()])
    with open(tmp_path / "log.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0]
    assert (tmp_path / "best.keras").exists()

    model, recorder, history = _fit(tmp_path)
    assert recorder.epochs == [1, 2]  # epoch 0 is not run again
    assert len(history.epoch) == 2
    assert int(to_numpy(model.optimizer.iterations)) == 6  # step count restored: schedule
    with open(tmp_path / "log.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2]
    # Weights and optimizer state (momenta) of the finished epoch came back: the resumed
    # run ends where an uninterrupted one does.
    for ours, theirs in zip(model.weights, reference.weights):
        np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), rtol=1e-5, atol=1e-6)

    best = keras.saving.load_model(tmp_path / "best.keras")  # ReferenceSGD and its schedule
    assert isinstance(best.optimizer, ReferenceSGD)
    assert best.optimizer.get_config()["learning_rate"]["class_name"] == "PolynomialDecay"

    # A finished run is not trained again: the backup says all epochs are done.
    again, recorder, _ = _fit(tmp_path)
    assert recorder.epochs == []
    for ours, theirs in zip(again.weights, model.weights):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))


def test_resumed_best_model_is_replaced_only_by_a_better_epoch(tmp_path):
    """The best value survives the restart (it is in the resume state, not re-read from a
    log): a resumed epoch worse than the best before the interruption keeps best.keras."""
    _fit(tmp_path, epochs=1)
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    state["best"] = 1e9  # pretend epoch 0 scored higher than any later epoch can
    (tmp_path / "state" / "state.json").write_text(json.dumps(state))
    before = (tmp_path / "best.keras").stat().st_mtime_ns
    _fit(tmp_path, epochs=2)
    assert (tmp_path / "best.keras").stat().st_mtime_ns == before
    assert json.loads((tmp_path / "state" / "state.json").read_text())["best"] == 1e9
    by_loss = training_callbacks(tmp_path, monitor="val_loss", save_weights_only=True)[0]
    assert by_loss.best_path.name == "best.weights.h5" and by_loss.mode == "min"
    with pytest.raises(ValueError, match="mode='best'"):
        training_callbacks(tmp_path, mode="best")


def test_one_class_compiles_binary_cross_entropy_plus_dice():
    from keras_drn.losses import DiceLoss, FocalLoss

    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs))
    compile_segmenter(model, 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    y = (rng.uniform(size=(2, 6, 6)) > 0.5).astype("int32")
    y[0, :2] = 255  # ignored
    logs = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    logits = model.predict(x, verbose=0)
    expected = float(to_numpy(FocalLoss(gamma=0.0)(y, logits) + DiceLoss()(y, logits)))
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert {"iou", "dice"} <= set(logs)


@pytest.mark.parametrize("num_classes, bad", [(1, 2), (3, 3)])
def test_fit_refuses_a_label_outside_the_classes_and_ignore(num_classes, bad):
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(num_classes, 1)(inputs))
    compile_segmenter(model, num_classes)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    y = rng.integers(0, max(num_classes, 2), size=(2, 6, 6)).astype("int32")
    y[0, 0, :2] = 255
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)  # 0 .. C-1 and 255 train
    y[1, 3, 4] = bad  # binary: BCE took 2 as a weak 1 and Dice as background
    allowed = "0 or 1" if num_classes == 1 else r"in \[0, 3\)"
    # TensorFlow's Assert prints the message in parts: "label ] [2] [; labels ..."
    with pytest.raises(Exception, match=rf"(?s)a mask holds the label\W*{bad}\W.*labels must "
                                        rf"be {allowed}.* or 255 \(ignore\)"):
        model.fit(x, y, batch_size=2, epochs=1, verbose=0)
