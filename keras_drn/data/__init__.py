"""keras_drn.data: datasets and input pipelines.

``make_scenes``, ``scene_split`` and ``CLASS_NAMES`` (the embedded synthetic scenes) need
only NumPy, ``read_image`` (the one image reader), ``list_images`` (the one folder lister) and
the checks (``readable_images``, ``check_pairs``) NumPy and Pillow; the data specs'
registries (``SEGMENTATION_SOURCES``, ``CLASSIFICATION_SOURCES``: their forms and help) need
nothing more, and ``load_segmentation`` / ``load_classification`` import TensorFlow when they
load. The
segmentation and classification sources, the reference augmentation and the batched pipelines
are ``tf.data`` code: they need TensorFlow (``pip install 'keras-drn[data]'``) whichever Keras
backend trains, and are imported on first use, so that ``from keras_drn.data import
make_scenes`` works without TensorFlow.

The pipelines yield raw RGB on the 0-255 scale: the model carries the normalisation (a
source's ``mean`` / ``std`` are the statistics to give it).

Typical use::

    import keras_drn
    from keras_drn import data
    source = data.reference_folder("cityscapes", "train", num_classes=19)
    train = data.segmentation_pipeline(source, batch_size=8, training=True, crop_size=896,
                                       scale=2.0, rotate=10)
    val = data.segmentation_pipeline(
        data.reference_folder("cityscapes", "val", num_classes=19),
        batch_size=1, training=False)
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=19,
                                   include_preprocessing=True,
                                   mean=source.mean, std=source.std)
    model.fit(train, validation_data=val, epochs=250)  # any Keras backend
"""

import importlib

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.data.images import read_image
from keras_drn.data.synthetic import CLASS_NAMES, make_scenes, scene_split

_LAZY = {
    "CITYSCAPES_CLASS_NAMES": "sources",
    "CITYSCAPES_MEAN": "sources",
    "CITYSCAPES_STD": "sources",
    "PET_CLASS_NAMES": "sources",
    "SegmentationData": "sources",
    "binary_mask_values": "checks",
    "check_pairs": "checks",
    "folder_mask_values": "sources",
    "holdout": "sources",
    "image_mask_folders": "sources",
    "readable_images": "checks",
    "reference_folder": "sources",
    "resized": "sources",
    "CLASSIFICATION_SOURCES": "registry",
    "SEGMENTATION_SOURCES": "registry",
    "load_classification": "registry",
    "load_segmentation": "registry",
    "files_by_stem": "files",
    "rle_csv_folder": "rle_csv",
    "synthetic_scenes": "sources",
    "tfds_dataset": "sources",
    "augment_pair": "augment",
    "crop_pair": "augment",
    "normalize": "augment",
    "rescale_pair": "augment",
    "rotate_pair": "augment",
    "segmentation_pipeline": "pipeline",
    "ClassificationData": "classification",
    "SYNTHETIC_CLASS_NAMES": "classification",
    "classification_pipeline": "classification",
    "csv_labels": "classification",
    "image_folder": "classification",
    "list_images": "files",
    "synthetic_classification": "classification",
    "tfds_classification": "classification",
    "train_val_split": "classification",
}

__all__ = ["CLASS_NAMES", "IMAGENET_MEAN", "IMAGENET_STD", "make_scenes", "read_image",
           "scene_split", *sorted(_LAZY)]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f"{__name__}.{module}")
    except ImportError as error:
        if error.name != "tensorflow":
            raise
        raise ImportError(f"keras_drn.data.{name} runs on tf.data and needs TensorFlow, "
                          "whichever Keras backend trains: pip install 'keras-drn[data]'.",
                          name="tensorflow") from error
    return getattr(module, name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
