"""Loading an export back with its own runtime (``tf.saved_model.load``, the LiteRT
interpreter of ``ai-edge-litert``, ``onnxruntime``), comparing it with the Keras model on the
embedded scenes, and counting its ops: the ``load`` and ``histogram`` functions of the entries
of ``keras_drn.export.formats``, reached through it."""

import collections
import os

import numpy as np

from keras_drn.export.inputs import VERIFY_SIZES, artifact_inputs, scenes
from keras_drn.export.formats import get_format

# Largest |artifact - Keras| allowed, relative to max(1, max |Keras output|).
TOLERANCES = {None: 1e-4, "float16": 1e-2}
FLOAT_SAMPLES = 2  # embedded scenes per size for a float comparison
AGREEMENT_SAMPLES = 16  # embedded scenes for agreement (quantised or class-id exports)
NON_MOBILE_OPS = ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")
DILATED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "Conv", "ConvInteger")
# SavedModel graph plumbing left out of its op histogram.
PLUMBING_OPS = frozenset((
    "Const", "Identity", "IdentityN", "NoOp", "Placeholder", "ReadVariableOp", "VarHandleOp",
    "StatefulPartitionedCall", "PartitionedCall", "StopGradient",
))


def mobile_friendly(histogram):
    """A LiteRT graph of builtin ops only, without space-to-batch chains."""
    return not any(name.startswith("CUSTOM") or name in NON_MOBILE_OPS for name in histogram)


def load_artifact(path, fmt):
    """A function ``inputs (N, H, W, C) -> outputs (N, ...)`` running the artifact: the
    ``load`` of its format's entry in ``keras_drn.export.formats``."""
    return get_format(fmt).load(path)


def load_saved_model(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)  # kept alive by the closure: it owns the variables
    return lambda inputs: loaded.serve(tf.constant(inputs)).numpy()


def load_litert(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(inputs):
        outputs = []
        for sample in inputs:
            interpreter.set_tensor(source, sample[None])
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(target)[0].copy())
        return np.stack(outputs)

    return run


