"""The weights= argument never runs code from a file: .keras files load with safe_mode on, and
no keras_drn model needs a Lambda layer (pickled Python code) to deserialise."""

import json

import keras
import pytest

import keras_drn


def test_a_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    marker = tmp_path / "ran"
    inputs = keras.Input((None, None, 3))
    # The file's code would write the marker: built from source so the path is a constant.
    hostile = eval(f"lambda x: x * 2 + 0 * len(__import__('pathlib').Path({str(marker)!r})"
                   f".write_text('ran'))")
    outputs = keras.layers.Lambda(hostile, output_shape=(None, None, 3))(inputs)
    path = str(tmp_path / "hostile.keras")
    keras.Model(inputs, outputs).save(path)
    marker.unlink(missing_ok=True)  # saving may trace the lambda
    with pytest.raises(ValueError, match="safe_mode"):
        keras_drn.DRN_D_22(weights=path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "build",
    [
        lambda: keras_drn.DRN_C_26(anti_alias="adaptive"),
        lambda: keras_drn.DRNSegmenter("drn_d_22", num_classes=3, head="gcn",
                                       context="parsenet", upsampling="bilinear"),
        lambda: keras_drn.DRNSegmenter("drn_a_18", num_classes=3, anti_alias="blur"),
    ],
    ids=["classifier", "gcn_parsenet", "drn_head"],
)
def test_models_serialise_without_lambda_layers(build):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(build())))
    classes = {layer["class_name"] for layer in config["config"]["layers"]}
    assert "Lambda" not in classes and "InputLayer" in classes
