"""``keras-drn upgrade``: run folders of keras_drn 0.1 to the current format."""


def command(commands):
    return commands.add_parser(
        "upgrade", help="convert run folders written by keras_drn 0.1 (normalisation outside "
        "the model) to the current format",
        description="Converts run folders written before run folders had format 2: their "
        "segmenters normalised inputs outside the model. The models get their normalisation "
        "(mean/std from info.json) as a 'preprocessing' layer, so they take raw 0-255 RGB, "
        "and info.json gets the new fields. Safe to run twice.")


def arguments(parser):
    parser.add_argument("runs", nargs="+", help="run folders")


def run(args):
    from keras_drn.workflows import runs

    for path in args.runs:
        folder = runs.RunFolder(path)
        before = runs.read_json(folder.info_path) if folder.info_path.is_file() else {}
        info = runs.upgrade(path)
        if before.get("format") == runs.FORMAT:
            print(f"{path}: already run folder format {runs.FORMAT}; nothing to convert")
            continue
        print(f"{path}: run folder format {info['format']} ({info['task']}); its models take "
              "raw 0-255 RGB and carry their normalisation")
    return 0
