"""``Job``: everything the TensorFlow writer needs besides the model (it travels as JSON to
the export subprocess). The names of the formats and quantisations (``FORMATS``,
``QUANTIZATIONS``, ``FORMAT_QUANTIZATIONS``, ``SUFFIXES``) come from the registry,
``keras_drn.export.formats``, and are importable here as before."""

import dataclasses

from keras_drn.export.formats import (  # noqa: F401  (importable from here, as before)
    FORMAT_QUANTIZATIONS,
    FORMATS,
    QUANTIZATIONS,
    SUFFIXES,
)


def check_choice(name, value, choices):
    """ValueError naming ``value`` and the ``choices`` when it is not one of them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; received {name}={value!r}.")


@dataclasses.dataclass(frozen=True)
class Job:
    """What to write and what the artifact takes.

    ``mean``/``std`` are ``None`` when the artifact takes raw 0-255 RGB (the model carries a
    ``preprocessing`` layer: uint8 with ``end_to_end``, else float32), and otherwise the
    statistics its normalised float32 inputs were computed with (used only to make the
    verification and calibration scenes look like what the model was trained on).
    """

    format: str
    quantize: str
    batch_shape: tuple  # the artifact's input shape, None where dynamic
    end_to_end: bool
    output_dtype: str  # of class ids (end_to_end), else "float32"
    mean: tuple = None
    std: tuple = None

    @property
    def input_dtype(self):
        return "uint8" if self.end_to_end else "float32"

    @property
    def raw_input(self):
        """The artifact takes 0-255 RGB (the normalisation is inside it)."""
        return self.mean is None

    @property
    def static(self):
        return None not in self.batch_shape[1:3]

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, fields):
        def as_tuple(value):
            return None if value is None else tuple(value)

        return cls(**{**fields, "batch_shape": tuple(fields["batch_shape"]),
                      "mean": as_tuple(fields["mean"]), "std": as_tuple(fields["std"])})
