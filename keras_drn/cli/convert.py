"""``keras-drn convert``: a DRN PyTorch checkpoint to a Keras ``.weights.h5`` file."""


def command(commands):
    return commands.add_parser(
        "convert",
        help="convert a DRN PyTorch checkpoint to a Keras .weights.h5 file",
        description="Convert a DRN PyTorch checkpoint (the reference's drn.py or segment.py, "
        "or imgclsmob's pytorchcv layout; .pth, .pt or .pth.zip, zip or legacy format; "
        "PyTorch not needed) into a Keras .weights.h5 file.",
    )


def arguments(parser):
    parser.add_argument("source", help="the .pth/.pt/.pth.zip checkpoint")
    parser.add_argument("destination", help="the .weights.h5 file to write")
    parser.add_argument("--variant", required=True,
                        help="the architecture of the checkpoint (keras-drn models lists them)")


def run(args):
    from keras_drn.models.registry import convert_checkpoint

    model = convert_checkpoint(args.source, args.destination, args.variant)
    print(f"wrote {args.destination}: {model.name}, {model.count_params():,} parameters")
    return 0
