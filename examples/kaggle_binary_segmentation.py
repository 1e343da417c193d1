"""Kaggle-style binary segmentation, offline, end to end: a competition-shaped dataset,
k-fold training with out-of-fold predictions, the threshold search, and a fold-ensemble
submission.

    python examples/kaggle_binary_segmentation.py                 # writes ./kaggle_binary/
    python examples/kaggle_binary_segmentation.py --epochs 8 --train 384

It first makes a dataset shaped like TGS Salt or SIIM-ACR from the embedded synthetic scenes
(``keras_drn.data.make_scenes``): ``data/images/*.png`` and ``data/train.csv``
(``ImageId,EncodedPixels``, column-major run-length encoding) whose target is the disks
only, so the scenes holding a line or a square have empty masks, and ``test_images/``. Then,
as ``keras-drn`` does it from the command line::

    keras-drn train --data rle:kaggle_binary/data --num-classes 1 --folds 2 --fold all \\
        --stratify empty --output-dir kaggle_binary/folds ...
    keras-drn ensemble kaggle_binary/folds --images kaggle_binary/test_images \\
        --submission kaggle_binary/submission.csv

it trains one DRN per fold (validated on the held-out fold, whose probabilities it keeps in
``fold-I/oof.npz``), searches the threshold and minimum component size maximising the mean
per-image Dice on the out-of-fold predictions of both folds (Kaggle's metric: an empty
prediction of an empty mask scores 1), and writes ``submission.csv`` from the mean
probability of the folds' models with flip TTA at that threshold.
"""

import argparse
import csv
import pathlib
import time

import numpy as np
from PIL import Image

from keras_drn import atomic
from keras_drn.workflows import segmentation as segment
from keras_drn.data import CLASS_NAMES, make_scenes
from keras_drn.workflows.submission import rle_encode


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="kaggle_binary", help="where to write it all")
    parser.add_argument("--train", type=int, default=192, help="labelled scenes (train.csv)")
    parser.add_argument("--test", type=int, default=16, help="test scenes (test_images/)")
    parser.add_argument("--size", type=int, default=32, help="scene side in pixels")
    parser.add_argument("--target", default="disk", choices=CLASS_NAMES[1:],
                        help="the object class the masks hold (default disk)")
    parser.add_argument("--folds", type=int, default=2, help="number of folds")
    parser.add_argument("--backbone", default="drn_d_22", help="DRN variant")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fold")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_dataset(root, train, test, size, target, seed):
    """Writes ``root/data/images/*.png``, ``root/data/train.csv`` (the ``target`` class's
    masks, RLE) and ``root/test_images/*.png``; returns the two folders."""
    images, masks, _ = make_scenes(train + test, size=size, seed=seed)
    target_id = CLASS_NAMES.index(target)
    data, test_dir = pathlib.Path(root) / "data", pathlib.Path(root) / "test_images"
    rows = []
    for i, (image, mask) in enumerate(zip(images, masks)):
        folder, name = (data / "images", f"train_{i:04d}") if i < train else (
            test_dir, f"test_{i - train:04d}")
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(np.round(255 * image).astype(np.uint8))
        atomic.write_atomically(folder / f"{name}.png",
                                lambda path, picture=picture: picture.save(path, format="PNG"))
        if i < train:
            rows.append((name, rle_encode(mask == target_id)))
    with_object = sum(1 for _, rle in rows if rle)
    text = "ImageId,EncodedPixels\n" + "".join(f"{name},{rle}\n" for name, rle in rows)
    atomic.write_text(data / "train.csv", text)
    print(f"wrote {data}: {train} images ({with_object} with a {target}, "
          f"{train - with_object} empty) and {test_dir}: {test} test images")
    return data, test_dir


def main(argv=None):
    args = parse_args(argv)
    root = pathlib.Path(args.output_dir)
    start = time.time()
    data, test_dir = make_dataset(root, args.train, args.test, args.size, args.target,
                                  args.seed)
    reports, search = segment.train_folds(
        folds=args.folds, output_dir=root / "folds", min_sizes=(0, 5, 10),
        data=f"rle:{data}", num_classes=1, backbone=args.backbone, epochs=args.epochs,
        batch_size=args.batch_size, crop_size=args.size, optimizer="adamw",
        learning_rate=args.lr, scale=1.0, rotate=0, stratify="empty", seed=args.seed,
        verbose=2)
    for fold, report in enumerate(reports):
        print(f"fold {fold}: validation Dice ({args.target}, pixels pooled) "
              f"{report.dice[1]:.4f}")
    print(f"out-of-fold mean per-image Dice: {search.dice:.4f} at threshold "
          f"{search.threshold:g}, min size {search.min_size} ({search.dice_at_half:.4f} at "
          "threshold 0.5)")
    submission = root / "submission.csv"
    segment.ensemble([root / "folds"], sorted(str(p) for p in test_dir.glob("*.png")),
                     root / "predictions", submission=submission)
    with open(submission, newline="") as stream:
        rows = list(csv.reader(stream))[1:]
    print(f"wrote {submission}: {len(rows)} test images, {sum(1 for r in rows if r[1])} with "
          f"a predicted {args.target}; {time.time() - start:.0f} s in all")
    return search


if __name__ == "__main__":
    main()