def load_onnx(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda inputs: session.run(None, {name: inputs})[0]


def op_histogram(path, format):
    """``(histogram, dilated)``: op counts of an exported graph, and how many convolutions
    carry a dilation themselves (LiteRT, ONNX; None for a SavedModel, whose TensorFlow graph
    expresses dilation with SpaceToBatchND). Flex and custom LiteRT ops count as
    ``"CUSTOM:<name>"``. The ``histogram`` of the format's entry in
    ``keras_drn.export.formats``."""
    return get_format(format).histogram(path)


def onnx_histogram(path):
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    counts = collections.Counter(node.op_type for node in graph.node)
    dilated = sum(
        1 for node in graph.node if node.op_type in DILATED_OPS
        and any(a.name == "dilations" and max(a.ints) > 1 for a in node.attribute))
    return dict(counts), dilated


def saved_model_histogram(path):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    meta_graph = proto.meta_graphs[0]
    graph = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    # The ops reachable from the serving signature's outputs, through the function calls.
    outputs = {tensor.name.split(":")[0]
               for tensor in meta_graph.signature_def["serving_default"].outputs.values()}
    pending = [node.attr["f"].func.name for node in graph.node
               if node.name in outputs and "f" in node.attr]
    seen, counts = set(), collections.Counter()
    while pending:
        name = pending.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            if "f" in node.attr:
                pending.append(node.attr["f"].func.name)
            if node.op not in PLUMBING_OPS:
                counts[node.op] += 1
    return dict(counts), None


def litert_histogram(path):
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    with open(path, "rb") as handle:
        buffer = handle.read()
    model = schema.Model.GetRootAs(buffer, 0)
    opcodes = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            opcodes.append(f"CUSTOM:{code.CustomCode().decode()}")
        else:
            opcodes.append(names.get(builtin, f"BUILTIN_{builtin}"))
    counts, dilated = collections.Counter(), 0
    options = {"CONV_2D": schema.Conv2DOptions, "DEPTHWISE_CONV_2D": schema.DepthwiseConv2DOptions}
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            name = opcodes[operator.OpcodeIndex()]
            counts[name] += 1
            table = operator.BuiltinOptions()
            if name in options and table is not None:
                parsed = options[name]()
                parsed.Init(table.Bytes, table.Pos)
                dilated += max(parsed.DilationHFactor(), parsed.DilationWFactor()) > 1
    return dict(counts), dilated


def verify(model, staged, job, task, report, min_agreement):
    """Runs the artifact and ``model`` (the Keras model it was written from, before
    ``serving_model``) on embedded scenes; fills ``report``: checks, differences, agreement,
    mIoU, failures, ``passed``."""
    run = load_artifact(staged, job.format)
    quantized = job.quantize in ("dynamic_int8", "int8")
    tolerance = None if quantized else TOLERANCES[job.quantize]
    report.tolerance = tolerance
    sizes = [tuple(job.batch_shape[1:3])] if job.static else list(VERIFY_SIZES)
    classes = model.outputs[0].shape[-1]
    confusion = np.zeros((classes, classes), "int64")
    for index, (height, width) in enumerate(sizes):
        count = AGREEMENT_SAMPLES if index == 0 and (quantized or job.end_to_end) else FLOAT_SAMPLES
        inputs = artifact_inputs(scenes(count, height, width, seed=0), job)
        # Keras gets the very inputs the artifact gets (as float32): the normalisation is
        # inside both, so a wrong one in the artifact shows up here.
        expected = np.asarray(
            model.predict(inputs.astype("float32"), batch_size=4, verbose=0), "float32")
        got = run(inputs)
        check = {"size": (height, width), "samples": count}
        report.checks.append(check)
        expected_ids = expected.argmax(-1)
        want_shape = expected_ids.shape if job.end_to_end else expected.shape
        if got.shape != want_shape:
            report.failures.append(f"{height}x{width}: output shape {got.shape}, Keras "
                                   f"{want_shape}")
            continue
        if job.end_to_end:
            ids = got.astype("int64")
            check["agreement"] = float(np.mean(ids == expected_ids))
            if tolerance is not None:
                # A float export may flip a class only where Keras's top two logits tie
                # within the tolerance.
                top2 = np.sort(expected, axis=-1)[..., -2:]
                margin = top2[..., 1] - top2[..., 0]
                limit = 2 * tolerance * max(1.0, float(np.abs(expected).max()))
                flips = int(np.sum((ids != expected_ids) & (margin > limit)))
                if flips:
                    report.failures.append(f"{height}x{width}: {flips} class ids differ from "
                                           "Keras's argmax where its logits do not tie")
        else:
            if not np.all(np.isfinite(got)):
                report.failures.append(f"{height}x{width}: non-finite outputs")
                continue
            diff = float(np.abs(got.astype("float32") - expected).max())
            scale = max(1.0, float(np.abs(expected).max()))
            check.update(max_abs_diff=diff, max_rel_diff=diff / scale)
            report.max_abs_diff = max(report.max_abs_diff or 0.0, diff)
            report.max_rel_diff = max(report.max_rel_diff or 0.0, diff / scale)
            if tolerance is not None and diff > tolerance * scale:
                report.failures.append(f"{height}x{width}: max |diff| {diff:.2e} exceeds "
                                       f"{tolerance:.0e} x {scale:.3g}")
            ids = got.argmax(-1)
        confusion += np.bincount(expected_ids.ravel() * classes + ids.ravel().clip(0, classes - 1),
                                 minlength=classes * classes).reshape(classes, classes)
    if confusion.sum():
        report.agreement = float(np.trace(confusion) / confusion.sum())
        if task == "segmenter":
            union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
            present = union > 0
            report.miou = float(np.mean(np.diag(confusion)[present] / union[present]))
    if min_agreement is not None and report.agreement is not None \
            and report.agreement < min_agreement:
        report.failures.append(f"agreement {report.agreement:.4f} is below min_agreement="
                               f"{min_agreement}")
    report.passed = not report.failures
