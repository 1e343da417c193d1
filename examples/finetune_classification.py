"""Kaggle-style fine-tuning of a DRN classifier: an image folder in, a trained classifier, its
scores and a submission CSV out.

    # Offline, on the embedded scenes (label = the scene's object: disk, line or square;
    # images are 32x32 crops around the object of 64x64 scenes):
    python examples/finetune_classification.py

    # Your data with the official ImageNet DRN-D-22 backbone (downloaded once):
    python examples/finetune_classification.py --data train/ --test-dir test/ \\
        --backbone-weights imagenet --image-size 224 --batch-size 32

``--data`` takes a folder with one subfolder of images per class, a CSV of (filename, label)
rows (images beside it, or in --image-dir), ``tfds:<name>`` (a TensorFlow Datasets image
classification dataset) or ``synthetic``; folders, CSVs and TFDS data are split into train
and val by --seed. Phase 1 trains the new head on the frozen backbone (BatchNormalization in
inference mode); phase 2 trains the whole network at a lower learning rate, with early
stopping; the best epoch is kept. Mixed precision (mixed_float16) is used when the backend
sees a GPU. The script prints the validation accuracy and per-class precision/recall (flip
test-time augmentation) and writes, in --output-dir: model.keras, best.keras, info.json,
log.csv, confusion_matrix.png, submission.csv (one row per test image: id, predicted label;
--probabilities for one column per class) and cam.png (the class activation map of one test
image). Unreadable training images are named in a warning and skipped; an unreadable test
image is an error (a submission needs every id). Without --test-dir, the synthetic run writes
a test folder of unseen scenes to predict.
"""

import argparse
import os
import time

import numpy as np

from keras_drn.workflows import classification as classify
from keras_drn.data import list_images, synthetic_classification
from keras_drn.evaluation.visualize import save_png


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic", help="training data (see above)")
    parser.add_argument("--image-dir", help="folder of the images a CSV lists")
    parser.add_argument("--test-dir", help="folder of test images for the submission")
    parser.add_argument("--backbone", default="drn_d_22", help="DRN variant (default drn_d_22)")
    parser.add_argument("--backbone-weights", default="none",
                        help="'imagenet', a weights file, or 'none' (random init, the offline "
                        "default)")
    parser.add_argument("--image-size", type=int, default=32, help="training side (default 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--head-epochs", type=int, default=1, help="phase 1 epochs")
    parser.add_argument("--epochs", type=int, default=10, help="phase 2 epochs (at most)")
    parser.add_argument("--lr", type=float, default=1e-3, help="phase 1 learning rate")
    parser.add_argument("--finetune-lr", type=float, default=1e-3, help="phase 2 learning rate")
    parser.add_argument("--patience", type=int, default=3, help="early stopping patience")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="validation share of a folder, CSV or TFDS dataset")
    parser.add_argument("--crop-scale", type=float, default=0.8,
                        help="smallest area share of the random resized crop (default 0.8: the "
                        "scenes' objects are small; 0.08-0.35 suits photos)")
    parser.add_argument("--probabilities", action="store_true",
                        help="submission with one probability column per class")
    parser.add_argument("--test-images", type=int, default=16,
                        help="unseen scenes written as the synthetic test folder")
    parser.add_argument("--output-dir", default="finetuned_classifier")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def write_synthetic_test_folder(folder, count, size, seed):
    """Unseen images of the synthetic classification set as PNG files ``scene_000.png`` ...;
    returns their true classes."""
    test = synthetic_classification("val", count=count, size=size, seed=seed + 12345)
    labels = []
    for i, (image, label) in enumerate(test.dataset):
        save_png(image.numpy(), os.path.join(folder, f"scene_{i:03d}.png"))
        labels.append(int(label))
    return np.array(labels)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    weights = None if args.backbone_weights == "none" else args.backbone_weights
    model, report = classify.train(
        data=args.data, output_dir=args.output_dir, backbone=args.backbone,
        backbone_weights=weights, image_size=args.image_size, head_epochs=args.head_epochs,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        finetune_learning_rate=args.finetune_lr, patience=args.patience,
        val_fraction=args.val_fraction, image_dir=args.image_dir,
        crop_scale=(args.crop_scale, 1.0), seed=args.seed)
    print(f"validation accuracy {100 * report.accuracy:.2f}% "
          f"({len(report.class_names)} classes, chance {100 / len(report.class_names):.1f}%)")

    test_dir, truth = args.test_dir, None
    if test_dir is None and args.data == "synthetic":
        test_dir = os.path.join(args.output_dir, "test_images")
        truth = write_synthetic_test_folder(test_dir, args.test_images, args.image_size,
                                            args.seed)
    if test_dir is not None:
        submission = os.path.join(args.output_dir, "submission.csv")
        scores = classify.write_submission(model, test_dir, submission, report.class_names,
                                           args.image_size, probabilities=args.probabilities)
        print(f"wrote {submission} ({len(scores)} test images)")
        if truth is not None:
            print(f"test accuracy on the {len(truth)} unseen scenes: "
                  f"{100 * np.mean(np.argmax(scores, -1) == truth):.1f}%")
        first = list_images(test_dir, "test folder")[0]
        cam_path = os.path.join(args.output_dir, "cam.png")
        class_id, probability, box = classify.save_class_activation_map(
            model, first, cam_path, report.class_names, image_size=args.image_size)
        print(f"wrote {cam_path}: class activation map of {os.path.basename(first)} for "
              f"{report.class_names[class_id]!r} (p = {probability:.2f}, box {box})")
    print(f"done in {time.time() - start:.0f} s")
    return report


if __name__ == "__main__":
    main()
