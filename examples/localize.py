"""Weakly supervised localisation with a DRN classifier: class activation maps and boxes.

The DRN paper (Yu, Koltun, Funkhouser, CVPR 2017, section 4) localises objects with a network
trained only on image labels: the classifier is applied at every position of the
output-stride-8 map, and the box of a class encloses the positions where that class dominates
with probability above a threshold.

Two ways to run it:

    # Offline: train a DRN-D-22 classifier on the embedded scenes (label = the scene's object),
    # then localise the objects of unseen scenes and score the boxes against the true ones.
    python examples/localize.py --output localize.png

    # A photo with the official ImageNet classifier (downloads the checkpoint once):
    python examples/localize.py --image cat.jpg --weights imagenet --output cat_cam.png

Set KERAS_BACKEND to tensorflow, jax or torch first; JAX is the fastest on CPU.
"""

import argparse
import time

import keras
import numpy as np
from PIL import Image, ImageDraw

import keras_drn
from keras_drn.data import CLASS_NAMES, make_scenes
from keras_drn.models.localization import box_from_map, box_iou, class_activation_maps, heatmap_overlay
from keras_drn.weights.pretrained import CHECKPOINTS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="drn_d_22", help="DRN variant (default drn_d_22)")
    parser.add_argument("--image", help="an image file to localise in (needs --weights)")
    parser.add_argument("--weights", help="'imagenet' or a classifier weights file; without "
                        "it a classifier is trained on the embedded scenes first")
    parser.add_argument("--classes", type=int, default=1000,
                        help="classes of the --weights classifier (default 1000)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability threshold t of the paper's box rule (default 0.5)")
    parser.add_argument("--train", type=int, default=2048, help="training scenes (default 2048)")
    parser.add_argument("--val", type=int, default=64, help="scenes to localise (default 64)")
    parser.add_argument("--size", type=int, default=32, help="scene side in pixels (default 32)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="localize.png", help="PNG to write")
    return parser.parse_args(argv)


def draw_boxes(picture, boxes, scale=1):
    """``picture`` uint8 (H, W, 3) with each ``(box, colour)`` outlined; returns a PIL image."""
    image = Image.fromarray(picture).resize(
        (picture.shape[1] * scale, picture.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    for box, colour in boxes:
        if box is not None:
            x0, y0, x1, y1 = (v * scale for v in box)
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=2)
    return image


def true_box(mask):
    """The smallest box ``(x0, y0, x1, y1)`` around the non-background pixels of ``mask``."""
    rows, cols = np.nonzero(mask)
    return (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)


def localise_scenes(args):
    """Trains a classifier on scene labels, then boxes the objects of unseen scenes."""
    keras.utils.set_random_seed(args.seed)
    images, masks, labels = make_scenes(args.train + args.val, size=args.size, seed=args.seed)
    mean, std = images[: args.train].mean(axis=(0, 1, 2)), images[: args.train].std(axis=(0, 1, 2))
    inputs = (images - mean) / std
    object_names = CLASS_NAMES[1:]  # label k is the scene's object, class k + 1 of the masks
    model = keras_drn.get_model(args.variant, classes=len(object_names))
    steps = args.epochs * -(-args.train // args.batch_size)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.PolynomialDecay(1e-3, steps, power=0.9), 1e-4),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    model.fit(inputs[: args.train], labels[: args.train], batch_size=args.batch_size,
              epochs=args.epochs, validation_data=(inputs[args.train:], labels[args.train:]),
              verbose=2)
    print(f"trained {model.name} on {args.train} scene labels in {time.time() - start:.0f} s")

    maps = class_activation_maps(model, inputs[args.train:])
    ious, pictures = [], []
    for i, (image, mask, label) in enumerate(
            zip(images[args.train:], masks[args.train:], labels[args.train:])):
        box = box_from_map(maps[i], int(label), args.threshold, image_size=mask.shape)
        truth = true_box(mask)
        ious.append(box_iou(box, truth))
        if len(pictures) < 8:
            overlay = heatmap_overlay(image, maps[i][..., label])
            pictures.append(draw_boxes(overlay, [(truth, (0, 255, 0)), (box, (255, 255, 255))],
                                       scale=3))
    ious = np.array(ious)
    print(f"{len(ious)} unseen scenes, boxes from the true class's map at t={args.threshold}: "
          f"mean IoU with the true box {ious.mean():.2f}, IoU > 0.5 for {np.mean(ious > 0.5):.0%}")
    for k, name in enumerate(object_names):
        chosen = labels[args.train:] == k
        if chosen.any():
            print(f"  {name:<7} mean box IoU {ious[chosen].mean():.2f} ({chosen.sum()} scenes)")
    return pictures, "green: true box, white: box from the activation map"


def localise_image(args):
    """Boxes the top-1 class of one image with a pretrained classifier."""
    if args.weights is None:
        raise SystemExit("--image needs --weights ('imagenet' or a classifier weights file)")
    model = keras_drn.get_model(args.variant, weights=args.weights, classes=args.classes)
    picture = np.asarray(Image.open(args.image).convert("RGB"), dtype="float32") / 255.0
    checkpoint = CHECKPOINTS.get(args.variant)
    mean, std = (checkpoint.mean, checkpoint.std) if checkpoint else ((0.485, 0.456, 0.406),
                                                                      (0.229, 0.224, 0.225))
    inputs = ((picture - np.array(mean)) / np.array(std))[None].astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(inputs, training=False))[0]
    top = int(np.argmax(probabilities))
    cam = class_activation_maps(model, inputs)[0]
    box = box_from_map(cam, top, args.threshold, image_size=picture.shape[:2])
    print(f"top-1 class {top} (p={probabilities[top]:.2f}); box {box}")
    overlay = heatmap_overlay(picture, cam[..., top])
    return [draw_boxes(overlay, [(box, (255, 255, 255))])], f"class {top}"


def main(argv=None):
    args = parse_args(argv)
    pictures, legend = localise_image(args) if args.image else localise_scenes(args)
    width = sum(p.width for p in pictures) + 4 * (len(pictures) - 1)
    sheet = Image.new("RGB", (width, max(p.height for p in pictures)), (255, 255, 255))
    x = 0
    for picture in pictures:
        sheet.paste(picture, (x, 0))
        x += picture.width + 4
    sheet.save(args.output)
    print(f"wrote {args.output} ({legend})")


if __name__ == "__main__":
    main()
