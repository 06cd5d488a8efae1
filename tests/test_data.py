"""Data sets: digits, the registry, resolve_dataset, the split helper."""

import numpy as np
import pytest

from hwnas.data import DATASETS, DataError, create_dataset, resolve_dataset
from hwnas.data.base import stratified_split


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_registered_dataset_keeps_its_contract(name):
    ds = create_dataset(name)
    splits = ds.splits(0)
    assert len(ds.input_shape) == 3 and ds.num_classes == len(ds.class_names) >= 2
    pairs = ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test))
    for x, y in pairs:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == ds.input_shape and len(x) == len(y) > 0
        assert y.min() >= 0 and y.max() < ds.num_classes
    assert ds.key


def test_digits_splits_are_fixed_for_a_seed_disjoint_and_stratified():
    ds = create_dataset("digits")
    a, b, c = ds.splits(0), create_dataset("digits").splits(0), ds.splits(1)
    assert np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_val, c.x_val)
    assert sum(a.sizes()) == 1797
    assert a.sizes() == (540, 898, 359)  # the documented 30/50/20 split
    counts = np.bincount(a.y_val, minlength=10)
    assert counts.min() >= 85 and counts.max() <= 95  # about half of each ~180-image class


def test_digits_noise_is_an_option_and_part_of_the_key():
    clean, noisy = create_dataset("digits", noise=0.0), create_dataset("digits")
    assert clean.key == "digits[noise=0]" and noisy.key == "digits"
    assert clean.splits(0).x_train.min() == -1.0
    assert not np.array_equal(clean.splits(0).x_train, noisy.splits(0).x_train)
    with pytest.raises(DataError, match="noise"):
        create_dataset("digits", noise=-1)
    with pytest.raises(DataError, match="below 1"):
        create_dataset("digits", val_fraction=0.6, test_fraction=0.4)


def test_stratified_split_keeps_every_class_in_train_and_is_seeded():
    y = np.repeat(np.arange(3), [1, 2, 10])
    train, val, test = stratified_split(y, val_fraction=0.4, test_fraction=0.4, seed=3)
    assert set(y[train]) == {0, 1, 2}
    assert len(np.intersect1d(train, val)) == len(np.intersect1d(val, test)) == 0
    assert len(train) + len(val) + len(test) == len(y)
    again = stratified_split(y, val_fraction=0.4, test_fraction=0.4, seed=3)
    assert all(np.array_equal(p, q) for p, q in zip((train, val, test), again))


def test_resolve_dataset_names_and_errors(tmp_path):
    assert resolve_dataset("digits").key == "digits"
    assert resolve_dataset("digits", noise=0).key == "digits[noise=0]"
    with pytest.raises(DataError, match="unknown data set 'nope'.*digits"):
        resolve_dataset("nope")
    with pytest.raises(DataError, match="input shape applies only to image folders"):
        resolve_dataset("digits", input_shape=(1, 8, 8))
    with pytest.raises(DataError, match="does not take these options"):
        resolve_dataset("digits", colour=True)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match="notes.txt: not a data set"):
        resolve_dataset(str(text))
    with pytest.raises(DataError, match="missing.npz: no such file"):
        resolve_dataset(str(tmp_path / "missing.npz"))
