"""The check of file data before training (``keras_drn.data.checks``): every bad file named
in one error, each mask read once, unreadable images listed for a caller that skips them."""

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _good(folder, stem, size=(4, 5), value=1):
    _save(folder / "images" / f"{stem}.png", np.full((*size, 3), 50, np.uint8))
    _save(folder / "masks" / f"{stem}.png", np.full(size, value, np.uint8))


def test_every_bad_file_is_named_in_one_error(tmp_path):
    from keras_drn.workflows import segmentation

    train = tmp_path / "train"
    _good(train, "fine")
    (train / "images" / "broken.png").write_bytes(b"not a picture")
    _save(train / "masks" / "broken.png", np.zeros((4, 5), np.uint8))
    _good(train, "out_of_range", value=7)
    _good(train, "lonely")
    (train / "masks" / "lonely.png").unlink()
    _save(train / "masks" / "orphan.png", np.zeros((4, 5), np.uint8))
    _good(train, "wrong_size")
    _save(train / "masks" / "wrong_size.png", np.zeros((4, 6), np.uint8))
    _good(train, "colour")
    _save(train / "masks" / "colour.png", np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError) as error:
        segmentation.load_data(str(tmp_path), "train", num_classes=3)
    message = str(error.value)
    assert message.startswith("6 bad file(s) in ")
    assert "images/broken.png' (cannot read the image" in message
    assert "masks/out_of_range.png' (holds label value(s) [7] outside [0, 3) or 255" in message
    assert "images/lonely.png' (no mask lonely.png in" in message
    assert "masks/orphan.png' (no image orphan.* in" in message
    assert "masks/wrong_size.png' (is 4x6 (height x width), its image 4x5)" in message
    assert "masks/colour.png' (mask has image mode 'RGB'; masks must be single-channel" in message
    assert "fine.png" not in message
    assert {path.rsplit("/", 1)[-1] for path, _ in error.value.problems} == {
        "broken.png", "out_of_range.png", "lonely.png", "orphan.png", "wrong_size.png",
        "colour.png"}


def test_a_long_list_is_cut_and_counted(tmp_path):
    from keras_drn.workflows import segmentation

    for i in range(13):
        _good(tmp_path / "train", f"{i:02d}", value=9)
    with pytest.raises(ValueError, match=r"13 bad file\(s\) .*; and 3 more\. Fix or remove"):
        segmentation.load_data(str(tmp_path), "train", num_classes=2)
    unchecked = segmentation.load_data(str(tmp_path), "train", num_classes=2, check=False)
    assert unchecked.size == 13 and unchecked.image_size is None  # found when read instead


def test_binary_masks_follow_the_folders_convention(tmp_path):
    """0/255 masks are valid binary masks; a 0/1 folder's 7 is not, nor a 0/255 folder's 1."""
    from keras_drn.workflows import segmentation

    _good(tmp_path / "train", "a", value=255)
    _good(tmp_path / "val", "b", value=0)
    assert segmentation.load_data(str(tmp_path), "val", num_classes=1).size == 1
    _good(tmp_path / "train", "c", value=7)
    with pytest.raises(ValueError, match=r"c\.png' \(holds label value\(s\) \[7\] outside "
                                         r"0/255"):
        segmentation.load_data(str(tmp_path), "train", num_classes=1)


def test_the_binary_convention_and_the_check_read_each_mask_once(tmp_path, monkeypatch):
    from keras_drn.data import checks
    from keras_drn.workflows import segmentation

    for split in ("train", "val"):
        for stem in "abc":
            _good(tmp_path / split, f"{split}{stem}", value=255)
    opened = []
    real = checks.Image.open

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checks.Image, "open", counting)
    for split in ("train", "val"):
        segmentation.load_data(str(tmp_path), split, num_classes=1)
    masks = [path for path in opened if "/masks/" in path]
    assert len(masks) == 6 == len(set(masks))  # 0/255: the convention reads all six


def test_readable_images_lists_the_unreadable_ones(tmp_path):
    from keras_drn.data import checks

    _save(tmp_path / "a.png", np.zeros((3, 3, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff truncated")
    _save(tmp_path / "c.png", np.zeros((3, 3), np.uint8))
    paths = [tmp_path / name for name in ("a.png", "b.jpg", "c.png")]
    with pytest.warns(UserWarning, match=r"1 bad file\(s\) in the images: .*b\.jpg.*skipped"):
        readable, unreadable = checks.readable_images(paths)
    assert readable == [str(paths[0]), str(paths[2])]
    assert [path for path, _ in unreadable] == [str(paths[1])]
