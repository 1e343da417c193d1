"""Kaggle-style fine-tuning of a DRN segmenter: a pretrained backbone, a new head for your
classes, a frozen-backbone warm-up, then the whole network at a lower learning rate.

    # The official ImageNet DRN-D-22 backbone (downloaded once) on your data:
    python examples/finetune_segmentation.py --data path/to/dataset --backbone-weights imagenet

    # Offline, on the embedded scenes, from any backbone weights file you have:
    python examples/finetune_segmentation.py --backbone-weights drn_d_22.weights.h5

``--data`` takes what ``keras-drn train`` takes: ``synthetic``, ``tfds:oxford_iiit_pet``, a
folder in the reference's format (info.json, <split>_images.txt, <split>_labels.txt) or a folder
with <split>/images and <split>/masks (then give --num-classes). Phase 1 trains only the head
(BatchNormalization of the frozen backbone runs in inference mode, as Keras's transfer-learning
guide recommends); phase 2 unfreezes the backbone, keeping its BatchNormalization frozen unless
--train-bn is given (small batches give poor batch statistics). The model is then scored on the
val split and exported to a verified SavedModel (TensorFlow backend; elsewhere a .keras file).
"""

import argparse

import keras
import numpy as np

import keras_drn
from keras_drn import atomic
from keras_drn.workflows import runs
from keras_drn import data as data_lib
from keras_drn.evaluation import evaluate_segmenter
from keras_drn.workflows.segmentation import load_data
from keras_drn.workflows.training import compile_segmenter, poly_schedule, reference_optimizer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic", help="dataset (see above)")
    parser.add_argument("--num-classes", type=int, help="classes of an image/mask folder")
    parser.add_argument("--backbone", default="drn_d_22", help="DRN variant (default drn_d_22)")
    parser.add_argument("--backbone-weights", default="imagenet",
                        help="'imagenet', a classifier weights file, or 'none'")
    parser.add_argument("--head", default="drn", choices=["drn", "gcn"])
    parser.add_argument("--size", type=int, default=48, help="synthetic scene side")
    parser.add_argument("--crop-size", type=int, help="training crop (default: scene size)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--head-epochs", type=int, default=2, help="phase 1 epochs")
    parser.add_argument("--epochs", type=int, default=4, help="phase 2 epochs")
    parser.add_argument("--lr", type=float, default=0.01, help="phase 1 learning rate")
    parser.add_argument("--finetune-lr", type=float, default=0.001, help="phase 2 learning rate")
    parser.add_argument("--train-bn", action="store_true",
                        help="let BatchNormalization learn in phase 2")
    parser.add_argument("--output-dir", default="finetuned", help="where to write the results")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def backbone_layer_names(backbone):
    """Names of the layers a ``DRNSegmenter`` takes from its backbone."""
    return {layer.name for layer in keras_drn.get_model(backbone, include_top=False).layers}


def set_backbone_trainable(model, backbone, trainable, train_bn=True):
    """Freezes or unfreezes the backbone's layers; with ``train_bn=False`` every
    BatchNormalization inside stays frozen (inference mode) either way."""
    names = backbone_layer_names(backbone)
    for layer in model.layers:
        if layer.name in names and layer.weights:
            keras_drn.set_trainable(layer, trainable, train_bn=train_bn)


def count_trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    train_data = load_data(args.data, "train", args.num_classes, args.size, args.seed)
    val_data = load_data(args.data, "val", args.num_classes, args.size, args.seed)
    crop = args.crop_size or (args.size if args.data == "synthetic" else None)
    train = data_lib.segmentation_pipeline(train_data, args.batch_size, training=True,
                                           crop_size=crop, seed=args.seed)
    val = data_lib.segmentation_pipeline(val_data, args.batch_size if crop else 1,
                                         training=False)
    weights = None if args.backbone_weights == "none" else args.backbone_weights
    # Raw 0-255 RGB in: the model carries the data's normalisation (as the reference's info.json).
    model = keras_drn.DRNSegmenter(args.backbone, num_classes=train_data.num_classes,
                                   head=args.head, backbone_weights=weights,
                                   mean=train_data.mean, std=train_data.std)
    steps = train_data.size // args.batch_size

    set_backbone_trainable(model, args.backbone, False)
    print(f"phase 1: head only, {count_trainable(model):,} trainable parameters")
    compile_segmenter(model, train_data.num_classes, optimizer=reference_optimizer(
        poly_schedule(args.lr, max(1, args.head_epochs * steps))))
    model.fit(train, validation_data=val, epochs=args.head_epochs, verbose=2,
              shuffle=False)  # the pipeline shuffles

    set_backbone_trainable(model, args.backbone, True, train_bn=args.train_bn)
    print(f"phase 2: whole network{'' if args.train_bn else ' (BatchNormalization frozen)'}, "
          f"{count_trainable(model):,} trainable parameters")
    compile_segmenter(model, train_data.num_classes, optimizer=reference_optimizer(
        poly_schedule(args.finetune_lr, max(1, args.epochs * steps))))  # recompile: new trainables
    model.fit(train, validation_data=val, epochs=args.epochs, verbose=2, shuffle=False)

    report = evaluate_segmenter(model, val, train_data.num_classes,
                                class_names=train_data.class_names)
    print(f"validation IoU (%):\n{report.table}")
    run = runs.RunFolder(args.output_dir)
    with run.lock():
        info = run.start({
            "task": "segmentation", "data": args.data, "num_classes": train_data.num_classes,
            "class_names": list(train_data.class_names),
            "size": args.size if args.data == "synthetic" else None, "crop_size": crop,
            "seed": args.seed, "backbone": args.backbone, "head": args.head, "context": None,
            "anti_alias": None, "upsampling": "deconv", "backbone_weights": weights,
            "mean": list(train_data.mean), "std": list(train_data.std),
            "epochs": args.head_epochs + args.epochs}, overwrite=True)
        atomic.write_atomically(run.model_path, model.save, "run")
        run.finish(dict(info, epochs_done=info["epochs"]), val_miou=report.miou)
    if keras.backend.backend() == "tensorflow":
        from keras_drn.export import export

        export(model, str(run.path / "saved_model"), overwrite=True)
    print(f"wrote {run.model_path} and info.json (keras-drn predict uses them)")
    return report


if __name__ == "__main__":
    main()
