"""``keras-drn train``: its flags, defaults, choices and help are generated from the run
records (``keras_drn.workflows.record``), one flag per field; the two tasks share the flags
of the fields they share (``--size`` is a segmenter's scene side and a classifier's image
side). Imports no Keras."""

import os

from keras_drn.cli.arguments import progress
from keras_drn.workflows.record import RECORDS

DEFAULT_TASK = "segmentation"
# Argument groups of --help: field metadata "group" -> (title, description).
GROUPS = {
    "k-fold": ("k-fold", "train on K-1 folds of the training data and validate on the "
               "held-out one (keras_drn.workflows.folds); the run ends by writing "
               "OUTPUT_DIR/oof.npz, its out-of-fold probabilities"),
    "distributed": ("distributed (several processes, JAX backend; keras_drn.workflows."
                    "distribute)", "Run the same command in every process, each with its "
                    "--process-id (0 writes OUTPUT_DIR, which all processes must share). "
                    "Without these options they are read from the environment a launcher "
                    "sets: KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID, "
                    "TF_CONFIG, or SLURM (srun: SLURM_NTASKS, SLURM_PROCID, the first host of "
                    "SLURM_STEP_NODELIST, port KERAS_DRN_COORDINATOR_PORT)."),
}


def flag_of(field):
    """The option string of a record field: its metadata's, else ``--name-with-dashes``;
    a switch that is on by default is turned off by ``--no-name``."""
    flag = field.metadata["flag"]
    if flag is ...:
        flag = "--" + field.name.replace("_", "-")
    if field.default is True:
        return "--no-" + flag[2:]
    return flag


def flags():
    """``{option string: [(task, field), ...]}`` of every record field that has a flag."""
    found = {}
    for task, record in RECORDS.items():
        for field in record.options():
            if field.metadata["flag"] is not None:
                found.setdefault(flag_of(field), []).append((task, field))
    return found


def dest_of(flag):
    return flags()[flag][0][1].name


def python_names():
    """``{field name: option string}``, for messages of the library that name a Python
    argument (``image_size=`` is ``--size``)."""
    return {field.name: flag for flag, owners in flags().items() for _, field in owners}


def _shown(value):
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def _help(owners):
    (first_task, first), *others = owners
    text = first.metadata["help"]
    for task, field in others:
        if field.metadata["help"] != first.metadata["help"]:
            text += f"; {task}: {field.metadata['help']}"
    if first.default is True:
        return f"turn off the {text}"
    if isinstance(first.default, bool):
        return text
    defaults = [(task, field.default) for task, field in owners]
    if len({repr(value) for _, value in defaults}) == 1:
        return text + (f" (default {_shown(first.default)})"
                       if first.default is not None else "")
    return text + " (default " + "; ".join(f"{task}: {_shown(value)}"
                                           for task, value in defaults) + ")"


def _add(parser, flag, owners):
    field = owners[0][1]
    defaults = {repr(f.default) for _, f in owners}
    keywords = {"dest": field.name, "help": _help(owners)}
    if isinstance(field.default, bool):
        keywords["action"] = "store_false" if field.default else "store_true"
    else:
        choices = field.metadata["choices"]
        keywords.update(type=field.metadata["type"] or type(field.default),
                        default=field.default if len(defaults) == 1 else None)
        if choices is not None:
            keywords["choices"] = choices
            keywords["metavar"] = "{" + ",".join(map(_shown, choices)) + "}"
        if field.metadata["metavar"]:
            keywords["metavar"] = field.metadata["metavar"]
    parser.add_argument(flag, **keywords)


