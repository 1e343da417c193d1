"""The run record: every option of a training run, typed, in one place.

``SegmentationRun`` holds the keyword arguments of ``keras_drn.workflows.segmentation.train``
(and ``train_folds``), ``ClassificationRun`` those of ``keras_drn.workflows.classification.
train``. Each field carries, as metadata (``option``), its help text, its choices, the flag of
``keras-drn train`` (``--`` and the name with dashes unless given), whether ``info.json``
records it, and whether it identifies the run (a rerun into the folder with another value is
another run: ``keras_drn.workflows.runs.IDENTITY`` is read from here). The ``keras-drn train``
flags, defaults and choices are generated from these fields (``keras_drn.cli.train``).
Defaults that are library facts (the reference's learning rate, the heads, the dtype
policies) are read from the library.

Facts a run learns while it trains (the data's classes and statistics, the dtype policy in
force) are fields too (``fact``): recorded, never given.

``record.to_json()`` is the dict of ``info.json`` (its format is ``runs.FORMAT``'s; keys
outside the record, such as ``status``, are the run folder's); ``from_json`` reads one back,
old folders included (a missing key takes its default). This module imports no Keras: the
command parses its arguments with it before Keras is imported.
"""

import argparse
import dataclasses
import inspect
import typing

from keras_drn import constants
from keras_drn.workflows import precision
from keras_drn.workflows.folds import STRATIFY


def option(default, help, *, identity=False, recorded=True, flag=..., choices=None,
           type=None, metavar=None, group=None):
    """A record field that is an option: ``help`` (the text of ``--help``, without the
    default, which the command adds), ``choices``, ``flag`` (default: ``--name-with-dashes``;
    ``None``: the command sets it otherwise), ``type`` (parses the flag's text; default: the
    default's type), ``metavar`` and ``group`` (of ``--help``), whether ``info.json`` records
    it and whether it identifies the run."""
    return dataclasses.field(default=default, metadata={
        "help": help, "identity": identity, "recorded": recorded, "flag": flag,
        "choices": choices, "type": type, "metavar": metavar, "group": group, "fact": False})


def fact(help, *, identity=False):
    """A record field that training fills in (from the data, the policy in force): recorded
    in ``info.json``, never an option."""
    return dataclasses.field(default=None, metadata={
        "help": help, "identity": identity, "recorded": True, "flag": None, "choices": None,
        "type": None, "metavar": None, "group": None, "fact": True})


def none_or_text(text):
    """A flag's text, ``"none"`` meaning ``None``."""
    return None if text in ("none", "None") else text


def _numbers(text, kind=float, what="numbers"):
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")


def sizes(text):
    """``"0,16"`` -> ``(0, 16)``: comma-separated sizes >= 0."""
    values = _numbers(text, int, "integers")
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"sizes must be >= 0, got {text!r}")
    return values


