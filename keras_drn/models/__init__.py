"""keras_drn.models: the DRN family."""

from keras_drn.models.drn import VARIANTS, build_drn, feature_model

__all__ = ["VARIANTS", "build_drn", "feature_model"]
