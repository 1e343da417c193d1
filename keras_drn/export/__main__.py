"""``python -m keras_drn.export MODEL OUTPUT ...``: the ``keras-drn export`` command."""

import sys

from keras_drn.cli.export import main

sys.exit(main())
