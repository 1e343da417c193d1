"""``python -m keras_drn.cli ...``: the ``keras-drn`` command."""

import sys

from keras_drn.cli import main

sys.exit(main())
