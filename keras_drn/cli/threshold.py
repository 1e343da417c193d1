"""``keras-drn threshold``: the threshold and minimum size with the best out-of-fold Dice."""

import pathlib

from keras_drn.cli.arguments import REPLACE_HELP, sizes, thresholds


def command(commands):
    return commands.add_parser(
        "threshold", help="search the threshold (and minimum size) maximising the mean "
        "per-image Dice on the out-of-fold predictions of k-fold runs",
        description="Reads the oof.npz of each fold run (keras-drn train --folds K --fold I) "
        "and prints the threshold and minimum component size with the highest mean "
        "per-image Dice (an empty prediction of an empty mask scores 1, as on Kaggle), and "
        "writes it to threshold.json beside the folds, where keras-drn ensemble finds it.")


def arguments(parser):
    parser.add_argument("runs", nargs="+", help="fold run folders, or the folder holding "
                        "fold-* runs")
    parser.add_argument("--thresholds", type=thresholds, default=None,
                        help="comma-separated thresholds to try (default 0.05..0.95 by 0.05)")
    parser.add_argument("--min-sizes", type=sizes, default=(0,),
                        help="comma-separated minimum component sizes to try (default 0)")
    parser.add_argument("--output", help="the JSON to write (default threshold.json in the "
                        "folder holding the folds, written only from all the folds)")
    parser.add_argument("--overwrite", action="store_true", help=REPLACE_HELP)


def run(args):
    from keras_drn.workflows import folds

    run_dirs = []
    for path in map(pathlib.Path, args.runs):
        found = sorted(p.parent for p in path.glob(f"fold-*/{folds.OOF}"))
        run_dirs += found if found and not (path / folds.OOF).exists() else [path]
    # Default output: threshold.json in the folder holding the folds (tune's default).
    search = folds.tune(run_dirs, args.output, thresholds=args.thresholds or folds.THRESHOLDS,
                        min_sizes=args.min_sizes, overwrite=args.overwrite)
    print(search)
    for threshold, min_size, dice in search.scores:
        print(f"  threshold {threshold:<5g} min size {min_size:<4d} mean Dice {dice:.4f}")
    return 0
