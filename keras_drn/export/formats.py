"""The export formats as data: one ``ExportFormat`` per format, in ``REGISTRY``.

Each entry says what the artifact is (a folder or a file with its suffix), which
quantisations it takes, which sizes it needs static, and the functions that write it (under
TensorFlow, from the graph ``keras_drn.export.serving`` makes), load it back with its own
runtime (a function running it on a batch) and count its ops. ``keras_drn.export.api`` checks
a call against the entry, ``keras_drn.export.tensorflow`` writes through it and
``keras_drn.export.verify`` loads and counts through it; the command's choices are its names.
Adding a format is one entry here and its three functions.

This module imports neither Keras nor TensorFlow: the functions are named by module and
attribute and imported when first called.
"""

import dataclasses
import importlib

# Every quantisation some format takes, in the order choices are listed.
QUANTIZATION_CHOICES = (None, "float16", "dynamic_int8", "int8")


@dataclasses.dataclass(frozen=True)
class _Deferred:
    """The function ``module.name``, imported at its first call."""

    module: str
    name: str

    def __call__(self, *args, **kwargs):
        return getattr(importlib.import_module(self.module), self.name)(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One export format.

    ``name``: what ``format=`` takes. ``suffix``: the artifact is a file ending with it, or a
    folder (``None``). ``quantizations``: what ``quantize=`` takes (``None``: float32).
    ``write(served, path, signature, job, calibration)``: writes the artifact (TensorFlow
    backend; ``signature``: the input ``tf.TensorSpec`` list, ``calibration``: int8 samples).
    ``load(path)``: a function ``inputs (N, H, W, C) numpy -> outputs (N, ...) numpy`` running
    the artifact with its own runtime. ``histogram(path)``: ``(op counts, dilated
    convolutions or None)``. ``static``: why the format needs a static height and width
    (and a batch of 1), or ``None``; ``static_quantizations``: ``{quantize: why}`` for the
    quantisations that need a static size. ``mobile``: its op histogram tells whether the
    graph is mobile-friendly (``keras_drn.export.verify.mobile_friendly``).
    """

    name: str
    suffix: str
    quantizations: tuple
    write: object
    load: object
    histogram: object
    static: str = None
    static_quantizations: dict = dataclasses.field(default_factory=dict)
    mobile: bool = False

    @property
    def artifact(self):
        """``"a folder"`` or ``"a .tflite file"``, for messages."""
        return "a folder" if self.suffix is None else f"a {self.suffix} file"

    def needs_static_size(self, quantize):
        """Why this format with ``quantize`` needs a static height and width, or ``None``."""
        return self.static or self.static_quantizations.get(quantize)


_TF = "keras_drn.export.tensorflow"
_ONNX = "keras_drn.export.onnx"
_VERIFY = "keras_drn.export.verify"

REGISTRY = {
    f.name: f
    for f in (
        ExportFormat(
            "tf_saved_model", None, (None,),
            write=_Deferred(_TF, "write_saved_model"),
            load=_Deferred(_VERIFY, "load_saved_model"),
            histogram=_Deferred(_VERIFY, "saved_model_histogram"),
        ),
        ExportFormat(
            "litert", ".tflite", QUANTIZATION_CHOICES,
            write=_Deferred(_TF, "write_litert"),
            load=_Deferred(_VERIFY, "load_litert"),
            histogram=_Deferred(_VERIFY, "litert_histogram"),
            static=("LiteRT graphs have a static input shape (batch 1): only then is each "
                    "dilated convolution one CONV_2D instead of a SPACE_TO_BATCH_ND chain."),
            mobile=True,
        ),
        ExportFormat(
            "onnx", ".onnx", QUANTIZATION_CHOICES,
            write=_Deferred(_ONNX, "write_onnx"),
            load=_Deferred(_VERIFY, "load_onnx"),
            histogram=_Deferred(_VERIFY, "onnx_histogram"),
            static_quantizations={"float16": (
                "ONNX float16 needs a static size: onnxruntime's float16 converter also "
                "converts the integer shape arithmetic that tf2onnx writes for dynamic height "
                "and width (through float casts), which breaks it.")},
        ),
    )
}

# The registry's names, as the export, the command's choices and older code read them.
FORMATS = tuple(REGISTRY)
QUANTIZATIONS = tuple(q for q in QUANTIZATION_CHOICES
                      if any(q in f.quantizations for f in REGISTRY.values()))
FORMAT_QUANTIZATIONS = {name: f.quantizations for name, f in REGISTRY.items()}
SUFFIXES = {name: f.suffix for name, f in REGISTRY.items() if f.suffix is not None}


def get_format(name):
    """The ``ExportFormat`` named ``name``; ValueError listing the names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"format must be one of {FORMATS}; received format={name!r}.")
    return REGISTRY[name]
