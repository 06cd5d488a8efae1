"""Data sets that need not fit in memory: lazy image folders, memory-mapped .npy arrays, CIFAR's binary files,
train/val trees, and the trainer's streamed path (a DataLoader) against its in-memory path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.data import (CifarDataset, DataError, ImageFolderDataset, LazyArray, NpyFolderDataset, NpzDataset,
                        resolve_dataset)
from hwnas.data.lazy import concatenate, materialize, take
from hwnas.deploy.final import TrainPlusValidation
from hwnas.spaces import create_space
from hwnas.training import Recipe, train
from hwnas.training.loader import BatchSource
from hwnas.training.trainer import batches

ARCH = "16:k3e1/24:k3e1se/32:k3e1/48:k3e1"


def _images(root, classes=3, per_class=12, size=(10, 9), seed=0):
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            pixels[..., c] = 200 + c * 20  # a class signal to learn
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return _images(tmp_path_factory.mktemp("imgs") / "shapes")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_streamed_folder_gives_the_in_memory_folder_s_arrays(image_folder):
    eager = ImageFolderDataset(image_folder, input_shape=(3, 8, 8), stream=False)
    lazy = ImageFolderDataset(image_folder, input_shape=(3, 8, 8), stream=True)
    assert not eager.stream and lazy.stream and lazy.key == eager.key
    a, b = eager.splits(0), lazy.splits(0)
    assert isinstance(b.x_train, LazyArray) and isinstance(a.x_train, np.ndarray)
    for name in ("x_train", "x_val", "x_test"):
        assert np.array_equal(materialize(getattr(b, name)), getattr(a, name))
    for name in ("y_train", "y_val", "y_test"):
        assert np.array_equal(getattr(b, name), getattr(a, name))
    assert np.array_equal(b.x_train[[4, 1]], a.x_train[[4, 1]]) and np.array_equal(b.x_val[2], a.x_val[2])


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_and_in_memory_batches_are_identical(image_folder, workers):
    lazy = ImageFolderDataset(image_folder, input_shape=(3, 8, 8), stream=True).splits(0)
    eager = ImageFolderDataset(image_folder, input_shape=(3, 8, 8), stream=False).splits(0)
    order = batches(len(eager.y_train), 5, torch.Generator().manual_seed(7))
    with BatchSource(lazy.x_train, lazy.y_train, workers=workers) as streamed, \
            BatchSource(eager.x_train, eager.y_train) as memory:
        assert streamed.streamed and not memory.streamed
        for _ in range(2):  # persistent workers serve a second epoch too
            pairs = list(zip(streamed.batches(order), memory.batches(order)))
            assert len(pairs) == len(order)
            for (x1, y1), (x2, y2) in pairs:
                assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_streamed_training_gives_the_in_memory_weights(image_folder):
    space = create_space("mobilenet")
    recipe = Recipe(epochs=2, batch_size=8, augment="crop-flip", crop_padding=1)
    results = [train(space, space.parse(ARCH), ImageFolderDataset(image_folder, input_shape=(3, 8, 8), stream=s),
                     recipe=recipe, seed=5, return_model=True, report_test=True, loader_workers=w)
               for s, w in ((False, None), (True, 2), (True, 0))]
    first = _state(results[0].model)
    for other in results[1:]:
        assert other.val_accuracy == results[0].val_accuracy and other.test_accuracy == results[0].test_accuracy
        assert all(torch.equal(first[k], v) for k, v in _state(other.model).items())


def test_train_plus_validation_stays_lazy(image_folder):
    data = ImageFolderDataset(image_folder, input_shape=(3, 8, 8), stream=True)
    merged = TrainPlusValidation(data).splits(0)
    plain = data.splits(0)
    assert isinstance(merged.x_train, LazyArray) and len(merged.x_val) == 0
    assert np.array_equal(materialize(merged.x_train),
                          np.concatenate([materialize(plain.x_train), materialize(plain.x_val)]))


def test_lazy_views_and_concatenation():
    from hwnas.data.lazy import _InMemory

    x = np.arange(5 * 2 * 2 * 2, dtype=np.float32).reshape(5, 2, 2, 2)
    lazy = LazyArray(_InMemory(x))
    view = take(lazy, np.array([4, 0, 2]))
    assert isinstance(view, LazyArray) and view.shape == (3, 2, 2, 2) and np.array_equal(view[:], x[[4, 0, 2]])
    assert np.array_equal(np.asarray(view), x[[4, 0, 2]])
    both = concatenate([view, LazyArray(_InMemory(x[:2] + 100))])
    assert np.array_equal(both[:], np.concatenate([x[[4, 0, 2]], x[:2] + 100]))
    assert np.array_equal(both[[4, 0]], np.stack([x[1] + 100, x[4]]))


def test_readers_pickle_for_spawned_workers(image_folder, tmp_path):
    """DataLoader workers started with spawn (macOS, Windows) receive the readers pickled."""
    import pickle

    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "x_train.npy", np.arange(6 * 4, dtype=np.uint8).reshape(6, 2, 2))
    np.save(folder / "y_train.npy", np.array([0, 1] * 3))
    cifar, _ = _cifar10(tmp_path)
    for data in (ImageFolderDataset(image_folder, input_shape=(3, 4, 4), stream=True),
                 NpyFolderDataset(folder, stream=True), CifarDataset(cifar, stream=True)):
        x = data.splits(0).x_train
        x[:2]  # opened once here: the open files must not travel
        again = pickle.loads(pickle.dumps(x))
        assert np.array_equal(again[:], x[:])


def test_an_unreadable_image_in_a_worker_is_one_line(tmp_path):
    root = _images(tmp_path / "broken", per_class=6)
    (root / "class1" / "003.png").write_bytes(b"not a png")
    data = ImageFolderDataset(root, input_shape=(3, 8, 8), stream=True)
    space = create_space("mobilenet")
    with pytest.raises(DataError) as err:
        train(space, space.parse(ARCH), data, recipe=Recipe(epochs=1, batch_size=4), loader_workers=2)
    assert str(err.value).endswith("003.png: cannot read image: cannot identify image file "
                                   f"'{root / 'class1' / '003.png'}'") and "\n" not in str(err.value)


# -- train/ val/ [test/] trees -------------------------------------------------------------------------------
def test_a_train_val_tree_keeps_its_split(tmp_path):
    root = tmp_path / "tree"
    _images(root / "train", per_class=10)
    _images(root / "val", per_class=3, seed=1)
    data = resolve_dataset(str(root), input_shape=(3, 8, 8))
    assert isinstance(data, ImageFolderDataset) and data.tree and data.class_names == ["class0", "class1", "class2"]
    s = data.splits(0)
    assert len(s.y_val) == 9 and len(s.y_train) + len(s.y_test) == 30 and len(s.y_test) == 3  # 0.1 for test
    val_images = ImageFolderDataset(root / "val", input_shape=(3, 8, 8), val_fraction=0,
                                    test_fraction=0).splits(0).x_train
    assert sorted(map(bytes, s.x_val.reshape(9, -1))) == sorted(map(bytes, val_images.reshape(9, -1)))
    assert data.key.startswith("tree:tree@")
    _images(root / "test", per_class=2, seed=2)
    with_test = ImageFolderDataset(root, input_shape=(3, 8, 8))
    assert with_test.splits(0).sizes() == (30, 9, 6)
    with pytest.raises(DataError, match="test_fraction does not apply"):
        ImageFolderDataset(root, test_fraction=0.2)
    with pytest.raises(DataError, match="val_fraction does not apply"):
        ImageFolderDataset(root, val_fraction=0.2)
    (root / "val" / "class9").mkdir()
    with pytest.raises(DataError, match="class 'class9' is not a class of"):
        ImageFolderDataset(root)


# -- memory-mapped .npy folders ------------------------------------------------------------------------------
def test_an_npy_folder_is_memory_mapped_and_matches_the_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)  # NHWC pixels
    y = np.repeat(np.arange(4), 10)
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "x_train.npy", x)
    np.save(folder / "y_train.npy", y)
    np.savez(tmp_path / "arrays.npz", x_train=x, y_train=y)
    streamed = resolve_dataset(str(folder), stream="true")
    assert isinstance(streamed, NpyFolderDataset) and streamed.stream and streamed.input_shape == (3, 6, 6)
    small = NpyFolderDataset(folder)
    assert not small.stream and streamed.key.startswith("npy:arrays@")
    reference = NpzDataset(tmp_path / "arrays.npz").splits(0)
    for data in (streamed, small):
        s = data.splits(0)
        assert isinstance(s.x_train, LazyArray) == data.stream
        for name in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
            assert np.array_equal(np.asarray(getattr(s, name)), getattr(reference, name)), name
    space = create_space("mobilenet")
    runs = [train(space, space.parse(ARCH), d, recipe=Recipe(epochs=1, batch_size=8), seed=2, loader_workers=0)
            for d in (streamed, small)]
    assert runs[0].val_accuracy == runs[1].val_accuracy and runs[0].train_loss == runs[1].train_loss


def test_npy_folder_errors_name_the_file(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    np.save(folder / "x_train.npy", np.zeros((4, 2, 2), dtype=np.float32))
    with pytest.raises(DataError, match="missing array 'y_train'"):
        NpyFolderDataset(folder)
    np.save(folder / "y_train.npy", np.array([0, 1, 0, 1]))
    (folder / "x_val.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="x_val.npy: not a readable .npy array"):
        NpyFolderDataset(folder)
    (folder / "x_val.npy").unlink()
    nan = np.zeros((8, 2, 2), dtype=np.float32)
    nan[3] = np.nan
    np.save(folder / "x_train.npy", nan)
    np.save(folder / "y_train.npy", np.arange(8) % 2)
    lazy = NpyFolderDataset(folder, stream=True)
    with pytest.raises(DataError, match="x_train.npy: holds NaN"):
        lazy.splits(0).x_train[:]
    with pytest.raises(DataError, match="stream='maybe' is not auto, true or false"):
        NpyFolderDataset(folder, stream="maybe")


# -- CIFAR binary files --------------------------------------------------------------------------------------
def _cifar10(root, per_batch=12, test=10):  # the official layout of cifar-10-binary.tar.gz
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    records = {}
    for name, n in [*((f"data_batch_{i}.bin", per_batch) for i in range(1, 6)), ("test_batch.bin", test)]:
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())
        records[name] = (labels, pixels)
    (folder / "batches.meta.txt").write_text("\n".join(f"name{i}" for i in range(10)) + "\n\n")
    return folder, records


def test_cifar10_binary_files_load_with_their_labels(tmp_path):
    folder, records = _cifar10(tmp_path)
    data = resolve_dataset(f"cifar10:{tmp_path}")  # the folder holding cifar-10-batches-bin works too
    assert isinstance(data, CifarDataset) and data.path == folder and data.input_shape == (3, 32, 32)
    assert data.class_names == [f"name{i}" for i in range(10)] and data.key.startswith("cifar10@")
    s = data.splits(0)
    train_labels = np.concatenate([records[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
    train_pixels = np.concatenate([records[f"data_batch_{i}.bin"][1] for i in range(1, 6)])
    assert len(s.y_train) + len(s.y_val) == 60 and len(s.y_test) == 10
    assert np.array_equal(s.y_test, records["test_batch.bin"][0])
    # every training+validation image is its record's pixels (R, G, B planes) with its record's label
    x = np.concatenate([s.x_train, s.x_val])
    y = np.concatenate([s.y_train, s.y_val])
    expected = (train_pixels.reshape(-1, 3, 32, 32).astype(np.float32) / 255 - 0.5) / 0.5
    for image, label in zip(x[:8], y[:8]):
        match = np.flatnonzero([np.array_equal(image, e) for e in expected])
        assert len(match) == 1 and train_labels[match[0]] == label
    streamed = CifarDataset(folder, stream=True).splits(0)
    assert isinstance(streamed.x_train, LazyArray) and np.array_equal(streamed.x_train[:], s.x_train)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    coarse, fine = np.array([3, 19, 0, 7] * 5, np.uint8), np.array([55, 99, 0, 12] * 5, np.uint8)
    pixels = np.zeros((20, 3072), np.uint8)
    for name in ("train.bin", "test.bin"):
        (folder / name).write_bytes(np.concatenate([coarse[:, None], fine[:, None], pixels], axis=1).tobytes())
    (folder / "fine_label_names.txt").write_text("\n".join(f"f{i}" for i in range(100)))
    (folder / "coarse_label_names.txt").write_text("\n".join(f"c{i}" for i in range(20)))
    assert np.array_equal(resolve_dataset(f"cifar100:{folder}").splits(0).y_test, fine)
    coarse_data = resolve_dataset(f"cifar100:{folder}", labels="coarse")
    assert coarse_data.num_classes == 20 and np.array_equal(coarse_data.splits(0).y_test, coarse)
    assert coarse_data.key.endswith("[labels=coarse]")


def test_malformed_cifar_files_are_one_line(tmp_path, cli):
    folder, _ = _cifar10(tmp_path)
    with (folder / "data_batch_3.bin").open("ab") as handle:
        handle.write(b"\0" * 10)
    with pytest.raises(DataError, match=r"data_batch_3.bin: 36886 bytes is not a whole number of 3073-byte"):
        resolve_dataset(f"cifar10:{folder}")
    (folder / "data_batch_3.bin").unlink()
    result = cli("datasets", f"cifar10:{folder}")
    assert result.exit_code == 1 and "no data_batch_3.bin: expected the cifar10 binary version" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(DataError, match="no such folder"):
        resolve_dataset(f"cifar10:{tmp_path / 'nothing'}")
