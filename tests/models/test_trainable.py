"""keras_drn.set_trainable: every layer inside a composite one is set, BatchNormalization kept
frozen on request, also two levels down (an anti-aliasing layer's inside a residual block)."""

import keras

import keras_drn
from keras_drn.layers.dilated_residual import DilatedResidualBlock


def _block():
    block = DilatedResidualBlock(4, strides=2, anti_alias="adaptive", name="block")
    block.build((None, 8, 8, 2))
    return block


def _batch_norms(block):
    found = [block.bn1, block.bn2, block.blur.bn]
    assert all(isinstance(bn, keras.layers.BatchNormalization) for bn in found)
    return found


def test_fine_tuning_keeps_every_batch_norm_frozen_and_trains_the_rest():
    block = _block()
    keras_drn.set_trainable(block, False)
    assert block.trainable_weights == []
    keras_drn.set_trainable(block, True, train_bn=False)
    assert not any(bn.trainable for bn in _batch_norms(block))
    trainable = {id(w) for w in block.trainable_weights}
    assert trainable and not trainable & {id(w) for bn in _batch_norms(block) for w in bn.weights}
    assert {id(w) for w in block.conv1.weights} <= trainable
    keras_drn.set_trainable(block, True)
    assert all(bn.trainable for bn in _batch_norms(block))
    assert len(block.trainable_weights) > len(trainable)
