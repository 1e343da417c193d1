"""The choice names keras_drn.constants holds for the command (which reads them before it
imports Keras) are the registries' own: the registries are built from them."""

from keras_drn import constants


def test_choice_names_are_the_registries():
    from keras_drn.layers.dilated_residual import ANTI_ALIAS
    from keras_drn.models import heads
    from keras_drn.workflows import precision

    assert constants.HEADS == tuple(heads.HEADS)
    assert constants.CONTEXTS == tuple(heads.CONTEXTS)
    assert constants.UPSAMPLINGS == tuple(heads.UPSAMPLINGS)
    assert constants.ANTI_ALIAS == tuple(ANTI_ALIAS)
    assert precision.POLICIES == constants.DTYPE_POLICIES


def test_the_training_recipe_reads_the_reference_optimizer():
    from keras_drn.workflows import distribute, training
    from keras_drn.workflows.record import SegmentationRun

    assert training.ReferenceSGD().momentum == constants.REFERENCE_MOMENTUM
    record = SegmentationRun()
    assert (record.learning_rate, record.momentum, record.weight_decay) == (
        training.REFERENCE_LEARNING_RATE, training.REFERENCE_MOMENTUM,
        training.REFERENCE_WEIGHT_DECAY)
    assert record.heartbeat_timeout == distribute.HEARTBEAT_TIMEOUT
