"""Weight initialisation of the reference implementations (fyu/drn, PASA)."""

import keras


def reference_conv_initializer():
    """Conv kernels ~ normal(0, sqrt(2 / (k * k * out_channels))): He init, fan-out.

    DRN's ``drn.py`` draws every conv this way; PASA's ``kaiming_normal_(mode="fan_out")`` is
    the same distribution.
    """
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )
