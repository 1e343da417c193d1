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


@pytest.mark.parametrize("cut", ["end", "middle"])
def test_a_truncated_or_damaged_keras_file_is_named_not_said_missing(tmp_path, cut):
    from keras_drn.export import export

    inputs = keras.Input((None, None, 3))
    path = tmp_path / "model.keras"
    keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)).save(path)
    data = path.read_bytes()
    if cut == "end":  # a copy that stopped early: no zip directory
        path.write_bytes(data[: len(data) // 2])
        expected = rf"{path}' \([\d,]+ bytes\) is damaged or truncated"
    else:  # a bit flipped inside an entry: its CRC fails
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
        expected = rf"{path}' is damaged: its entry .* fails its check"
    with pytest.raises(ValueError, match=expected):
        keras_drn.DRN_D_22(weights=str(path))
    with pytest.raises(ValueError, match=expected):
        export(str(path), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
