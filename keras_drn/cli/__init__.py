"""The ``keras-drn`` command: parsing and dispatch only; the work is in ``keras_drn.workflows``
and the library. Parsing imports no Keras, so ``keras-drn --help`` answers at once."""

from keras_drn.cli.app import main

__all__ = ["main"]
