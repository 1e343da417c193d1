"""Converts a DRN PyTorch checkpoint (the reference's drn.py or segment.py, or imgclsmob's
pytorchcv layout; .pth or .pth.zip) to a Keras .weights.h5 file, offline.

    python tools/convert_weights.py drn_d_22-4bd2f8ea.pth drn_d_22.weights.h5 --variant drn_d_22

Same as ``keras-drn convert``. PyTorch is not needed.
"""

import sys

from keras_drn.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
