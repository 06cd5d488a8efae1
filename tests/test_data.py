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


def _small_cluttered(**options):
    return create_dataset("cluttered-digits", train_size=60, val_size=30, test_size=30, **options)


def test_cluttered_digits_is_deterministic_for_a_seed_with_documented_shapes():
    ds = _small_cluttered()
    a, b, other = ds.splits(0), _small_cluttered().splits(0), ds.splits(1)
    assert ds.input_shape == (1, 32, 32) and ds.num_classes == 10 and a.sizes() == (60, 30, 30)
    assert ds.split_sizes(0) == a.sizes()
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.x_train, other.x_train)
    assert a.x_train.min() == -1.0 and a.x_train.max() <= 1.0 and a.x_train.max() > 0.5
    # Each image is mostly background with a digit and clutter on it.
    ink = (a.x_train > -0.9).mean(axis=(1, 2, 3))
    assert 0.03 < ink.mean() < 0.6
    assert ds.key == "cluttered-digits[test_size=30,train_size=60,val_size=30]"
    assert create_dataset("cluttered-digits").key == "cluttered-digits"


def test_cluttered_digits_splits_use_disjoint_handwritten_digits():
    """With no clutter and scale 1 each image holds one source digit unchanged: the validation and test
    images' digits never come from the training split's source digits."""
    from sklearn.datasets import load_digits

    from hwnas.data.cluttered import SOURCE_TEST_FRACTION, SOURCE_VAL_FRACTION

    ds = create_dataset("cluttered-digits", train_size=300, val_size=100, test_size=100, clutter=0,
                        min_scale=1.0, max_scale=1.0)
    splits = ds.splits(3)
    digits = load_digits()
    parts = stratified_split(digits.target, val_fraction=SOURCE_VAL_FRACTION, test_fraction=SOURCE_TEST_FRACTION,
                             seed=3)

    def signature(values):
        values = np.asarray(values, dtype=np.float64).ravel()
        return tuple(np.round(np.sort(values[values > 1e-6]), 4))

    sources = [{signature(digits.images[i] / 16.0) for i in part} for part in parts]
    for x, own, others in ((splits.x_val, sources[1], sources[0]), (splits.x_test, sources[2], sources[0])):
        found = [signature((image + 1.0) / 2.0) for image in x]
        assert all(s in own for s in found)
        assert not any(s in others and s not in own for s in found)


@pytest.mark.parametrize("options, message", [
    ({"train_size": 0}, "train_size"), ({"clutter": -1}, "clutter"), ({"canvas": "big"}, "canvas"),
    ({"max_scale": 5.0}, "hold a digit"), ({"min_scale": 3.0, "max_scale": 2.0}, "min_scale"),
    ({"fragment": 9}, "fragment"),
])
def test_cluttered_digits_rejects_bad_options(options, message):
    with pytest.raises(DataError, match=message):
        create_dataset("cluttered-digits", **options)
