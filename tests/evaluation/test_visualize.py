"""Palettes and the comparison pictures: column titles, a legend whose colours are the
palette's, separators between the (often black) mask panels, 0-255 and 0-1 images, and PNGs
written atomically."""

import numpy as np
import pytest
from PIL import Image

from keras_drn import atomic
from keras_drn.evaluation import visualize
from keras_drn.evaluation.visualize import colorize, comparison_grid, palette, save_png, to_uint8

WHITE = np.array(visualize.BACKGROUND, np.uint8)


def _example(count=2, height=8, width=10):
    images = np.random.default_rng(0).uniform(0, 255, (count, height, width, 3))
    labels = np.zeros((count, height, width), "uint8")  # background: black panels
    labels[:, 2:5, 3:7] = 2
    predictions = np.zeros_like(labels)
    return images.astype("float32"), labels, predictions


def _panel_rows(grid):
    """Row indices where a panel (not all background) is drawn, as (start, stop) runs."""
    filled = ~(grid == WHITE).all(axis=(1, 2))
    runs, start = [], None
    for i, value in enumerate(filled):
        if value and start is None:
            start = i
        if not value and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_palette_and_colorize():
    colours = palette(4)
    assert colours.shape == (256, 3) and len({tuple(c) for c in colours[:4]}) == 4
    assert tuple(colours[255]) == (0, 0, 0)
    mask = np.array([[0, 1], [2, 255]])
    np.testing.assert_array_equal(colorize(mask, 4)[1, 0], colours[2])


def test_titles_band_above_the_panels():
    images, labels, predictions = _example()
    grid = comparison_grid(images, labels, predictions, 3, scale=2)
    panels = 2 * 8  # one panel's height after upscaling
    runs = _panel_rows(grid)
    title, first_row = runs[0], runs[1]
    # Title text first (dark pixels on the white band), then the panels lower down.
    assert title[1] <= first_row[0] and first_row[1] - first_row[0] == panels
    band = grid[:first_row[0]]
    assert (band.min(axis=-1) < 128).sum() > 30  # text pixels
    # Each of the three columns has its own title above it.
    dark_columns = np.nonzero((band.min(axis=-1) < 128).any(axis=0))[0]
    panel_columns = np.nonzero(~(grid[first_row[0]] == WHITE).all(axis=-1))[0]
    for left, right in _column_runs(panel_columns):
        assert np.any((dark_columns >= left - 40) & (dark_columns <= right + 40))
    assert grid.shape[0] > 2 * panels + 2 * visualize.SEPARATOR + 10  # taller than the rows


def _column_runs(columns):
    runs, start = [], columns[0]
    for previous, current in zip(columns, columns[1:]):
        if current != previous + 1:
            runs.append((start, previous))
            start = current
    runs.append((start, columns[-1]))
    return runs


def test_separators_between_panels():
    """The black mask panels no longer run into each other: white lines between columns and
    between rows."""
    images, labels, predictions = _example()
    grid = comparison_grid(images, labels, predictions, 3, scale=2)
    runs = _panel_rows(grid)
    first, second = runs[1], runs[2]
    assert second[0] - first[1] >= visualize.SEPARATOR  # white rows between the image rows
    row = grid[first[0] + 1]
    columns = _column_runs(np.nonzero(~(row == WHITE).all(axis=-1))[0])
    assert len(columns) == 3 and all(right - left + 1 == 20 for left, right in columns)
    for (_, right), (left, _) in zip(columns, columns[1:]):
        assert left - right - 1 >= visualize.SEPARATOR
    # The panels themselves: the image, then the two masks (black background, class 2 box).
    left = columns[1][0]
    np.testing.assert_array_equal(grid[first[0], left], palette(3)[0])
    np.testing.assert_array_equal(grid[first[0] + 4, left + 6], palette(3)[2])


