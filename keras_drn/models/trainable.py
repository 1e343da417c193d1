"""``set_trainable``: freezing and unfreezing for fine-tuning, BatchNormalization apart.

Fine-tuning a pretrained backbone on small batches usually keeps its BatchNormalization layers
frozen (inference mode, moving statistics untouched) while the convolutions train (Yu et al.
2017 fine-tune DRN segmenters from ImageNet classifiers). Keras's ``trainable`` flag on a
composite layer does not reach the layers inside it on every backend, so each layer is set
explicitly, parents before their children.
"""

import keras

from keras_drn import _keras_compat


def set_trainable(layer, trainable, train_bn=True):
    """Sets ``trainable`` on ``layer`` (a layer or a model) and on every layer inside it.

    Args:
        layer: a ``keras.layers.Layer`` or ``keras.Model`` (a backbone, a residual block).
        trainable: the flag to set.
        train_bn: ``False`` keeps every ``BatchNormalization`` inside frozen (inference mode)
            even when ``trainable`` is True.
    """
    for sub in [layer, *_keras_compat.sublayers(layer)]:
        sub.trainable = trainable and (
            train_bn or not isinstance(sub, keras.layers.BatchNormalization))