def fraction_range(text):
    """``"0.35,1"`` -> ``(0.35, 1.0)``."""
    values = _numbers(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers 'low,high', got {text!r}")
    return values


def names(text):
    """``"sky,road"`` -> ``("sky", "road")``."""
    values = tuple(v.strip() for v in text.split(","))
    if not all(values):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return values


def fold_number(text):
    """A fold number or ``"all"``."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a fold number or 'all', got {text!r}")


def switch(text):
    """``"true"``/``"false"`` (or ``"auto"``: ``None``)."""
    values = {"true": True, "false": False, "auto": None}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"expected true, false or auto, got {text!r}")
    return values[text.lower()]


class Record:
    """What both records share: reading kwargs and ``info.json``, writing ``info.json``."""

    TASK: typing.ClassVar[str]

    @classmethod
    def options(cls):
        """The fields that are options (the keyword arguments of the task's ``train``)."""
        return [f for f in dataclasses.fields(cls) if not f.metadata["fact"]]

    @classmethod
    def identity_keys(cls):
        """The ``info.json`` keys whose values identify a run of this task."""
        return ("task", *(f.name for f in dataclasses.fields(cls) if f.metadata["identity"]))

    @classmethod
    def signature(cls):
        """The keyword-only signature of the task's ``train``: the options and defaults."""
        return inspect.Signature([
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
            for f in cls.options()])

    @classmethod
    def from_kwargs(cls, function, **kwargs):
        """The record of ``function(**kwargs)``; TypeError naming an unknown argument and
        the valid ones (as Python does for a misspelt keyword)."""
        known = {f.name for f in cls.options()}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}; "
                            f"its arguments are {', '.join(sorted(known))}.")
        return cls(**kwargs)

    def to_json(self):
        """The recorded fields as ``info.json`` holds them (tuples as lists), with ``task``."""
        info = {"task": self.TASK}
        for field in dataclasses.fields(self):
            if field.metadata["recorded"]:
                value = getattr(self, field.name)
                info[field.name] = list(value) if isinstance(value, tuple) else value
        return info

    @classmethod
    def from_json(cls, info):
        """The record of an ``info.json`` dict; keys it lacks (an older folder's) take their
        defaults, keys outside the record (``status``, ``versions``) are left out."""
        values = {}
        for field in dataclasses.fields(cls):
            if field.metadata["recorded"] and field.name in info:
                value = info[field.name]
                values[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


_SHARED_HELP = {
    "data": "the training data: 'synthetic' (the embedded scenes), 'tfds:<name>', a folder or "
            "a file of the task's kinds (an unknown spec is refused with the list of them)",
    "output_dir": "run folder: info.json, model.keras, best.keras, log.csv, state/; safe to "
                  "kill at any moment, rerun the same command to resume",
    "backbone": "DRN variant (keras-drn models)",
    "backbone_weights": "'imagenet', a weights file, or none (random init)",
    "seed": "seed of data and initialisation",
    "weight_decay": "weight decay",
    "mixed_precision": "dtype policy (auto: mixed_bfloat16 on GPUs with bfloat16 tensor cores "
                       "and, on TensorFlow, on CPUs with AMX-BF16; mixed_float16 on older "
                       "GPUs; float32 elsewhere)",
    "overwrite": "delete the run already in --output-dir and start over (without it, a folder "
                 "holding a different run, or files of a run that keras_drn did not write, is "
                 "refused and the same run resumes); with --fold all, also replace a "
                 "threshold.json keras_drn did not write",
    "verbose": "Keras's fit verbosity (the command: 1 on a terminal, 2 with "
               "--one-line-per-epoch or when the output is a file)",
    "tensorboard": "also write TensorBoard logs into OUTPUT_DIR/tensorboard",
}


def _shared(name, default, **kwargs):
    return option(default, _SHARED_HELP[name], **kwargs)


@dataclasses.dataclass(frozen=True)
class SegmentationRun(Record):
    """The options of a segmentation run (``keras_drn.workflows.segmentation.train``)."""

    TASK: typing.ClassVar[str] = "segmentation"

    data: str = _shared("data", "synthetic", identity=True)
    output_dir: str = _shared("output_dir", "runs/drn", recorded=False)
    backbone: str = _shared("backbone", "drn_d_22", identity=True)
    head: str = option("drn", "drn: 1x1 classifier + bilinear x8; gcn: GCN + boundary "
                       "refinement", identity=True, choices=constants.HEADS)
    context: str = option(None, "global context before the classifier", identity=True,
                          choices=(None, *constants.CONTEXTS), type=none_or_text)
    anti_alias: str = option(None, "low-pass filter before each downsampling", identity=True,
                             choices=constants.ANTI_ALIAS, type=none_or_text)
    upsampling: str = option("deconv", "how logits return to the input resolution",
                             identity=True, choices=constants.UPSAMPLINGS)
    backbone_weights: str = _shared("backbone_weights", None, identity=True,
                                    type=none_or_text)
    num_classes: int = option(None, "classes of an image/mask folder: 1 for binary masks "
                              "(one logit per pixel, sigmoid; 0/1 or 0/255 masks), else the "
                              "number of classes (softmax)", identity=True, type=int)
    class_names: tuple = option(None, "comma-separated class names, in class id order "
                                "(default: the data's); also --class-names-file",
                                identity=True, type=names, metavar="A,B,...")
    size: int = option(None, "side of the synthetic scenes (default 64); for image files, the "
                       "side every image and mask is resized to (default: their own sizes)",
                       identity=True, type=int)
    val_fraction: float = option(None, "hold out this share of a folder's (or Kaggle CSV "
                                 "folder's) training files as its val split, seeded by --seed, "
                                 "when the data has no val split", identity=True, type=float)
    epochs: int = option(10, "training epochs")
    batch_size: int = option(8, "batch size; with several processes the global batch, split "
                             "evenly over them")
    crop_size: int = option(None, "random crop side (default: none; the scene size for "
                            "synthetic)", identity=True, type=int)
    optimizer: str = option("sgd", "sgd: the reference's SGD with momentum; adamw: AdamW",
                            choices=("sgd", "adamw"))
    learning_rate: float = option(constants.REFERENCE_LEARNING_RATE, "learning rate",
                                  flag="--lr")
    lr_mode: str = option("poly", "poly: lr*(1-t/T)^0.9; step: x0.1 every --step epochs",
                          choices=("poly", "step"))
    step: int = option(100, "epochs between x0.1 steps")
    momentum: float = option(constants.REFERENCE_MOMENTUM, "SGD momentum")
    weight_decay: float = _shared("weight_decay", constants.REFERENCE_WEIGHT_DECAY)
    scale: float = option(2.0, "scale by U[1/s, s] (1 turns it off)", flag="--random-scale")
    rotate: int = option(10, "rotate by an integer angle in [-r, r] degrees (0 turns it off)",
                         flag="--random-rotate")
    flip: bool = option(True, "random horizontal flip")
    seed: int = _shared("seed", 0, identity=True)
    overwrite: bool = _shared("overwrite", False, recorded=False)
    mixed_precision: str = _shared("mixed_precision", "auto", recorded=False,
                                   choices=precision.CHOICES)
    verbose: int = _shared("verbose", 2, recorded=False, flag=None)
    tensorboard: bool = _shared("tensorboard", False)
    coordinator: str = option(None, "address of process 0 (it listens on PORT)",
                              recorded=False, type=str, metavar="HOST:PORT",
                              group="distributed")
    num_processes: int = option(None, "processes of the job (default 1)", recorded=False,
                                type=int, metavar="N", group="distributed")
    process_id: int = option(None, "this process, 0 to N-1 (0 is the chief)", recorded=False,
                             type=int, metavar="I", group="distributed")
    heartbeat_timeout: int = option(constants.HEARTBEAT_TIMEOUT, "a process silent this long "
                                    "counts as dead and the job stops", recorded=False,
                                    metavar="SECONDS", group="distributed")
    init_timeout: int = option(constants.INIT_TIMEOUT, "how long a process waits for all the "
                               "others to join before it gives up, saying whom it waited for",
                               recorded=False, metavar="SECONDS", group="distributed")
    folds: int = option(None, "number of folds K (seeded by --seed)", identity=True, type=int,
                        group="k-fold")
    fold: int = option(None, "the held-out fold, 0..K-1, or 'all': train every fold into "
                       "OUTPUT_DIR/fold-I, then write OUTPUT_DIR/threshold.json (the "
                       "threshold maximising the out-of-fold mean per-image Dice)",
                       identity=True, type=fold_number, group="k-fold")
    stratify: str = option(None, "empty: every fold gets its share of empty and non-empty "
                           "masks", identity=True, choices=(None, *STRATIFY),
                           type=none_or_text, group="k-fold")
    group_by: str = option(None, "a column of the data's CSV (rle: sources; 'id' works for "
                           "any): examples sharing a value share a fold", identity=True,
                           type=str, group="k-fold")
    min_sizes: tuple = option((0,), "with --fold all: minimum component sizes the threshold "
                              "search tries, comma-separated", recorded=False, type=sizes,
                              group="k-fold")
    mean: tuple = fact("0-1 RGB mean of the training data (the model's normalisation)",
                       identity=True)
    std: tuple = fact("0-1 RGB std of the training data", identity=True)
    dtype_policy: str = fact("the dtype policy the epochs ran in")
    processes: int = fact("processes of the latest start")


@dataclasses.dataclass(frozen=True)
class ClassificationRun(Record):
    """The options of a classification run (``keras_drn.workflows.classification.train``)."""

    TASK: typing.ClassVar[str] = "classification"

    data: str = _shared("data", "synthetic", identity=True)
    output_dir: str = _shared("output_dir", "runs/classifier", recorded=False)
    backbone: str = _shared("backbone", "drn_d_22", identity=True)
    backbone_weights: str = _shared("backbone_weights", None, identity=True,
                                    type=none_or_text)
    image_size: int = option(32, "side of the square training and evaluation images",
                             identity=True, flag="--size")
    head_epochs: int = option(2, "epochs of the new head on the frozen backbone")
    epochs: int = option(8, "epochs of the unfrozen phase, at most")
    batch_size: int = option(32, "batch size")
    learning_rate: float = option(1e-3, "AdamW learning rate of the frozen phase",
                                  flag="--lr")
    finetune_learning_rate: float = option(3e-4, "learning rate of the unfrozen phase",
                                           flag="--finetune-lr")
    weight_decay: float = _shared("weight_decay", 1e-4)
    patience: int = option(3, "early stopping patience in epochs")
    val_fraction: float = option(0.2, "validation share of a folder, CSV or TFDS dataset",
                                 identity=True)
    image_dir: str = option(None, "folder of the images a CSV lists", identity=True, type=str)
    train_bn: bool = option(None, "let BatchNormalization learn in the unfrozen phase: true, "
                            "false, or auto (only for a randomly initialised backbone)",
                            type=switch, metavar="true|false|auto")
    dropout: float = option(0.0, "dropout rate before the classifier", identity=True)
    mixed_precision: str = _shared("mixed_precision", "auto", recorded=False,
                                   choices=precision.CHOICES)
    crop_scale: tuple = option((0.35, 1.0), "random crop area range, 'low,high' of the image",
                               type=fraction_range)
    color_jitter: bool = option(True, "random colour jitter")
    rand_augment: bool = option(False, "RandAugment (slow to build)")
    seed: int = _shared("seed", 0, identity=True)
    overwrite: bool = _shared("overwrite", False, recorded=False)
    verbose: int = _shared("verbose", 2, recorded=False, flag=None)
    tensorboard: bool = _shared("tensorboard", False)
    num_classes: int = fact("classes of the data", identity=True)
    class_names: tuple = fact("class names of the data, in label order", identity=True)
    mean: tuple = fact("0-1 RGB mean the model normalises with")
    std: tuple = fact("0-1 RGB std the model normalises with")
    dtype_policy: str = fact("the dtype policy the epochs ran in")
    processes: int = fact("processes (always 1)")


RECORDS = {record.TASK: record for record in (SegmentationRun, ClassificationRun)}
