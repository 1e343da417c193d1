"""keras_drn: Dilated Residual Networks and their companions for Keras 3.

``keras_drn.DRN_C_26(...)`` and friends build the DRN-A/C/D classifiers and backbones
(Yu, Koltun, Funkhouser, CVPR 2017); ``keras_drn.layers`` holds the building blocks;
``keras_drn.losses``, ``keras_drn.metrics`` and ``keras_drn.submission`` the Kaggle-style
segmentation losses, scores and run-length-encoded submissions (imported here, so that a
saved binary segmenter compiled with them loads with ``keras.saving.load_model``).
"""

from keras_drn import _environment  # noqa: F401  (before Keras: backend choice, quiet TF logs)
from keras_drn import layers, losses, metrics, submission
from keras_drn.export import export
from keras_drn.models.drn import VARIANTS, build_drn, feature_model
from keras_drn.models.fold import fold_batch_norm
from keras_drn.models.segmenter import DRNSegmenter
from keras_drn.models.trainable import set_trainable
from keras_drn.models.registry import (
    DRN_A_18,
    DRN_A_34,
    DRN_A_50,
    DRN_C_26,
    DRN_C_42,
    DRN_C_58,
    DRN_D_22,
    DRN_D_24,
    DRN_D_38,
    DRN_D_40,
    DRN_D_54,
    DRN_D_56,
    DRN_D_105,
    DRN_D_107,
    get_model,
    list_models,
)

__version__ = "0.1.0"

__all__ = [
    "DRNSegmenter",
    "DRN_A_18",
    "DRN_A_34",
    "DRN_A_50",
    "DRN_C_26",
    "DRN_C_42",
    "DRN_C_58",
    "DRN_D_22",
    "DRN_D_24",
    "DRN_D_38",
    "DRN_D_40",
    "DRN_D_54",
    "DRN_D_56",
    "DRN_D_105",
    "DRN_D_107",
    "VARIANTS",
    "build_drn",
    "export",
    "feature_model",
    "fold_batch_norm",
    "get_model",
    "layers",
    "list_models",
    "losses",
    "metrics",
    "set_trainable",
    "submission",
]