def test_legend_colours_and_names():
    images, labels, predictions = _example()
    labels[0, 0, 0] = 255
    names = ("sky", "road", "car", "tree")
    grid = comparison_grid(images, labels, predictions, 4, scale=2, class_names=names)
    last_panel = _panel_rows(grid)[2][1]  # title, two rows, then the legend
    legend = grid[last_panel:]
    colours = palette(4)
    positions = []
    for class_id in (1, 2, 3):
        hits = np.nonzero((legend == colours[class_id]).all(axis=-1))
        assert hits[0].size >= 64, class_id  # a filled swatch of the palette's colour
        positions.append((hits[0].min(), hits[1].min()))  # the swatch's top left corner
    assert positions == sorted(positions)  # in class order, in reading order
    # The names are written: other names, another legend; and ignore (255) is listed only
    # when a label holds it.
    renamed = comparison_grid(images, labels, predictions, 4, scale=2,
                              class_names=("a", "b", "c", "d"))
    assert not np.array_equal(renamed[last_panel:], legend)
    np.testing.assert_array_equal(renamed[:last_panel], grid[:last_panel])
    labels[0, 0, 0] = 0
    without_ignore = comparison_grid(images, labels, predictions, 4, scale=2, class_names=names)
    assert not np.array_equal(without_ignore[last_panel:], legend)
    with pytest.raises(ValueError, match="2 names for 4 classes"):
        comparison_grid(images, labels, predictions, 4, class_names=("a", "b"))


def test_images_on_both_scales():
    """Images are raw 0-255 by default (what the pipelines now yield), 0-1 with
    value_range=1, uint8 as they are: the image panel shows the same pixels."""
    images, labels, predictions = _example(count=1)
    raw = comparison_grid(images, labels, predictions, 3, scale=1)
    unit = comparison_grid(images / 255.0, labels, predictions, 3, scale=1, value_range=1.0)
    whole = comparison_grid(images.round().astype("uint8"), labels, predictions, 3, scale=1)
    np.testing.assert_array_equal(raw, unit)
    np.testing.assert_array_equal(raw, whole)
    expected = images[0].round().astype("uint8")
    assert any(np.array_equal(raw[i:i + 8, j:j + 10], expected)
               for i in range(raw.shape[0] - 7) for j in range(raw.shape[1] - 9))
    np.testing.assert_array_equal(to_uint8(np.array([[[0.0, 127.5, 255.0]]]), 255),
                                  [[[0, 128, 255]]])
    np.testing.assert_array_equal(to_uint8(np.array([[[0.0, 0.5, 1.0]]])), [[[0, 128, 255]]])


def test_png_round_trip_is_atomic(tmp_path):
    images, labels, predictions = _example()
    grid = comparison_grid(images, labels, predictions, 3, scale=2)
    path = tmp_path / "out" / "grid.png"
    save_png(grid, str(path))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)
    # No temporary left; the folder's record of what keras_drn wrote (keras_drn.atomic).
    assert sorted(p.name for p in path.parent.iterdir()) == [atomic.RECORD, "grid.png"]


def test_save_png_replaces_only_pictures_keras_drn_wrote(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((2, 2, 3), 7, "uint8")).save(path)  # the user's picture
    with pytest.raises(FileExistsError, match=f"{path} exists and was not written by "
                       "keras_drn.*another --output, or pass --overwrite"):
        save_png(np.zeros((2, 2, 3), "uint8"), path)
    assert np.asarray(Image.open(path)).max() == 7
    save_png(np.zeros((2, 2, 3), "uint8"), path, overwrite=True)
    save_png(np.ones((2, 2, 3), "uint8"), path)  # now keras_drn's: replaced
    assert np.asarray(Image.open(path)).max() == 1


def test_save_png_goes_through_the_atomic_writer(tmp_path, monkeypatch):
    written = []
    real = visualize.write_atomically

    def spy(path, write, what="output", overwrite=None, option=None):
        written.append(str(path))
        return real(path, write, what, overwrite, option)

    monkeypatch.setattr(visualize, "write_atomically", spy)
    save_png(np.zeros((2, 2, 3), "uint8"), tmp_path / "a.png")
    assert written == [str(tmp_path / "a.png")]
