"""keras_drn.models.classifier: build_classifier and set_backbone_trainable, public as
keras_drn.build_classifier and still importable from the classification workflow."""

import importlib

import keras
import numpy as np

import keras_drn
from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.models import classifier
from keras_drn.models.preprocessing import preprocessing_of


def test_build_classifier_is_public_and_keeps_its_old_import_path():
    assert keras_drn.build_classifier is classifier.build_classifier
    assert "build_classifier" in keras_drn.__all__
    workflow = importlib.import_module("keras_drn.workflows.classification")
    assert workflow.set_backbone_trainable is classifier.set_backbone_trainable
    old = importlib.import_module("keras_drn.classify")  # keras_drn 0.1's module name
    assert old.build_classifier is workflow.build_classifier


def test_the_workflow_keeps_raw_rgb_models_and_the_library_follows_the_contract():
    """The workflow records ImageNet's statistics for its runs: its models always carry them.
    The library's builder adds them only with pretrained weights or when asked."""
    workflow = importlib.import_module("keras_drn.workflows.classification")
    ours = workflow.build_classifier(3, "drn_d_22", input_shape=(16, 16, 3))
    np.testing.assert_allclose(preprocessing_of(ours), (IMAGENET_MEAN, IMAGENET_STD), rtol=1e-6)
    assert preprocessing_of(keras_drn.build_classifier(3, "drn_d_22")) is None
    own = keras_drn.build_classifier(3, "drn_d_22", mean=(0.3,) * 3, std=(0.2,) * 3)
    np.testing.assert_allclose(preprocessing_of(own), ((0.3,) * 3, (0.2,) * 3), rtol=1e-6)


def test_set_backbone_trainable_freezes_the_backbone_and_optionally_its_batch_norms():
    model = keras_drn.build_classifier(3, "drn_d_22", input_shape=(16, 16, 3))
    classifier.set_backbone_trainable(model, False)
    assert len(model.trainable_weights) == 2  # fc kernel and bias
    classifier.set_backbone_trainable(model, True, train_bn=False)
    norms = [layer for layer in model.get_layer("backbone")._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    assert model.get_layer("backbone").get_layer("layer0_0").trainable
    classifier.set_backbone_trainable(model, True)
    assert all(layer.trainable for layer in norms)
