"""``python -m keras_drn.export MODEL OUTPUT ...``: the ``keras-drn export`` command."""

import sys

from keras_drn.export.cli import main

sys.exit(main())
