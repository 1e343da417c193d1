"""The one folder lister (``keras_drn.data.files``): what a folder source sees in a folder."""

import pytest

from keras_drn import constants


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_list_images_keeps_images_sorted_and_leaves_out_hidden_and_other_files(tmp_path):
    from keras_drn.data.files import list_images

    folder = _touch(tmp_path / "pictures", "b.PNG", "a.jpg", "._a.jpg", ".hidden.png",
                    "notes.txt", "c.TIFF")
    assert [p.rsplit("/", 1)[-1] for p in list_images(folder)] == ["a.jpg", "b.PNG", "c.TIFF"]
    assert list_images(_touch(tmp_path / "none"), allow_empty=True) == []
    with pytest.raises(ValueError, match="test folder .*none' holds no image files"):
        list_images(tmp_path / "none", "test folder")
    with pytest.raises(ValueError, match="nowhere' does not exist"):
        list_images(tmp_path / "nowhere")


def test_files_by_stem(tmp_path):
    from keras_drn.data.files import files_by_stem

    folder = _touch(tmp_path / "masks", "b.png", "a.png", "a.txt")
    assert list(files_by_stem(folder, "mask", (".png",))) == ["a", "b"]
    _touch(folder, "a.jpg")
    assert list(files_by_stem(folder, "mask", (".png",))) == ["a", "b"]
    with pytest.raises(ValueError, match="Two image files share the stem 'a'"):
        files_by_stem(folder, "image")
    with pytest.raises(FileNotFoundError, match="mask folder .*nowhere' does not exist"):
        files_by_stem(tmp_path / "nowhere", "mask")


def test_every_lister_of_the_library_is_this_one():
    from keras_drn import data
    from keras_drn.data import classification, files, rle_csv, sources

    assert data.list_images is classification.list_images is files.list_images
    assert sources.files_by_stem is files.files_by_stem
    assert rle_csv.list_images is files.list_images
    assert files.list_images.__defaults__[1] is constants.IMAGE_EXTENSIONS


pytestmark = pytest.mark.backend_independent  # no Keras op
