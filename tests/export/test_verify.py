"""keras_drn.export.verify: an artifact that does not match Keras is not installed (the old
one stays), and the report carries the numbers."""

import importlib
import os

import keras
import pytest

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.export import ClassIds, ExportVerificationError, export
from keras_drn.models.preprocessing import normalization_layer, with_preprocessing
from tests.export.helpers import needs, tiny_segmenter

verify_module = importlib.import_module("keras_drn.export.verify")
writer = importlib.import_module("keras_drn.export.tensorflow")


def test_failed_verification_writes_nothing(tmp_path, monkeypatch):
    """The artifact is written but does not match Keras: it is not installed, the old one
    stays."""
    needs("tensorflow")
    target = tmp_path / "sm"
    target.mkdir()
    (target / "stale.txt").write_text("old export")
    real_load = verify_module.load_artifact

    def off_by_one(path, fmt):
        run = real_load(path, fmt)
        return lambda inputs: run(inputs) + 1.0

    monkeypatch.setattr(verify_module, "load_artifact", off_by_one)
    with pytest.raises(ExportVerificationError, match="exceeds 1e-04") as info:
        export(tiny_segmenter(), target, overwrite=True, verbose=False)
    assert info.value.report.max_abs_diff == pytest.approx(1.0, abs=1e-4)
    assert not info.value.report.passed
    assert sorted(os.listdir(tmp_path)) == ["sm"] and os.listdir(target) == ["stale.txt"]


def test_an_artifact_that_normalises_twice_fails_verification(tmp_path, monkeypatch):
    """The check feeds Keras and the artifact the same raw images: a second normalisation in
    the exported graph (main's end-to-end export of a model that normalises inside) is
    caught, and nothing is written."""
    needs("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("patches the in-process TensorFlow writer (a subprocess writes otherwise)")

    def normalising_again(model, job):
        """main's end-to-end graph: ImageNet normalisation before the model's own."""
        inputs = keras.Input(batch_shape=job.batch_shape, dtype="uint8")
        x = normalization_layer(IMAGENET_MEAN, IMAGENET_STD)(keras.ops.cast(inputs, "float32"))
        return keras.Model(inputs, ClassIds(job.output_dtype)(model(x)))

    monkeypatch.setattr(writer, "serving_model", normalising_again)
    model = with_preprocessing(tiny_segmenter(), (0.2, 0.7, 0.4), (0.1, 0.5, 0.3))
    with pytest.raises(ExportVerificationError, match="class ids differ from Keras's argmax"):
        export(model, tmp_path / "mask", end_to_end=True, verbose=False)
    assert os.listdir(tmp_path) == []
