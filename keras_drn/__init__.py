"""keras_drn: Dilated Residual Networks and their companions for Keras 3.

The library: ``keras_drn.DRN_C_26(...)`` and friends build the DRN-A/C/D classifiers and
backbones (Yu, Koltun, Funkhouser, CVPR 2017), ``DRNSegmenter`` the segmenters;
``keras_drn.layers`` holds the building blocks, ``models``, ``weights``, ``data``,
``export``, ``evaluation``, ``losses`` and ``metrics`` the rest. The application built on it
(run folders, k-fold, several processes, submissions) is ``keras_drn.workflows``, the
``keras-drn`` command ``keras_drn.cli``; the library never imports either.

``import keras_drn`` imports the public API at once, so that the layers, losses and metrics a
saved model names are registered before ``keras.saving.load_model`` reads it. The
``keras-drn`` command alone defers that until it has parsed its arguments (``--help``
answers without importing Keras); it then calls ``_load``.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from keras_drn import _environment

__version__ = "0.1.0"

# Public name -> the module that defines it.
_PUBLIC = {
    "DRNSegmenter": "keras_drn.models.segmenter",
    "VARIANTS": "keras_drn.models.drn",
    "build_classifier": "keras_drn.models.classifier",
    "build_drn": "keras_drn.models.drn",
    "feature_model": "keras_drn.models.drn",
    "fold_batch_norm": "keras_drn.models.fold",
    "set_trainable": "keras_drn.models.trainable",
    "get_model": "keras_drn.models.registry",
    "list_models": "keras_drn.models.registry",
    "preprocess_input": "keras_drn.models.preprocessing",
    "export": "keras_drn.export.api",
    **{name: "keras_drn.models.registry" for name in (
        "DRN_A_18", "DRN_A_34", "DRN_A_50", "DRN_C_26", "DRN_C_42", "DRN_C_58", "DRN_D_22",
        "DRN_D_24", "DRN_D_38", "DRN_D_40", "DRN_D_54", "DRN_D_56", "DRN_D_105", "DRN_D_107")},
}
_SUBMODULES = ("layers", "losses", "metrics", "submission")

# Modules that moved when the application left the library's top level (0.2): the old name
# imports the new module (the same module object, so patching either patches both).
MOVED = {
    "keras_drn.classify": "keras_drn.workflows.classification",
    "keras_drn.segment": "keras_drn.workflows.segmentation",
    "keras_drn.runs": "keras_drn.workflows.runs",
    "keras_drn.folds": "keras_drn.workflows.folds",
    "keras_drn.distribute": "keras_drn.workflows.distribute",
    "keras_drn.precision": "keras_drn.workflows.precision",
    "keras_drn.training": "keras_drn.workflows.training",
    "keras_drn.submission": "keras_drn.workflows.submission",
    "keras_drn.consistency": "keras_drn.evaluation.consistency",
    "keras_drn.visualize": "keras_drn.evaluation.visualize",
    "keras_drn.localization": "keras_drn.models.localization",
    "keras_drn.export.cli": "keras_drn.cli.export",
    "keras_drn.weights.commands": "keras_drn.cli.weights",
}

__all__ = sorted([*_PUBLIC, *_SUBMODULES])


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name of ``MOVED`` to its new module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        # Importing set the old name's spec on the module: it keeps its own.
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name):
    if name in _PUBLIC or name in _SUBMODULES:
        _environment.prepare()
        if name in _SUBMODULES:
            value = importlib.import_module(f"keras_drn.{name}")
        else:
            value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    if f"keras_drn.{name}" in MOVED:
        return importlib.import_module(f"keras_drn.{name}")
    raise AttributeError(f"module 'keras_drn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _load():
    """Chooses the backend, then imports the public API (registering its serialisables)."""
    _environment.prepare()
    for name in __all__:
        __getattr__(name)


if not _environment._in_command():
    _load()
