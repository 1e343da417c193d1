"""The ``keras-drn`` command: one module per command (parsing and dispatch only; the work is
in ``keras_drn.workflows`` and the library), ``app`` the parser and the dispatch. Parsing
imports no Keras, so ``keras-drn --help`` answers at once."""

from keras_drn.cli.app import main

__all__ = ["main"]
