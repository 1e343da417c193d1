import numpy as np
from PIL import Image

from keras_drn.visualize import colorize, comparison_grid, palette, save_png


def test_palette_and_colorize():
    colours = palette(4)
    assert colours.shape == (256, 3) and len({tuple(c) for c in colours[:4]}) == 4
    assert tuple(colours[255]) == (0, 0, 0)
    mask = np.array([[0, 1], [2, 255]])
    np.testing.assert_array_equal(colorize(mask, 4)[1, 0], colours[2])


def test_comparison_grid_png_round_trip(tmp_path):
    images = np.random.default_rng(0).random((2, 8, 10, 3)).astype("float32")
    masks = np.zeros((2, 8, 10), "uint8")
    grid = comparison_grid(images, masks, masks, 3, scale=2)
    assert grid.shape == (2 * 2 * (8 + 4), 2 * 30, 3) and grid.dtype == np.uint8
    path = tmp_path / "out" / "grid.png"
    save_png(grid, str(path))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temporary left
