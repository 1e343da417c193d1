"""``keras-drn demo``: a DRN segmenter trained on the embedded synthetic scenes
(``keras_drn.workflows.demo``; its ``RECIPE`` holds every default shown here)."""

from keras_drn import constants
from keras_drn.workflows import demo, precision


def command(commands):
    return commands.add_parser(
        "demo",
        help="train a DRN segmenter on the embedded synthetic scenes and report its mIoU",
        description="Trains a DRN segmenter from scratch on the embedded synthetic scenes "
        "(disks, 1-3 pixel lines and squares on textured backgrounds), prints the validation "
        "IoU per class and the mIoU, and writes a PNG of image / ground truth / prediction. "
        "Needs no download.",
    )


def arguments(parser):
    recipe = demo.RECIPE
    parser.add_argument("--variant", default=recipe.variant,
                        help="backbone name (keras-drn models)")
    parser.add_argument("--head", default=recipe.head, choices=constants.HEADS,
                        help="segmentation head")
    parser.add_argument("--context", default=recipe.context,
                        type=lambda text: None if text in ("none", "None") else text,
                        choices=(None, *constants.CONTEXTS),
                        help="global context before the classifier ('none': without)")
    parser.add_argument("--loss", default=recipe.loss, choices=demo.LOSSES,
                        help="training loss")
    parser.add_argument("--output", default="drn_demo.png", help="where to write the PNG")
    parser.add_argument("--size", type=int, default=recipe.size, help="scene side in pixels")
    parser.add_argument("--train", type=int, default=recipe.train,
                        help="number of training scenes")
    parser.add_argument("--val", type=int, default=recipe.val,
                        help="number of validation scenes")
    parser.add_argument("--epochs", type=int, default=recipe.epochs, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size, help="batch size")
    parser.add_argument("--learning-rate", type=float, default=recipe.learning_rate,
                        help="AdamW learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and initialisation")
    parser.add_argument("--mixed-precision", default=recipe.mixed_precision,
                        choices=precision.CHOICES, help="dtype policy (as for train)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an --output file that keras_drn did not write")


def run(args):
    demo.run(seed=args.seed, output=args.output, overwrite=args.overwrite,
             variant=args.variant, head=args.head, context=args.context, loss=args.loss,
             size=args.size, train=args.train, val=args.val, epochs=args.epochs,
             batch_size=args.batch_size, learning_rate=args.learning_rate,
             mixed_precision=args.mixed_precision)
    return 0
