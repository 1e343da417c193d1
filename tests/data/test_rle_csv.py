"""The Kaggle-shaped CSV source (``keras_drn.data.rle_csv_folder``, ``load_data("rle:...")``):
masks decoded from the CSV's RLEs at their image's size, in either pixel order."""

import csv

import numpy as np
import pytest
from PIL import Image

from keras_drn.workflows.submission import rle_encode

tf = pytest.importorskip("tensorflow")


def _folder(root, rows, header=("ImageId", "EncodedPixels", "patient"), sizes=None,
            extension=".png"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    sizes = sizes or {}
    for row in rows:
        image_id = row[0]
        name = image_id if "." in image_id else image_id + extension
        height, width = sizes.get(image_id, (5, 7))
        Image.fromarray(np.full((height, width, 3), 40, np.uint8)).save(root / "images" / name)
    with open(root / "train.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return root


def _masks(data):
    return [mask for _, mask in data.dataset.as_numpy_iterator()]


@pytest.mark.parametrize("order", ["F", "C"])
def test_decodes_the_masks_the_csv_encodes(tmp_path, order):
    from keras_drn.workflows import segmentation as segment

    rng = np.random.default_rng(0)
    wide = (rng.random((5, 7)) > 0.6).astype(np.uint8)
    tall = (rng.random((9, 4)) > 0.5).astype(np.uint8)
    part = np.zeros((5, 7), np.uint8)
    part[0, :3] = 1
    other = np.zeros((5, 7), np.uint8)
    other[4, 5:] = 1
    rows = [["a", rle_encode(wide, order), "p1"], ["b", "", "p1"],
            ["c", rle_encode(tall, order), "p2"], ["d.jpg", rle_encode(part, order), "p3"],
            ["d.jpg", rle_encode(other, order), "p3"], ["e", "-1", "p4"]]
    root = _folder(tmp_path, rows, sizes={"c": (9, 4)})
    spec = f"rle:{root}" if order == "F" else f"rle-c:{root}"
    data = segment.load_data(spec, "train")
    assert (data.num_classes, data.size) == (1, 5)
    assert data.examples["id"] == ("a", "b", "c", "d.jpg", "e")
    assert data.examples["empty"] == (False, True, False, False, True)
    assert data.examples["patient"] == ("p1", "p1", "p2", "p3", "p4")
    masks = _masks(data)
    np.testing.assert_array_equal(masks[0], wide)
    np.testing.assert_array_equal(masks[1], np.zeros((5, 7)))
    np.testing.assert_array_equal(masks[2], tall)  # at its own image's size
    np.testing.assert_array_equal(masks[3], part | other)  # SIIM: rows of one image unite
    np.testing.assert_array_equal(masks[4], np.zeros((5, 7)))
    if order == "F":  # a plain folder holding train.csv and images/ is read as rle:
        assert segment.load_data(str(root), "train").examples == data.examples


def test_bad_folders_are_named(tmp_path):
    from keras_drn.workflows import segmentation as segment
    from keras_drn.data import rle_csv_folder

    root = _folder(tmp_path / "ok", [["a", "1 3"]], header=("id", "rle_mask"))
    assert rle_csv_folder(root).examples["id"] == ("a",)  # TGS Salt's header
    with pytest.raises(FileNotFoundError, match="val.csv' does not exist.*--folds K --fold I"):
        segment.load_data(f"rle:{root}", "val")
    with pytest.raises(ValueError, match="binary masks \\(num_classes=1\\); received "
                       "num_classes=3"):
        segment.load_data(f"rle:{root}", "train", num_classes=3)
    (root / "images" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 image\\(s\\) listed in .* are not in .*"
                       "\\['a'\\]"):
        rle_csv_folder(root)
    severstal = _folder(tmp_path / "sev", [["a", "1", "1 3"]],
                        header=("ImageId", "ClassId", "EncodedPixels"))
    with pytest.raises(ValueError, match="multi-class CSV"):
        rle_csv_folder(severstal)
    nameless = _folder(tmp_path / "nameless", [["a", "1 3"]], header=("ImageId", "Mask"))
    with pytest.raises(ValueError, match="no rle column.*'Mask'.*rle_column="):
        rle_csv_folder(nameless)
    assert rle_csv_folder(nameless, rle_column="mask").examples["empty"] == (False,)
    past = _folder(tmp_path / "past", [["a", "30 10"]])  # beyond the 35 pixels of 5x7
    with pytest.raises(tf.errors.InvalidArgumentError, match="a.png.*5x7.*beyond the 35"):
        _masks(rle_csv_folder(past))


def test_ids_that_share_a_stem_read_their_own_file(tmp_path):
    from keras_drn.data import rle_csv_folder

    root = tmp_path / "stems"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((5, 7, 3), 10, np.uint8)).save(root / "images" / "a.png")
    Image.fromarray(np.full((3, 4, 3), 200, np.uint8)).save(root / "images" / "a.bmp")
    with open(root / "train.csv", "w", newline="") as stream:
        csv.writer(stream).writerows([("ImageId", "EncodedPixels"), ("a.png", ""),
                                      ("a.bmp", "1 2")])
    images = [image for image, _ in rle_csv_folder(root).dataset.as_numpy_iterator()]
    assert [image.shape for image in images] == [(5, 7, 3), (3, 4, 3)]
    assert (images[0].max(), images[1].max()) == (10, 200)
    with open(root / "train.csv", "w", newline="") as stream:  # the bare stem: ambiguous
        csv.writer(stream).writerows([("ImageId", "EncodedPixels"), ("a", "")])
    with pytest.raises(ValueError, match=r"'a' of .* matches several files .*"
                                         r"\['a.bmp', 'a.png'\]"):
        rle_csv_folder(root)


def test_a_csv_with_a_utf8_byte_order_mark_is_read(tmp_path):
    from keras_drn.data import rle_csv_folder

    root = _folder(tmp_path, [["a", "1 3"]])
    text = (root / "train.csv").read_text()
    (root / "train.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())  # Excel's "CSV UTF-8"
    data = rle_csv_folder(root)
    assert data.examples["id"] == ("a",)
    assert _masks(data)[0].sum() == 3


def test_val_fraction_and_check_of_a_csv_folder(tmp_path):
    from keras_drn.workflows import segmentation as segment

    root = _folder(tmp_path / "ok", [[name, "1 3"] for name in "abcdef"])
    with pytest.raises(FileNotFoundError, match="val.csv' does not exist.*val_fraction=0.2"):
        segment.load_data(f"rle:{root}", "val")
    val = segment.load_data(f"rle:{root}", "val", val_fraction=0.5, seed=2)
    train = segment.load_data(f"rle:{root}", "train", val_fraction=0.5, seed=2)
    assert sorted(val.examples["id"] + train.examples["id"]) == list("abcdef")
    assert val.size == 3 and val.image_size == (5, 7) and len(_masks(val)) == 3
    broken = _folder(tmp_path / "broken", [["a", "30 10"], ["b", ""], ["c", "1 2"]])
    (broken / "images" / "b.png").write_bytes(b"oops")
    with pytest.raises(ValueError, match=r"2 bad file\(s\) .*a\.png' \(its RLE mask, at 5x7: "
                                         r".*beyond the 35.*b\.png' \(cannot read"):
        segment.load_data(f"rle:{broken}", "train")
