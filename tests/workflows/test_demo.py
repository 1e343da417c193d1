"""keras_drn.workflows.demo: the recipe as data, its checks, and one tiny run end to end."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from keras_drn import atomic
from keras_drn.data import CLASS_NAMES
from keras_drn.workflows import demo

TINY = {"train": 16, "val": 8, "size": 32, "epochs": 1, "batch_size": 8,
        "mixed_precision": "float32"}


def test_the_recipe_is_valid_and_counts_its_steps():
    assert demo.RECIPE.check() is demo.RECIPE
    recipe = dataclasses.replace(demo.RECIPE, train=33, batch_size=16, epochs=3)
    assert recipe.steps == 9  # 3 batches (16, 16, 1) per epoch


@pytest.mark.parametrize("options, message", [
    ({"epoch": 1}, r"Unknown demo options \['epoch'\]"),
    ({"epochs": 0}, "epochs=0"),
    ({"train": 2.5}, "train=2.5"),
    ({"batch_size": True}, "batch_size=True"),
    ({"size": 8}, "size=8"),
    ({"learning_rate": 0.0}, "learning_rate=0.0"),
    ({"head": "fcn"}, "head='fcn'"),
    ({"context": "aspp"}, "context='aspp'"),
    ({"variant": "drn_d_23"}, "variant='drn_d_23'"),
    ({"loss": "dice"}, "loss='dice'"),
    ({"mixed_precision": "float16"}, "mixed_precision='float16'"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        demo.run(output=tmp_path / "demo.png", **options)
    assert not (tmp_path / "demo.png").exists()


def test_a_bad_seed_is_refused(tmp_path):
    with pytest.raises(ValueError, match="seed=-1"):
        demo.run(seed=-1, output=tmp_path / "demo.png", **TINY)


def test_a_file_keras_drn_did_not_write_is_kept(tmp_path):
    output = tmp_path / "demo.png"
    output.write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="--output"):
        demo.run(output=output, **TINY)
    assert output.read_bytes() == b"not ours"


def test_runs_end_to_end_and_writes_the_picture(tmp_path, capsys):
    output = tmp_path / "pictures" / "demo.png"
    result = demo.run(seed=3, output=output, verbose=0, **TINY)
    assert result.recipe == dataclasses.replace(demo.RECIPE, **TINY)
    assert result.seed == 3 and result.steps == 2 and result.policy == "float32"
    assert list(result.iou) == list(CLASS_NAMES)
    assert 0 <= result.miou <= 1
    assert result.miou == pytest.approx(np.nanmean(list(result.iou.values())))
    assert result.train_seconds > 0
    with Image.open(output) as picture:
        assert picture.format == "PNG"
        assert picture.width > 3 * TINY["size"]  # image | ground truth | prediction
    printed = capsys.readouterr().out
    assert "16 training and 8 validation scenes of 32x32" in printed
    assert "mIoU" in printed and f"wrote {output}" in printed
    atomic.check_replaceable([output], False, "--output")  # ours now: a rerun replaces it
