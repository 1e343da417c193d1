"""keras_drn.workflows.submission: hand-checked run-length encodings in both orders, a round trip and a
loop encoder over random masks (hypothesis), malformed RLEs refused with the reason, small
components removed under 4- and 8-connectivity, the submission CSV in every layout."""

import csv

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keras_drn import atomic
from keras_drn.workflows.submission import (
    LAYOUTS,
    remove_small_components,
    rle_decode,
    rle_encode,
    write_submission,
)

MASK = np.array([[1, 0, 1],
                 [1, 1, 0]], dtype="uint8")


def loop_encode(mask, order):
    """Runs of ones, 1-indexed, by walking the pixels in ``order`` one at a time."""
    rows, columns = mask.shape
    if order == "F":
        pixels = [mask[r, c] for c in range(columns) for r in range(rows)]
    else:
        pixels = [mask[r, c] for r in range(rows) for c in range(columns)]
    runs, start = [], None
    for position, value in enumerate(list(pixels) + [0], start=1):
        if value and start is None:
            start = position
        elif not value and start is not None:
            runs += [start, position - start]
            start = None
    return " ".join(map(str, runs))


def test_hand_checked_encodings_in_both_orders():
    # Column-major: (0,0) (1,0) | (0,1) (1,1) | (0,2) (1,2) = 1 1 0 1 1 0.
    assert rle_encode(MASK) == rle_encode(MASK, order="F") == "1 2 4 2"
    # Row-major: 1 0 1 1 1 0.
    assert rle_encode(MASK, order="C") == "1 1 3 3"
    assert rle_encode(np.zeros((2, 3), bool)) == ""
    assert rle_encode(np.ones((2, 2), bool)) == "1 4"
    assert rle_encode(np.array([[0, 0], [0, 1]]), order="F") == "4 1"


