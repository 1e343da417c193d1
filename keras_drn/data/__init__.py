"""keras_drn.data: datasets and input pipelines."""

from keras_drn.data.synthetic import CLASS_NAMES, make_scenes

__all__ = ["CLASS_NAMES", "make_scenes"]
