"""ONNX files: Keras's tf2onnx export, the rewrite onnxruntime needs for dilated convolutions
of unknown size, and onnxruntime's quantisers (float16, dynamic int8, static int8 in QDQ
form)."""

import contextlib
import os

import keras
import numpy as np

from keras_drn import _keras_compat


def write_onnx(served, path, signature, job, calibration):
    """Writes ``served`` (a TensorFlow-backend Keras model) as ONNX at ``path``, quantised as
    ``job.quantize`` (``calibration``: int8 samples as the artifact takes them)."""
    float_path = path if job.quantize is None else f"{path}.float32.onnx"
    with normalization_constants_in_graph(served):
        served.export(float_path, format="onnx", input_signature=signature, verbose=False)
    explicit_dilated_padding(float_path)
    if job.quantize is None:
        return
    # onnxruntime's quantisation tools drop debugging files (a failed symbolic shape
    # inference, its external data) into the working directory: make it the staging folder,
    # which is deleted whatever happens.
    previous = os.getcwd()
    os.chdir(os.path.dirname(path))
    try:
        quantize_onnx(float_path, path, job.quantize, calibration, job.static)
    finally:
        os.chdir(previous)
    os.unlink(float_path)


@contextlib.contextmanager
def normalization_constants_in_graph(model):
    """Within this context every ``keras.layers.Normalization`` of ``model`` (such as the
    ``preprocessing`` layer a trained model carries) traces its statistics as constants of
    the graph.

    The layer keeps its mean and variance as tensors made when it was built, so a traced
    function captures them, and tf2onnx 1.17's ``from_function`` (which Keras's ONNX export
    calls) takes every captured tensor that is not a variable for an input of the ONNX model:
    onnxruntime then asks for ``.../preprocessing/Sub/y:0`` and ``.../Sqrt/x:0`` beside the
    image. As numpy arrays, the same values enter the graph as constants (the layer's call
    converts them where it uses them); the tensors are put back afterwards.
    """
    layers = [layer for layer in _keras_compat.sublayers(model)
              if isinstance(layer, keras.layers.Normalization)]
    saved = [(layer.mean, layer.variance) for layer in layers]
    try:
        for layer, (mean, variance) in zip(layers, saved):
            layer.mean, layer.variance = np.asarray(mean), np.asarray(variance)
        yield
    finally:
        for layer, (mean, variance) in zip(layers, saved):
            layer.mean, layer.variance = mean, variance


def explicit_dilated_padding(path):
    """Writes out the padding of dilated stride-1 ``Conv(auto_pad="SAME_*")`` nodes.

    tf2onnx keeps TensorFlow's "SAME" of a convolution whose input size is unknown as
    ``auto_pad``, which onnxruntime refuses with a dilation ("Dilation not supported for
    AutoPadType::SAME_UPPER"). At stride 1 "SAME" pads ``dilation * (kernel - 1)`` in all,
    whatever the input size, so the pads are known and the node is rewritten in place.
    """
    import onnx

    model = onnx.load(path)
    changed = False
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("auto_pad", b"NOTSET")
        dilations = attrs.get("dilations", [1])
        if (node.op_type != "Conv" or mode not in (b"SAME_UPPER", b"SAME_LOWER")
                or any(s != 1 for s in attrs.get("strides", [1])) or max(dilations) == 1
                or "kernel_shape" not in attrs):
            continue
        totals = [d * (k - 1) for d, k in zip(dilations, attrs["kernel_shape"])]
        small = [t // 2 for t in totals]
        begins = small if mode == b"SAME_UPPER" else [t - h for t, h in zip(totals, small)]
        ends = [t - b for t, b in zip(totals, begins)]
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend(kept + [onnx.helper.make_attribute("pads", begins + ends)])
        changed = True
    if changed:
        onnx.save(model, path)


def quantize_onnx(source, destination, quantize, calibration, static):
    """onnxruntime's quantisers: float16 weights and compute (float32 input and output),
    dynamic int8 (ConvInteger), or static int8 in QDQ form calibrated on ``calibration``
    (symbolic shape inference, which fails on dynamic height and width, only when static)."""
    import onnx
    from onnxruntime import quantization
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if quantize == "float16":
        onnx.save(convert_float_to_float16(onnx.load(source), keep_io_types=True), destination)
    elif quantize == "dynamic_int8":
        quantization.quantize_dynamic(source, destination,
                                      weight_type=quantization.QuantType.QInt8)
    else:
        name = onnx.load(source, load_external_data=False).graph.input[0].name
        prepared = f"{source}.prepared.onnx"
        quantization.quant_pre_process(source, prepared, skip_symbolic_shape=not static)

        class Reader(quantization.CalibrationDataReader):
            def __init__(self):
                self.samples = iter(calibration)

            def get_next(self):
                sample = next(self.samples, None)
                return None if sample is None else {name: sample[None]}

        quantization.quantize_static(
            prepared, destination, Reader(), quant_format=quantization.QuantFormat.QDQ,
            per_channel=True, activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8,
        )
        os.unlink(prepared)
