"""The evaluation store: keys, reuse, queries, bad files, concurrent writers, killed processes."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.data import create_dataset
from hwnas.spaces import create_space
from hwnas.training import EvalStore, Recipe, StoreError, TrainResult, make_key, space_key
from training_helpers import FAST, CountingEvaluator

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture(scope="module")
def space():
    return create_space("mobilenet")


@pytest.fixture(scope="module")
def digits():
    return create_dataset("digits")


def _archs(space, n, seed=0):
    return space.sample_distinct(n, np.random.default_rng(seed))


def test_second_request_trains_nothing(tmp_path, space, digits):
    store = EvalStore(tmp_path / "e.sqlite")
    counter = CountingEvaluator()
    arch = _archs(space, 1)[0]
    first = store.evaluate(space, arch, digits, recipe=FAST, seed=0, trainer=counter)
    again = store.evaluate(space, arch.string, digits, recipe=FAST, seed=0, trainer=counter)
    assert counter.evaluations == 1 and not first.reused and again.reused
    assert again == first and again.val_accuracy == first.val_accuracy
    # Every part of the key matters: another seed, fidelity, recipe or data set is a new evaluation.
    store.evaluate(space, arch, digits, recipe=FAST, seed=1, trainer=counter)
    store.evaluate(space, arch, digits, recipe=FAST.with_fidelity(epochs=2), seed=0, trainer=counter)
    store.evaluate(space, arch, digits, recipe=Recipe(epochs=1, data_fraction=0.25, lr=0.5), seed=0,
                   trainer=counter)
    store.evaluate(space, arch, create_dataset("digits", noise=0), recipe=FAST, seed=0, trainer=counter)
    assert counter.evaluations == 5 and len(store) == 5
    # A fresh store object on the same file (another session) reuses too.
    assert EvalStore(tmp_path / "e.sqlite").evaluate(space, arch, digits, recipe=FAST, seed=0,
                                                      trainer=counter).reused
    assert counter.evaluations == 5


def test_records_round_trip_with_metadata(tmp_path, space, digits):
    store = EvalStore(tmp_path / "e.sqlite")
    arch = _archs(space, 1)[0]
    record = store.evaluate(space, arch, digits, recipe=FAST, seed=2, trainer=CountingEvaluator())
    stored = store.get(make_key(space, arch, digits, recipe=FAST, seed=2))
    assert stored == record
    assert stored.arch_id == arch.id and stored.source == "train" and stored.recipe == FAST.to_dict()
    assert stored.fidelity == "1ep@0.25" and stored.hwnas_version and stored.created_at <= time.time()
    assert json.loads(json.dumps(stored.to_dict()))["arch"] == arch.string


def test_a_plain_function_is_a_trainer_and_nan_loss_is_kept_as_null(tmp_path, space, digits):
    calls = []

    def fake_train(space, arch, dataset, *, recipe, seed, threads=None, device="cpu"):
        calls.append(arch.string)
        return TrainResult(val_accuracy=0.5, val_loss=float("nan"), params=None, wall_time_s=0.0,
                           epochs=recipe.epochs, data_fraction=recipe.data_fraction)

    store = EvalStore(tmp_path / "e.sqlite")
    record = store.evaluate(space, _archs(space, 1)[0], digits, recipe=FAST, trainer=fake_train)
    assert len(calls) == 1 and record.val_loss is None and record.params is None


def test_query_filters_and_sorts(tmp_path, space, digits):
    store = EvalStore(tmp_path / "e.sqlite")
    counter = CountingEvaluator()
    archs = _archs(space, 6)
    for i, arch in enumerate(archs):
        store.evaluate(space, arch, digits, recipe=FAST, seed=i % 2, trainer=counter)
    nb = create_space("nb201", channels=8)
    store.evaluate(nb, nb.sample(np.random.default_rng(0)), digits, recipe=FAST, trainer=counter)
    assert len(store.query()) == 7
    assert len(store.query(space="mobilenet")) == 6 and len(store.query(space="nb201")) == 1
    assert store.query(space="nb201")[0].space == "nb201[channels=8]" == space_key(nb)
    assert len(store.query(seed=1)) == 3 and store.query(arch=archs[0].string)[0].arch == archs[0].string
    best = store.query(order_by="val_accuracy", descending=True)
    assert [r.val_accuracy for r in best] == sorted((r.val_accuracy for r in best), reverse=True)
    assert len(store.query(limit=2)) == 2 and store.query(recipe_hash=FAST.hash()[:5])
    assert not store.query(recipe_hash="zzz") and not store.query(epochs=9)
    threshold = best[2].val_accuracy
    assert all(r.val_accuracy >= threshold for r in store.query(min_accuracy=threshold))
    with pytest.raises(StoreError, match="cannot sort by 'nope'"):
        store.query(order_by="nope")


def test_put_refuses_a_duplicate_and_an_invalid_record(tmp_path, space, digits):
    store = EvalStore(tmp_path / "e.sqlite")
    record = store.evaluate(space, _archs(space, 1)[0], digits, recipe=FAST, trainer=CountingEvaluator())
    from dataclasses import replace

    assert store.put(replace(record, val_accuracy=0.0)) is False
    assert store.get(record.key).val_accuracy == record.val_accuracy  # first write wins
    with pytest.raises(StoreError, match="val_accuracy"):
        store.put(replace(record, seed=99, val_accuracy=float("nan")))


def test_bad_store_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.sqlite: not a usable evaluation store"):
        EvalStore(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(StoreError, match="not an hwnas evaluation store"):
        EvalStore(other)
    newer = tmp_path / "newer.sqlite"
    EvalStore(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer hwnas"):
        EvalStore(newer)
    with pytest.raises(StoreError, match="does not exist"):
        EvalStore(tmp_path / "no" / "e.sqlite")
    with pytest.raises(StoreError, match="is a folder"):
        EvalStore(tmp_path)


def test_store_uses_wal(tmp_path):
    EvalStore(tmp_path / "e.sqlite").close()
    with sqlite3.connect(tmp_path / "e.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- other processes -----------------------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import numpy as np
    from hwnas.data import create_dataset
    from hwnas.spaces import create_space
    from hwnas.training import EvalStore, Recipe, EvalRecord, make_key
    from training_helpers import CountingEvaluator

    mode, store_path, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    space, digits = create_space("mobilenet"), create_dataset("digits")
    recipe = Recipe(epochs=1, data_fraction=0.25)
    rng = np.random.default_rng(0)
    archs = space.sample_distinct(60, rng)
    store = EvalStore(store_path)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    if mode.startswith("write"):  # two writers, overlapping halves
        mine = archs[:40] if mode == "write-a" else archs[20:]
        counter = CountingEvaluator(sleep=0.002)
        for arch in mine:
            store.evaluate(space, arch, digits, recipe=recipe, seed=0, trainer=counter)
        print("trained", counter.evaluations, flush=True)
    elif mode == "hammer":  # big records in a tight loop, until killed
        for i in range(100000):
            key = make_key(space, archs[i % 60], digits, recipe=recipe, seed=i)
            result = CountingEvaluator().evaluate(space, archs[i % 60], digits, recipe=recipe, seed=i)
            payload = {{"blob": "x" * 200000, "i": i}}
            store.put(EvalRecord.from_result(key, result, protocol=payload))
            print("committed", i, flush=True)
    elif mode == "train-forever":
        print("training", flush=True)
        store.evaluate(space, archs[0], digits, recipe=recipe, seed=0, trainer=CountingEvaluator(sleep=600))
""")


