"""tools/compare_variants.py and tools/activation_maps.py: the table, the JSON and the
figure, on tiny budgets."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

TOOLS = pathlib.Path(__file__).resolve().parents[1] / "tools"


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_lists_every_row():
    compare = _tool("compare_variants")
    row = {"backbone": "drn_c_26", "anti_alias": "adaptive", "miou": 0.5123, "line_iou": 0.25,
           "consistency": 0.9, "parameters": 1234567, "train_images_per_s": 12.34,
           "inference_images_per_s": 56.78}
    table = compare.format_table([row, dict(row, anti_alias="none")]).splitlines()
    assert len(table) == 4 and "line IoU" in table[0] and "shift consistency" in table[0]
    assert table[2] == "| drn_c_26 | adaptive | 51.2 | 25.0 | 90.0 | 1,234,567 | 12.3 | 56.8 |"


def _drn_a_like():
    """A tiny model named like a DRN-A (a ``maxpool`` layer, levels 3 and 4 at stride 8):
    building a real DRN takes most of a minute on JAX; the slow test below uses real ones."""
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, padding="same")(inputs)
    x = keras.layers.MaxPooling2D(2, name="maxpool")(x)
    x = keras.layers.Identity(name="level3")(keras.layers.Conv2D(5, 3, padding="same")(x))
    x = keras.layers.Conv2D(6, 3, dilation_rate=4, padding="same")(x)
    return keras.Model(inputs, keras.layers.Identity(name="level4")(x))


def test_activation_map_figure_has_one_row_per_model(tmp_path):
    maps = _tool("activation_maps")
    models = {"drn_a_18": _drn_a_like(), "other": _drn_a_like()}
    picture = maps.figure_scene(32)
    assert picture.shape == (32, 32, 3)
    path = tmp_path / "maps.png"
    maps.save_figure(models, picture, (picture - 0.5) / 0.25, str(path), side=40)
    assert Image.open(path).size == (maps.LABEL_WIDTH + 5 * 40, maps.HEADER_HEIGHT + 2 * 40)
    strongest = maps.strongest_maps(models["drn_a_18"], picture)
    assert strongest["dilation 4"].shape == (4, 4) and strongest["degrid, dilation 1"] is None


@pytest.mark.slow
def test_compare_variants_trains_and_reports(tmp_path, capsys):
    compare = _tool("compare_variants")
    output = tmp_path / "compare.json"
    figure = tmp_path / "maps.png"
    rows = compare.main(["--backbones", "drn_a_18", "--anti-alias", "none", "adaptive",
                         "--size", "32", "--train", "16", "--val", "4", "--epochs", "1",
                         "--max-shift", "4", "--json", str(output), "--figure", str(figure),
                         "--figure-size", "32"])
    out = capsys.readouterr().out
    assert "| drn_a_18 | none |" in out and "| drn_a_18 | adaptive |" in out
    result = json.loads(output.read_text())
    assert result["settings"]["epochs"] == 1 and len(result["rows"]) == len(rows) == 2
    # The 4 validation scenes (seed 0, the tool's default) contain line pixels, so the line
    # IoU is defined: a finite fraction (the JSON's unit; the table shows percentages).
    from keras_drn.data import CLASS_NAMES, scene_split

    y_val = scene_split(16, 4, 32, 0)[3]
    assert (y_val == CLASS_NAMES.index("line")).any()
    for row in result["rows"]:
        assert 0 <= row["miou"] <= 1 and 0 <= row["consistency"] <= 1
        assert set(row["consistency_per_shift"]) == {"1", "2", "3", "4"}
        assert np.isfinite(row["line_iou"]) and 0 <= row["line_iou"] <= 1
        assert row["line_iou"] == row["iou"]["line"]
        assert row["miou"] == pytest.approx(np.nanmean(list(row["iou"].values())))
        assert row["parameters"] > 1e7 and row["train_images_per_s"] > 0
    assert Image.open(figure).size[1] == 16 + 32  # header and one row (drn_a_18)

