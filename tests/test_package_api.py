"""``import keras_drn`` brings the Kaggle-style modules: ``keras_drn.losses``, ``.metrics``,
``.submission``, and with them what a binary segmenter's saved compile config names."""

import os
import subprocess
import sys

import keras

import keras_drn


def test_losses_metrics_and_submission_are_attributes_of_the_package():
    assert keras_drn.losses.DiceLoss and keras_drn.metrics.DiceScore
    assert keras_drn.submission.rle_encode([[0, 1]]) == "2 1"
    assert {"losses", "metrics", "submission"} <= set(keras_drn.__all__)


def test_a_model_compiled_with_the_losses_loads_after_import_keras_drn(tmp_path):
    from keras_drn.losses import DiceLoss, FocalLoss, WeightedSum
    from keras_drn.metrics import DiceScore

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs))
    model.compile(loss=WeightedSum([(FocalLoss(gamma=0.0), 1.0), (DiceLoss(), 1.0)]),
                  metrics=[DiceScore(1)])
    model.save(tmp_path / "m.keras")
    code = ("import keras, keras_drn, sys; m = keras.saving.load_model(sys.argv[1]); "
            "print(type(m.loss).__name__)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.keras")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("WeightedSum")
