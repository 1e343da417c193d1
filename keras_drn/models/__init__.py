"""keras_drn.models: the DRN family."""

from keras_drn.models.drn import VARIANTS, build_drn, feature_model
from keras_drn.models.fold import fold_batch_norm

__all__ = ["VARIANTS", "build_drn", "feature_model", "fold_batch_norm"]