def test_hand_checked_decodings_in_both_orders():
    np.testing.assert_array_equal(rle_decode("1 2 4 2", (2, 3)), MASK)
    np.testing.assert_array_equal(rle_decode("1 1 3 3", (2, 3), order="C"), MASK)
    decoded = rle_decode("3 1", (2, 3), order="F")
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, [[0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(rle_decode("3 1", (2, 3), order="C"), [[0, 0, 1], [0, 0, 0]])
    # Touching runs are valid (an encoder that does not merge them writes those).
    np.testing.assert_array_equal(rle_decode("1 1 2 1", (1, 3), order="C"), [[1, 1, 0]])
    for empty in ("", "  ", None, float("nan")):
        assert not rle_decode(empty, (2, 3)).any()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from(["F", "C"]), st.data())
def test_round_trip_and_loop_encoder_on_random_masks(rows, columns, order, data):
    mask = data.draw(arrays(np.bool_, (rows, columns)))
    encoded = rle_encode(mask, order=order)
    assert encoded == loop_encode(mask, order)
    np.testing.assert_array_equal(rle_decode(encoded, (rows, columns), order=order), mask)
    np.testing.assert_array_equal(rle_encode(mask.astype("uint8"), order=order), encoded)


@pytest.mark.parametrize("rle, message", [
    ("1 2 3", "odd number of values"),
    ("0 2", "count from 1"),
    ("2 0", "lengths must be >= 1"),
    ("5 3", r"ends at pixel 7, beyond the 6 pixels of shape \(2, 3\)"),
    ("1 3 2 2", "runs overlap: run 1 \\(start 1, length 3\\) and run 2"),
    ("4 2 1 4", "runs overlap: run 2 \\(start 1, length 4\\) and run 1"),
    ("1 2.5", "integers only, got '2.5'"),
    ("1 x", "integers only"),
])
def test_malformed_rles_are_refused_with_the_reason(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, (2, 3))


def test_bad_masks_orders_and_shapes_are_refused():
    with pytest.raises(ValueError, match="binary .* got values 0, 1, 2"):
        rle_encode(np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="must be 2-D"):
        rle_encode(np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match="order must be 'F'"):
        rle_encode(MASK, order="K")
    with pytest.raises(ValueError, match="shape must be"):
        rle_decode("1 1", (6,))


COMPONENTS = np.array([[1, 1, 0, 0, 0],
                       [1, 0, 0, 1, 0],
                       [0, 0, 1, 0, 0],
                       [0, 0, 0, 0, 1]], dtype="uint8")


def test_remove_small_components_by_connectivity():
    # 4-connectivity: an L of 3 and three single pixels.
    kept = remove_small_components(COMPONENTS, min_size=2)
    expected = np.zeros_like(COMPONENTS)
    expected[0, 0] = expected[0, 1] = expected[1, 0] = 1
    np.testing.assert_array_equal(kept, expected)
    assert kept.dtype == COMPONENTS.dtype
    # 8-connectivity: (1,3) and (2,2) touch by a corner, a component of 2.
    kept = remove_small_components(COMPONENTS.astype(bool), min_size=2, connectivity=8)
    expected[1, 3] = expected[2, 2] = 1
    np.testing.assert_array_equal(kept, expected.astype(bool))
    assert kept.dtype == bool
    np.testing.assert_array_equal(remove_small_components(COMPONENTS, 1), COMPONENTS)
    assert not remove_small_components(COMPONENTS, 4, connectivity=8).any()
    with pytest.raises(ValueError, match="connectivity must be 4 or 8"):
        remove_small_components(COMPONENTS, 2, connectivity=6)
    with pytest.raises(ValueError, match="min_size must be"):
        remove_small_components(COMPONENTS, -1)


def _read(path):
    with open(path, newline="") as stream:
        return list(csv.reader(stream))


def test_submission_one_row_per_image(tmp_path):
    path = tmp_path / "submission.csv"
    empty = np.zeros((2, 3), "uint8")
    rows = [("a.png", MASK), ("b.png", empty), ("c", "1 1"), ("d", float("nan")), ("e", None)]
    assert write_submission(path, rows) == path
    assert _read(path) == [["ImageId", "EncodedPixels"], ["a.png", "1 2 4 2"], ["b.png", ""],
                           ["c", "1 1"], ["d", ""], ["e", ""]]
    write_submission(path, [("a", MASK)], order="C", columns=("id", "rle_mask"))
    assert _read(path) == [["id", "rle_mask"], ["a", "1 1 3 3"]]
    # No temporary left; the folder's record of what keras_drn wrote (keras_drn.atomic).
    assert sorted(p.name for p in tmp_path.iterdir()) == [atomic.RECORD, "submission.csv"]


def test_submission_per_image_and_class_in_both_class_layouts(tmp_path):
    rows = [("0001.jpg", 1, MASK), ("0001.jpg", 2, np.zeros((2, 3)))]
    joined = tmp_path / "joined.csv"
    write_submission(joined, rows, layout="image_class")
    assert _read(joined) == [list(LAYOUTS["image_class"]), ["0001.jpg_1", "1 2 4 2"],
                             ["0001.jpg_2", ""]]
    separate = tmp_path / "separate.csv"
    write_submission(separate, rows, layout="image_class_columns")
    assert _read(separate) == [["ImageId", "ClassId", "EncodedPixels"],
                               ["0001.jpg", "1", "1 2 4 2"], ["0001.jpg", "2", ""]]
    decoded = rle_decode(_read(separate)[1][2], MASK.shape)
    np.testing.assert_array_equal(decoded, MASK)


def test_submission_errors_leave_no_file(tmp_path):
    path = tmp_path / "submission.csv"
    with pytest.raises(ValueError, match="a appears twice"):
        write_submission(path, [("a", MASK), ("a", MASK)])
    with pytest.raises(ValueError, match="a class 1 appears twice"):
        write_submission(path, [("a", 1, MASK), ("a", "1", MASK)], layout="image_class")
    with pytest.raises(ValueError, match="layout must be one of"):
        write_submission(path, [("a", MASK)], layout="per_pixel")
    with pytest.raises(ValueError, match=r"takes rows of \(image_id, class_id, mask\)"):
        write_submission(path, [("a", MASK)], layout="image_class_columns")
    with pytest.raises(ValueError, match="columns must be 2 names"):
        write_submission(path, [("a", MASK)], columns=("id",))
    with pytest.raises(ValueError, match="odd number"):
        write_submission(path, [("a", "1 2 3")])
    assert list(tmp_path.iterdir()) == []


def test_a_file_keras_drn_did_not_write_is_not_replaced(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("ImageId,EncodedPixels\nim0,1 3\n")
    with pytest.raises(FileExistsError, match=f"{train} exists and was not written by "
                       "keras_drn: it is not replaced. Choose another --submission, or pass "
                       "--overwrite"):
        write_submission(train, [("a", MASK)])
    assert train.read_text() == "ImageId,EncodedPixels\nim0,1 3\n"
    ours = tmp_path / "submission.csv"
    write_submission(ours, [("a", MASK)])
    write_submission(ours, [("b", MASK)])  # its own file: replaced
    assert _read(ours)[1][0] == "b"
    ours.write_text("edited by hand\n")  # no longer what keras_drn wrote
    with pytest.raises(FileExistsError, match="submission.csv exists and was not written"):
        write_submission(ours, [("c", MASK)])
    write_submission(train, [("a", MASK)], overwrite=True)
    assert _read(train)[1] == ["a", "1 2 4 2"]
    with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
        write_submission(tmp_path, [("a", MASK)], overwrite=True)


def test_formula_like_ids_are_written_verbatim_with_one_warning(tmp_path, recwarn):
    path = tmp_path / "submission.csv"
    ids = ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "plain"]
    with pytest.warns(UserWarning, match=r"4 id\(s\) start like a spreadsheet formula "
                      r"\('=HYPERLINK\(1\)', '\+1', '-2', '@SUM\(A1\)'\)\. They are written "
                      "exactly as they are, since Kaggle matches ids verbatim") as caught:
        write_submission(path, [(i, MASK) for i in ids])
    assert len(caught) == 1 and "plain" not in str(caught[0].message)
    assert [row[0] for row in _read(path)[1:]] == ids  # unchanged
    recwarn.clear()
    write_submission(path, [("plain", MASK), ("a-1", MASK)])
    assert not [w for w in recwarn if "formula" in str(w.message)]


pytestmark = pytest.mark.backend_independent  # no Keras op: CI runs it on TensorFlow only
