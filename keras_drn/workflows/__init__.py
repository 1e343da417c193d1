"""The application built on the library: run folders (``runs``), segmentation and
classification training, evaluation and prediction on data specs (``segmentation``,
``classification``), k-fold runs (``folds``), several processes (``distribute``), precision
policies (``precision``), the training recipe (``training``) and Kaggle submissions
(``submission``). The ``keras-drn`` command (``keras_drn.cli``) parses arguments and calls
these; the library (layers, models, weights, data, export, evaluation, losses, metrics) never
imports them."""
