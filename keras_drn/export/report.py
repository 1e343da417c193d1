"""What an export wrote and how it compares with Keras: ``ExportReport`` (returned by
``keras_drn.export``) and ``ExportVerificationError`` (raised, with the report, when the
artifact does not match)."""

import dataclasses


class ExportVerificationError(RuntimeError):
    """The exported artifact does not match the Keras model; ``report`` holds the numbers."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def shape_text(shape):
    """``(1, None, 3)`` -> ``"(1, ?, 3)"``."""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")" if shape else "?"


@dataclasses.dataclass
class ExportReport:
    """What was written and how it compares with Keras (returned by ``export``).

    ``checks`` has one entry per verified input size: ``size``, ``samples`` and
    ``max_abs_diff``/``max_rel_diff`` (outputs compared as numbers; relative to
    ``max(1, max |Keras output|)``) or ``agreement`` (class ids compared). ``agreement`` is the
    fraction of pixels (segmenter) or images (classifier, top-1) whose class matches Keras's,
    over all checks, and ``miou`` the mean IoU of the artifact's classes against Keras's.
    ``op_histogram`` counts the graph's ops; ``dilated_convs`` the convolutions that carry a
    dilation (LiteRT, ONNX). ``preprocessing`` is ``None`` when the artifact takes normalised
    inputs, else ``{"mean", "std", "added"}``: the statistics of the ``preprocessing`` layer
    inside the artifact (0-1 RGB), ``added`` True when the export added that layer from
    ``mean``/``std`` because the model had none.
    """

    path: str
    format: str
    quantize: str = None
    task: str = None
    end_to_end: bool = False
    backend: str = None
    route: str = None
    input_shape: tuple = None
    input_dtype: str = None
    output_dtype: str = None
    preprocessing: dict = None
    size_bytes: int = 0
    export_seconds: float = 0.0
    verify_seconds: float = 0.0
    tolerance: float = None
    max_abs_diff: float = None
    max_rel_diff: float = None
    agreement: float = None
    miou: float = None
    checks: list = dataclasses.field(default_factory=list)
    op_histogram: dict = dataclasses.field(default_factory=dict)
    dilated_convs: int = None
    mobile_friendly: bool = None
    passed: bool = False
    failures: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)

    def preprocessing_text(self):
        """One line on what the artifact's input is and who normalises it."""
        if self.preprocessing is None:
            return "input normalised outside the artifact (the model has no preprocessing layer)"
        statistics = (f"(x / 255 - mean) / std, mean={_numbers(self.preprocessing['mean'])}, "
                      f"std={_numbers(self.preprocessing['std'])}")
        if self.preprocessing["added"]:
            return (f"raw 0-255 RGB in; normalisation ADDED by the export from mean=/std= (the "
                    f"model had no preprocessing layer): {statistics}")
        return f"raw 0-255 RGB in; the model's own preprocessing layer: {statistics}"

    def summary(self):
        """A few lines for people: the file, the comparison with Keras, the op histogram."""
        precision = self.quantize or "float32"
        lines = [
            f"{self.format} ({precision}{', end to end' if self.end_to_end else ''}) -> "
            f"{self.path}: {self.size_bytes / 2**20:.1f} MiB, input {self.input_dtype} "
            f"{shape_text(self.input_shape)}, output {self.output_dtype}",
            f"  preprocessing: {self.preprocessing_text()}",
            f"  written {self.route} in {self.export_seconds:.1f} s; verified in "
            f"{self.verify_seconds:.1f} s against the Keras model ({self.backend} backend): "
            + ("PASSED" if self.passed else "FAILED"),
        ]
        for check in self.checks:
            size = f"{check['size'][0]}x{check['size'][1]}"
            if "max_abs_diff" in check:
                limit = "" if self.tolerance is None else f", limit {self.tolerance:.0e}"
                lines.append(
                    f"  {size}, {check['samples']} scenes: max |diff| {check['max_abs_diff']:.2e}"
                    f" (relative {check['max_rel_diff']:.2e}{limit})"
                )
            elif "agreement" in check:
                lines.append(f"  {size}, {check['samples']} scenes: class ids equal Keras's "
                             f"argmax at {100 * check['agreement']:.2f}%")
        if self.agreement is not None:
            unit = "pixels" if self.task == "segmenter" else "images (top-1)"
            text = f"  agreement with Keras on the embedded scenes: {100 * self.agreement:.2f}% "
            text += f"of {unit}"
            if self.miou is not None:
                text += f", mIoU {self.miou:.4f}"
            lines.append(text)
        ops_text = ", ".join(f"{name} {count}" for name, count in
                             sorted(self.op_histogram.items(), key=lambda item: -item[1]))
        lines.append(f"  op histogram ({sum(self.op_histogram.values())} ops): {ops_text}")
        if self.dilated_convs is not None:
            lines.append(f"  dilated convolutions carried by a single conv op: "
                         f"{self.dilated_convs}")
        if self.mobile_friendly is not None:
            lines.append("  mobile-friendly: " + (
                "yes (builtin ops only, no SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND)"
                if self.mobile_friendly else "no (Flex/custom ops or space-to-batch chains)"))
        lines += [f"  failure: {failure}" for failure in self.failures]
        return "\n".join(lines)


def _numbers(values):
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