def _spawn(tmp_path, mode, store, go):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), mode, str(store), str(go)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def test_two_processes_write_at_once(tmp_path):
    store_path, go = tmp_path / "e.sqlite", tmp_path / "go"
    procs = [_spawn(tmp_path, mode, store_path, go) for mode in ("write-a", "write-b")]
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    trained = [int(out.split()[-1]) for out, _ in outputs]
    # 60 distinct keys; the 20 shared ones may be trained by both, but each is stored once.
    assert 60 <= sum(trained) <= 80
    store = EvalStore(store_path)
    records = store.query()
    assert len(records) == 60 == len({r.arch for r in records})
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_killed_writer_leaves_no_half_record(tmp_path):
    store_path, go = tmp_path / "e.sqlite", tmp_path / "go"
    proc = _spawn(tmp_path, "hammer", store_path, go)
    go.touch()
    last = -1
    while last < 5:  # let it commit a few big records, then kill it in the middle of the next ones
        last = int(proc.stdout.readline().split()[1])
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    records = EvalStore(store_path).query()
    assert len(records) >= last + 1
    seeds = sorted(r.seed for r in records)
    assert seeds == list(range(len(seeds)))  # committed in order, nothing missing, nothing partial
    assert all(len(r.recipe["blob"]) == 200000 and r.recipe["i"] == r.seed for r in records)


def test_process_killed_mid_training_stores_nothing(tmp_path, space, digits):
    store_path, go = tmp_path / "e.sqlite", tmp_path / "go"
    proc = _spawn(tmp_path, "train-forever", store_path, go)
    go.touch()
    assert proc.stdout.readline().strip() == "training"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = EvalStore(store_path)
    assert len(store) == 0
    counter = CountingEvaluator()
    recipe = Recipe(epochs=1, data_fraction=0.25)
    rng = np.random.default_rng(0)
    record = store.evaluate(space, space.sample(rng), digits, recipe=recipe, seed=0, trainer=counter)
    assert counter.evaluations == 1 and not record.reused and len(store) == 1