def command(commands):
    return commands.add_parser(
        "train", help="train a DRN segmenter (the reference segment.py recipe) or, with "
        "--task classification, fine-tune a DRN classifier",
        description="Trains keras_drn.DRNSegmenter with the reference recipe (SGD momentum "
        "0.9, weight decay 1e-4, poly or step learning rate, random scale/rotate/crop/flip), "
        "saves OUTPUT_DIR/model.keras, best.keras, info.json and log.csv, prints the "
        "validation IoU per class and writes OUTPUT_DIR/val_predictions.png. Running it again "
        "with the same arguments resumes an interrupted run at its first unfinished epoch. "
        "--task classification fine-tunes a classifier instead (keras_drn.workflows."
        "classification: frozen backbone, then all of it at --finetune-lr; early stopping; "
        "best.keras, model.keras, info.json, log.csv, confusion_matrix.png; OUTPUT_DIR/"
        "submission.csv for --test-dir). An unknown --data spec is refused with the list of "
        "the specs each task reads.",
    )


def arguments(parser):
    parser.add_argument("--task", default=DEFAULT_TASK, choices=tuple(RECORDS),
                        help="what to train")
    groups = {None: parser}
    for task in RECORDS:
        if task != DEFAULT_TASK:
            groups[task] = parser.add_argument_group(f"{task} (--task {task})")
    for flag, owners in flags().items():
        group = owners[0][1].metadata.get("group")
        if group is not None:
            if group not in groups:
                groups[group] = parser.add_argument_group(*GROUPS[group])
            where = groups[group]
        elif len(owners) == 1 and owners[0][0] != DEFAULT_TASK:
            where = groups[owners[0][0]]
        else:
            where = parser
        _add(where, flag, owners)
    parser.add_argument("--class-names-file", metavar="FILE",
                        help="the class names, one per line (instead of --class-names)")
    parser.add_argument("--one-line-per-epoch", action="store_true",
                        help="print one line per epoch instead of progress bars (the default "
                        "when the output is not a terminal: a log file gets no escape codes)")
    classification = groups["classification"]
    classification.add_argument("--test-dir", help="test images: write OUTPUT_DIR/"
                                "submission.csv (id, predicted label)")
    classification.add_argument("--probabilities", action="store_true",
                                help="submission with one probability column per class")


def record_of(args):
    """The run record of the parsed ``args``: the task's fields, each from its flag (a flag
    whose default differs between the tasks, left out, takes the task's default). ValueError
    for a flag of the other task."""
    record = RECORDS[args.task]
    mine = {field.name for field in record.options()}
    values = {"verbose": progress(args.one_line_per_epoch)}
    for flag, owners in flags().items():
        dest = owners[0][1].name
        value = getattr(args, dest)
        fields = [field for task, field in owners if task == args.task]
        if not fields:
            if value != owners[0][1].default:
                raise ValueError(f"{flag} is a {owners[0][0]} option, not one of --task "
                                 f"{args.task}.")
            continue
        if value is None and len({repr(f.default) for _, f in owners}) > 1:
            continue  # not given: the task's own default
        values[fields[0].name] = value
    if args.class_names_file is not None:
        if args.class_names is not None:
            raise ValueError("give --class-names or --class-names-file, not both.")
        with open(args.class_names_file) as stream:
            values["class_names"] = tuple(line.strip() for line in stream if line.strip())
        if "class_names" not in mine:
            raise ValueError(f"--class-names-file is a segmentation option, not one of --task "
                             f"{args.task}.")
    return record(**values)


def run(args):
    from keras_drn.workflows import classification as classify
    from keras_drn.workflows import segmentation as segment

    record = record_of(args)
    if args.task == "classification":
        model, report = classify.train_run(record)
        if args.test_dir:  # the run's own file: a folder holding another's was refused
            submission = os.path.join(record.output_dir, "submission.csv")
            classify.write_submission(model, args.test_dir, submission, report.class_names,
                                      record.image_size, probabilities=args.probabilities,
                                      overwrite=True, option="--output-dir")
            print(f"wrote {submission}")
        return 0
    if record.folds is not None and record.fold is None:
        raise ValueError("--folds K needs --fold I (the held-out fold, 0..K-1) or --fold all.")
    if record.fold == "all":
        options = {field.name: getattr(record, field.name) for field in record.options()
                   if field.name != "fold"}
        segment.train_folds(**options)
    else:
        segment.train_run(record)
    return 0


