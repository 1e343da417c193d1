"""From a trained DRN segmenter to files a phone app can run: LiteRT masks (int8, float16) and
a SavedModel for a server, each checked against Keras before it is written.

    python examples/export_mobile.py --output mobile/

Trains a DRN-D-22 segmenter briefly on the embedded synthetic scenes (no download). The model
takes raw 0-255 RGB: its first layer, ``preprocessing``, normalises with ImageNet's mean and
std (``DRNSegmenter(..., include_preprocessing=True)``), so nothing outside it normalises. It is
then exported end to end (uint8 RGB in, cast to float32 for that layer, argmax inside, uint8
mask out):

- ``drn_mask_int8.tflite``: full-integer LiteRT, calibrated on training scenes;
- ``drn_mask_float16.tflite``: float16 weights;
- ``drn_mask_saved_model/``: TensorFlow SavedModel taking any height and width.

Every export prints its report (agreement with Keras, op histogram: builtin ops only, each
dilated convolution one CONV_2D). Finally the int8 file runs in the LiteRT interpreter on
unseen scenes and its mIoU against the ground truth is compared with Keras's.

Any Keras backend trains; the exports are written by TensorFlow (in a subprocess when the
backend is JAX or PyTorch). Needs tensorflow and ai-edge-litert.
"""

import argparse
import os

import keras
import numpy as np

import keras_drn
from keras_drn.data import CLASS_NAMES, make_scenes
from keras_drn.export import export


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="drn_d_22", help="backbone (default drn_d_22)")
    parser.add_argument("--size", type=int, default=64, help="scene side and LiteRT input size")
    parser.add_argument("--train", type=int, default=512, help="training scenes")
    parser.add_argument("--val", type=int, default=32, help="scenes to evaluate on")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output", default="mobile", help="folder for the exported files")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def miou(truth, predicted, classes):
    confusion = np.bincount(truth.ravel().astype("int64") * classes + predicted.ravel(),
                            minlength=classes * classes).reshape(classes, classes)
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    return float(np.mean(np.diag(confusion)[union > 0] / union[union > 0]))


def run_litert(path, images):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    masks = []
    for image in images:
        interpreter.set_tensor(source, image[None])
        interpreter.invoke()
        masks.append(interpreter.get_tensor(target)[0])
    return np.stack(masks)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    classes = len(CLASS_NAMES)
    images, masks, _ = make_scenes(args.train + args.val, size=args.size, seed=args.seed)
    uint8_images = np.round(images * 255).astype("uint8")  # what a camera app hands over
    inputs = uint8_images.astype("float32")  # raw 0-255 RGB: the model normalises inside
    model = keras_drn.DRNSegmenter(args.variant, num_classes=classes, include_preprocessing=True)
    model.compile(
        optimizer=keras.optimizers.AdamW(2e-3, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(inputs[: args.train], masks[: args.train], batch_size=args.batch_size,
              epochs=args.epochs, verbose=2)

    os.makedirs(args.output, exist_ok=True)
    calibration = uint8_images[: min(args.train, 64)]
    shape = (args.size, args.size)
    int8_path = os.path.join(args.output, "drn_mask_int8.tflite")
    for path, options in (
        (int8_path, {"format": "litert", "input_shape": shape, "quantize": "int8",
                     "representative_data": calibration}),
        (os.path.join(args.output, "drn_mask_float16.tflite"),
         {"format": "litert", "input_shape": shape, "quantize": "float16"}),
        (os.path.join(args.output, "drn_mask_saved_model"), {"format": "tf_saved_model"}),
    ):
        print()
        export(model, path, end_to_end=True, overwrite=True, **options)

    val_images, val_masks = uint8_images[args.train :], masks[args.train :]
    keras_masks = np.argmax(model.predict(inputs[args.train :], verbose=0), -1)
    litert_masks = run_litert(int8_path, val_images)
    print(f"\nmIoU on {args.val} unseen scenes ({', '.join(CLASS_NAMES)}): "
          f"Keras float32 {miou(val_masks, keras_masks, classes):.3f}, "
          f"LiteRT int8 {miou(val_masks, litert_masks, classes):.3f}; the int8 mask equals "
          f"Keras's on {100 * np.mean(litert_masks == keras_masks):.2f}% of pixels.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
