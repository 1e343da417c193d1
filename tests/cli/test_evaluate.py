"""keras-drn evaluate."""

import pytest

from keras_drn.cli import app as cli
from tests.cli.helpers import refused


def _scene_folder(root):
    """3 val scenes of 24x24 in the reference's folder format."""
    import json

    from PIL import Image

    from keras_drn.data import make_scenes

    images, masks, _ = make_scenes(3, size=24, seed=5)
    for i in range(3):
        Image.fromarray((255 * images[i]).astype("uint8")).save(root / f"{i}.png")
        Image.fromarray(masks[i]).save(root / f"{i}_label.png")
    (root / "val_images.txt").write_text("".join(f"{i}.png\n" for i in range(3)))
    (root / "val_labels.txt").write_text("".join(f"{i}_label.png\n" for i in range(3)))
    info = {"mean": [0.5] * 3, "std": [0.25] * 3, "num_classes": 4}
    (root / "info.json").write_text(json.dumps(info))
    return root


def test_evaluate_consistency_of_a_segmenter_and_a_classifier(capsys, tmp_path):
    pytest.importorskip("tensorflow")  # the data pipeline
    import keras

    data = _scene_folder(tmp_path)
    from keras_drn.workflows import runs

    run = tmp_path / "run"
    folder = runs.RunFolder(run)
    with folder.lock():
        folder.finish(folder.start({
            "task": "segmentation", "data": str(data), "num_classes": 4,
            "class_names": None, "size": None, "crop_size": None, "seed": 0,
            "backbone": "drn_d_22", "head": "drn", "context": None, "anti_alias": None,
            "upsampling": "deconv", "backbone_weights": None, "mean": [0.5] * 3,
            "std": [0.25] * 3}))
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs)).save(run / "model.keras")
    assert cli.main(["evaluate", str(run / "model.keras"), "--data", str(data),
                     "--consistency", "--max-shift", "4"]) == 0
    out = capsys.readouterr().out
    # A per-pixel model is exactly shift equivariant: every pixel keeps its label.
    assert "mIoU" in out and "val shift consistency 100.00% of pixels unchanged" in out
    # Without --data: the run's data (info.json), so the same scores, not the synthetic
    # scenes'.
    assert cli.main(["evaluate", str(run / "model.keras"), "--consistency", "--max-shift",
                     "4"]) == 0
    assert capsys.readouterr().out == out

    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1)(inputs))
    classifier = tmp_path / "classifier.keras"  # no run folder: raw images in
    keras.Model(inputs, keras.layers.Dense(3)(features)).save(classifier)
    assert cli.main(["evaluate", str(classifier), "--data", str(data), "--consistency"]) == 0
    out = capsys.readouterr().out
    assert "val top-1 shift consistency" in out and "mIoU" not in out
    with refused(capsys, "keras-drn evaluate: error: .*is a classifier .*--consistency"):
        cli.main(["evaluate", str(classifier), "--data", str(data)])
