"""The finals (issue 30): the best trained architectures trained again with other seeds, the answer chosen by
the mean; resumable exactly; off where a repeat gives the same number."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from hwnas.search import finals
from hwnas.search.state import SearchSettings
from test_search_loop import FakeAccuracy, FakeLatency, make_loop, true_accuracy


class NoisyAccuracy(FakeAccuracy):
    """Training noise of 3 points: a fixed draw per (architecture, seed); ``replica(k)`` is seed k."""

    def __init__(self, crash_after: int | None = None, seed: int = 0, calls=None):
        super().__init__(crash_after)
        self.seed = seed
        if calls is not None:
            self.calls = calls  # shared by the replicas: one count of trainings

    def value(self, string: str) -> float:
        draw = np.random.default_rng([self.seed, sum(map(ord, string))])
        return true_accuracy(string) + 0.03 * float(draw.standard_normal())

    def evaluate(self, arch):
        if self.crash_after is not None and sum(self.calls.values()) >= self.crash_after:
            raise KeyboardInterrupt
        self.calls[(arch.string, self.seed)] += 1
        return {"accuracy": self.value(arch.string)}

    def known(self):
        return [(s, self.value(s)) for s, seed in self.calls if seed == self.seed]

    def replica(self, index: int):
        return NoisyAccuracy(self.crash_after, seed=self.seed + index, calls=self.calls)


def test_plan_takes_at_most_a_quarter_of_the_budget_and_nothing_from_a_table():
    assert finals.plan(SearchSettings(budget_ms=1, max_trainings=100), repeatable=True) == (3, 2)
    assert finals.plan(SearchSettings(budget_ms=1, max_trainings=12), repeatable=True) == (3, 1)
    assert finals.plan(SearchSettings(budget_ms=1, max_trainings=100), repeatable=False) == (0, 0)
    assert finals.plan(SearchSettings(budget_ms=1, max_trainings=11), repeatable=True) == (0, 0)  # all search
    assert finals.plan(SearchSettings(budget_ms=1, max_trainings=4, final_seeds=1), repeatable=True) == (1, 1)
    assert finals.plan(SearchSettings(budget_ms=1, max_trainings=100, final_seeds=0), repeatable=True) == (0, 0)
    assert finals.plan(SearchSettings(budget_ms=1, max_trainings=100, final_seeds=5, finalists=4),
                       repeatable=True) == (4, 5)


def test_finalists_are_retrained_and_the_answer_is_the_best_mean(tmp_path):
    accuracy = NoisyAccuracy()
    loop = make_loop(tmp_path / "run", accuracy, FakeLatency(), max_trainings=24)
    result = loop.run()
    assert result["trainings_used"] == 24 and len(loop.state.verified) == 18 and len(loop.state.finals) == 6
    assert max(accuracy.calls.values()) == 1  # every (architecture, seed) trained once
    stats = result["finalists"]
    assert len(stats) == 3 and all(f["seeds"] == 3 for f in stats)
    by_arch = {v.arch: v for v in loop.state.verified}
    feasible = sorted((v for v in loop.state.verified if v.latency_ms <= 0.7), key=lambda v: -v.accuracy)
    assert {f["arch"] for f in stats} == {v.arch for v in feasible[:3]}  # the three best single trainings
    for f in stats:
        values = [by_arch[f["arch"]].accuracy] + [NoisyAccuracy(seed=k).value(f["arch"]) for k in (1, 2)]
        assert f["accuracies"] == pytest.approx(values)
        assert f["mean"] == pytest.approx(np.mean(values)) and f["std"] == pytest.approx(np.std(values, ddof=1))
    assert [f["mean"] for f in stats] == sorted((f["mean"] for f in stats), reverse=True)
    assert result["best"]["arch"] == stats[0]["arch"] and result["best"]["mean_accuracy"] == stats[0]["mean"]
    assert "finalists: 3 trained 2 more times each" in result["stop_reason"]


def test_a_kill_during_the_finals_resumes_exactly(tmp_path):
    reference = make_loop(tmp_path / "ref", NoisyAccuracy(), FakeLatency(), max_trainings=24).run()
    crashing = NoisyAccuracy(crash_after=18 + 2)  # two of the six finals trainings done
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path / "run", crashing, FakeLatency(), max_trainings=24).run()
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert len(state["verified"]) == 18 and len(state["finals"]) == 2 and state["finalists"]
    resumed = NoisyAccuracy(calls=collections.Counter(crashing.calls))
    before = dict(resumed.calls)
    result = make_loop(tmp_path / "run", resumed, FakeLatency(), max_trainings=24, resume=True).run()
    assert all(resumed.calls[k] == n for k, n in before.items()) and max(resumed.calls.values()) == 1
    assert sum(resumed.calls.values()) == 24  # the four missing, nothing twice
    assert result["finalists"] == reference["finalists"]
    assert result["best"]["arch"] == reference["best"]["arch"]


def test_no_finals_where_repeats_give_the_same_number(tmp_path, caplog):
    loop = make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), max_trainings=14, final_seeds=2)
    result = loop.run()
    assert result["trainings_used"] == 14 and result["finalists"] == [] and not loop.state.finals
    assert "--final-seeds 2 ignored" in caplog.text


def test_the_finalists_are_printed_and_reported_with_their_spread(tmp_path):
    from hwnas.cli.search_cmds import finalist_lines
    from hwnas.search.report import load_run, render

    result = make_loop(tmp_path / "run", NoisyAccuracy(), FakeLatency(), max_trainings=24).run()
    lines = finalist_lines(result)
    assert len(lines) == 4 and "over 3 seeds" in lines[0]
    best = result["finalists"][0]
    assert lines[1].strip().startswith(f"* {best['mean']:.4f} +- {best['std']:.4f}") and best["arch"] in lines[1]
    page = render([load_run(tmp_path / "run")])
    assert f"{best['mean']:.4f} ± {best['std']:.4f} over 3 seeds" in page
    from hwnas.api import SearchResult

    typed = SearchResult.from_document(tmp_path / "run", json.loads((tmp_path / "run" / "result.json").read_text()))
    assert typed == result  # result.json reads back as the loop's own result
    assert [f.arch for f in typed.finalists] == [f["arch"] for f in result["finalists"]]
    assert typed.finalists[0].accuracies == best["accuracies"] and typed.best.arch == best["arch"]
    # every finalist's trial carries its mean and spread over the seeds; the others one training
    finalists = {f.arch: f for f in typed.finalists}
    for trial in typed.trials:
        if trial.arch in finalists:
            assert (trial.mean_accuracy, trial.accuracy_std, trial.seeds) == (
                finalists[trial.arch].mean, finalists[trial.arch].std, 3)
        else:
            assert trial.mean_accuracy is None and trial.seeds == 1
    assert typed.best.selected_accuracy == best["mean"]


def test_a_kill_during_the_finals_of_an_exhausted_search_resumes_without_searching_on(tmp_path):
    """The early stop is saved with the round that found it: a resume goes straight back to the finals."""
    from test_search_loop import FakeLatency as Base
    from hwnas.spaces import create_space

    space = create_space("nb201")
    fast = {a.string for a in space.sample_distinct(25, np.random.default_rng(3))}

    class Table(Base):
        def measure(self, arch):
            return {"latency_ms": 0.1 if arch.string in fast else 5.0, "measured": True}

        def known(self):
            return [(a.string, 0.1 if a.string in fast else 5.0) for a in space.enumerate()]

    options = dict(max_trainings=60, final_seeds=1, finalists=2)
    reference = make_loop(tmp_path / "ref", NoisyAccuracy(), Table(), **options).run()
    assert reference["stop_reason"].startswith("feasible space exhausted") and len(reference["finalists"]) == 2
    trained = reference["trainings_used"] - 2
    crashing = NoisyAccuracy(crash_after=trained + 1)
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path / "run", crashing, Table(), **options).run()
    rows = (tmp_path / "run" / "history.csv").read_text()
    resumed = NoisyAccuracy(calls=collections.Counter(crashing.calls))
    result = make_loop(tmp_path / "run", resumed, Table(), resume=True, **options).run()
    assert (tmp_path / "run" / "history.csv").read_text() == rows  # no round after the stop
    assert result["finalists"] == reference["finalists"] and result["stop_reason"] == reference["stop_reason"]


def test_a_finished_run_resumed_with_a_larger_budget_searches_on_and_holds_new_finals(tmp_path):
    make_loop(tmp_path / "run", NoisyAccuracy(), FakeLatency(), max_trainings=24).run()
    result = make_loop(tmp_path / "run", NoisyAccuracy(), FakeLatency(), max_trainings=32, resume=True).run()
    assert result["trainings_used"] <= 32 and len(result["finalists"]) == 3
    assert all(f["seeds"] == 3 for f in result["finalists"])


def test_runs_made_before_the_finals_keep_ending_without_them():
    from hwnas.search.config import RunConfig

    old = {"space": "nb201", "dataset": "synthetic", "budget_ms": 1.0, "input_shape": [1, 8, 8], "num_classes": 10}
    assert RunConfig.from_json(old).final_seeds == 0
    assert RunConfig.from_json({**old, "final_seeds": None}).final_seeds is None


def test_a_predictor_of_ones_own_that_satisfies_the_protocol_drives_the_loop(tmp_path):
    """A new predictor algorithm is one class satisfying :class:`Predictor` (here: the mean accuracy of the
    trained architectures sharing each decision value, with their spread)."""
    from hwnas.predictors import AccuracyPredictor, LatencyPredictor, Predictor
    from hwnas.search.loop import SearchLoop
    from test_search_loop import SearchSettings, RunDir, RunConfig, create_controller, create_reward, create_space

    class PerChoice:
        kind = "accuracy"

        def __init__(self):
            self.space, self.fits = create_space("nb201"), 0

        @property
        def task(self):
            return ("nb201",)

        def shared_featurizer(self):
            return AccuracyPredictor(space="nb201").shared_featurizer()

        def fit(self, archs, y, *, featurizer=None):
            x = np.stack([self.space.encode(self.space.parse(a)) for a in archs])
            self.mean_ = (x.T @ np.asarray(y)) / np.maximum(x.sum(0), 1)
            self.fits += 1
            return self

        def predict_dist(self, archs):
            x = np.stack([self.space.encode(self.space.parse(getattr(a, "string", a))) for a in archs])
            values = x * self.mean_
            return values.sum(1) / x.sum(1), values.std(1)

        def predict(self, archs):
            return self.predict_dist(archs)[0]

        def save(self, directory, *, scores=None, source=None):
            return directory

        @classmethod
        def load(cls, directory, *, space=None, input_shape=None):
            return cls()

    made = []
    assert isinstance(PerChoice(), Predictor)
    config = RunConfig(budget_ms=0.7, space="nb201", input_shape=(1, 8, 8), num_classes=10)
    loop = SearchLoop(space=create_space("nb201"), controller=create_controller("random", create_space("nb201")),
                      reward=create_reward("hard"), accuracy_source=FakeAccuracy(), latency_source=FakeLatency(),
                      settings=SearchSettings(budget_ms=0.7, max_trainings=12, initial_trainings=6,
                                              archs_per_round=200),
                      run_dir=RunDir.create(tmp_path / "run", config),
                      make_accuracy_predictor=lambda: made.append(PerChoice()) or made[-1],
                      make_latency_predictor=lambda: LatencyPredictor(space="nb201", ensemble_size=1, n_estimators=50))
    result = loop.run()
    assert result["trainings_used"] == 12 and made and all(p.fits == 1 for p in made)
