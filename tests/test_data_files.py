"""The user's own data: image folders and .npz files, including every bad-data case."""

import numpy as np
import pytest
from PIL import Image

from hwnas.data import DataError, ImageFolderDataset, NpzDataset, resolve_dataset


def _png(path, colour, size=(6, 5), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pets"
    for i in range(6):
        _png(root / "cat" / f"c{i}.png", (255, 0, 0))
        _png(root / "dog" / f"d{i}.PNG", (0, 0, 255))
    Image.new("RGB", (9, 9), (0, 255, 0)).save(root / "dog" / "d_extra.jpg")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return root


def test_image_folder_loads_resizes_and_scales(folder):
    ds = resolve_dataset(str(folder), input_shape=(3, 4, 4))
    assert isinstance(ds, ImageFolderDataset)
    assert ds.class_names == ["cat", "dog"] and ds.input_shape == (3, 4, 4) and ds.num_images == 13
    s = ds.splits(0)
    assert s.x_train.shape[1:] == (3, 4, 4) and sum(s.sizes()) == 13 and len(s.y_val) > 0
    red = s.x_train[s.y_train == 0][0]
    assert np.allclose(red[0], 1.0) and np.allclose(red[1], -1.0) and np.allclose(red[2], -1.0)
    assert ds.key.startswith("folder:pets@") and ds.key.endswith("[3x4x4]")


def test_image_folder_grayscale_and_content_key(folder):
    gray = ImageFolderDataset(folder, input_shape=(1, 3, 3))
    assert gray.splits(0).x_train.shape[1:] == (1, 3, 3)
    before = ImageFolderDataset(folder).key
    _png(folder / "cat" / "c0.png", (254, 0, 0))
    assert ImageFolderDataset(folder).key != before  # edited data never reuses old evaluations


@pytest.mark.parametrize("build, message", [
    (lambda root: None, "pets: no such folder"),
    (lambda root: root.mkdir(), "pets: empty"),
    (lambda root: _png(root / "cat" / "a.png", (1, 2, 3)), "pets: only one class ('cat')"),
    (lambda root: (_png(root / "cat" / "a.png", (1, 2, 3)), (root / "dog").mkdir(),
                   (root / "dog" / "x.txt").write_text("x")), "dog: class 'dog' has no PNG/JPEG images"),
])
def test_image_folder_structure_errors_name_the_path(tmp_path, build, message):
    root = tmp_path / "pets"
    build(root)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ImageFolderDataset(root)


def test_unreadable_image_is_reported_by_file(folder):
    bad = folder / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    ds = ImageFolderDataset(folder)
    with pytest.raises(DataError, match=r"broken\.png: cannot read image"):
        ds.splits(0)


def test_image_folder_with_too_few_images_for_validation(tmp_path):
    for cls in ("a", "b"):
        _png(tmp_path / "tiny" / cls / "1.png", (9, 9, 9))
    with pytest.raises(DataError, match="too few images"):
        ImageFolderDataset(tmp_path / "tiny").splits(0)


def test_image_folder_rejects_a_bad_shape(folder):
    with pytest.raises(DataError, match="1xHxW"):
        ImageFolderDataset(folder, input_shape=(2, 8, 8))


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_channels_last_uint8_with_given_splits_and_odd_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 5, 5, 3), dtype=np.uint8)
    y = np.array([3, 7] * 10)
    path = _save(tmp_path / "d.npz", x_train=x, y_train=y, x_val=x[:4], y_val=y[:4])
    ds = resolve_dataset(str(path))
    assert isinstance(ds, NpzDataset)
    assert ds.input_shape == (3, 5, 5) and ds.class_names == ["3", "7"]
    s = ds.splits(0)
    assert s.sizes() == (16, 4, 4)  # val given; test cut from train (20%)
    assert set(s.y_train) == {0, 1} and s.x_train.min() >= -1 and s.x_train.max() <= 1
    assert np.allclose(s.x_val[0], (x[0].transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, atol=1e-6)
    assert ds.key.startswith("npz:d@")


def test_npz_three_dim_float_inputs_and_class_names(tmp_path):
    x = np.random.default_rng(1).normal(size=(30, 4, 4)).astype(np.float32)
    y = np.arange(30) % 3
    ds = NpzDataset(_save(tmp_path / "f.npz", x_train=x, y_train=y, class_names=np.array(["a", "b", "c"])))
    assert ds.input_shape == (1, 4, 4) and ds.class_names == ["a", "b", "c"]
    s = ds.splits(0)
    assert sum(s.sizes()) == 30 and np.array_equal(np.sort(np.concatenate([s.x_train, s.x_val, s.x_test])
                                                            .ravel()), np.sort(x.ravel()))


GOOD_X = np.zeros((6, 4, 4), dtype=np.uint8)
GOOD_Y = np.array([0, 1] * 3)


@pytest.mark.parametrize("arrays, message", [
    ({"y_train": GOOD_Y}, "missing array 'x_train'"),
    ({"x_train": GOOD_X, "y_train": GOOD_Y, "x_val": GOOD_X}, "has 'x_val' but not 'y_val'"),
    ({"x_train": GOOD_X, "y_train": GOOD_Y[:5]}, "x_train has 6 samples but y_train has 5"),
    ({"x_train": GOOD_X, "y_train": GOOD_Y, "x_test": np.zeros((2, 3, 3), np.uint8), "y_test": GOOD_Y[:2]},
     "x_test samples have shape"),
    ({"x_train": GOOD_X, "y_train": np.zeros(6, int)}, "only one class"),
    ({"x_train": np.full((6, 4, 4), np.nan, np.float32), "y_train": GOOD_Y}, "NaN or infinite"),
    ({"x_train": GOOD_X, "y_train": GOOD_Y + 0.5}, "expected integer labels"),
    ({"x_train": GOOD_X.reshape(6, 16), "y_train": GOOD_Y}, "x_train has shape"),
    ({"x_train": GOOD_X, "y_train": GOOD_Y, "x_val": GOOD_X[:2], "y_val": np.array([0, 5])},
     "y_val holds label 5 that y_train lacks"),
    ({"x_train": GOOD_X[:0], "y_train": GOOD_Y[:0]}, "x_train is empty"),
    ({"x_train": GOOD_X.astype(np.int32), "y_train": GOOD_Y}, "dtype int32"),
    ({"x_train": GOOD_X, "y_train": GOOD_Y, "class_names": np.array(["a"])}, "class_names has 1 entries"),
])
def test_npz_bad_data_names_the_file(tmp_path, arrays, message):
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=r"bad\.npz: .*" + message.replace("(", r"\(")):
        NpzDataset(path)


def test_npz_that_is_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match=r"junk\.npz: not a readable \.npz file"):
        NpzDataset(path)
