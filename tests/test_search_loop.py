"""The search loop on synthetic sources: budget, verification, resume after a crash, determinism."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from hwnas.predictors import AccuracyPredictor, LatencyPredictor
from hwnas.search.controllers import create_controller
from hwnas.search.loop import SearchLoop, SearchSettings
from hwnas.search.planning import Planner
from hwnas.search.verification import Verifier
from hwnas.search.state import Verified
from hwnas.search.reward import create_reward
from hwnas.search.config import RunConfig
from hwnas.search.rundir import RunDir, RunDirError
from hwnas.spaces import create_space


def untimed(record: dict | None) -> dict | None:
    """A verified record without its wall-clock stamp (which a resumed run cannot reproduce)."""
    return None if record is None else {k: v for k, v in record.items() if k != "elapsed_s"}


def true_accuracy(s: str) -> float:
    return 0.5 + 0.08 * s.count("nor_conv_3x3") + 0.03 * s.count("nor_conv_1x1") - 0.05 * s.count("none")


def true_latency(s: str) -> float:
    return 0.2 + 0.12 * s.count("nor_conv_3x3") + 0.04 * s.count("nor_conv_1x1") + 0.01 * s.count("avg_pool")


class FakeAccuracy:
    def __init__(self, crash_after: int | None = None):
        self.calls = collections.Counter()
        self.crash_after = crash_after

    def evaluate(self, arch):
        if self.crash_after is not None and sum(self.calls.values()) >= self.crash_after:
            raise KeyboardInterrupt
        self.calls[arch.string] += 1
        return {"accuracy": true_accuracy(arch.string)}

    def known(self):
        return [(s, true_accuracy(s)) for s in self.calls]


class FakeLatency:
    def __init__(self):
        self.calls = collections.Counter()

    def measure(self, arch):
        self.calls[arch.string] += 1
        return {"latency_ms": true_latency(arch.string), "measured": True}

    def known(self):
        space = create_space("nb201")
        rng = np.random.default_rng(0)
        return [(a.string, true_latency(a.string)) for a in (space.sample(rng) for _ in range(60))]


class CollapsedController:
    """A controller whose policy has collapsed: it proposes one architecture over and over."""

    def __init__(self, string):
        self.string = string

    def learn(self, objective, n_archs):
        space = create_space("nb201")
        objective([space.parse(self.string)] * n_archs)

    def save(self, path):
        open(path, "wb").close()

    def load(self, path):
        pass


class FakeEstimates:
    """A supernet stand-in: the true accuracy squashed onto another scale plus a fixed per-architecture error;
    raises KeyboardInterrupt at its ``crash_at``-th call."""

    def __init__(self, crash_at: int | None = None):
        self.calls = collections.Counter()
        self.order: list[str] = []
        self.crash_at = crash_at

    def estimate(self, arch):
        if self.crash_at is not None and sum(self.calls.values()) + 1 == self.crash_at:
            raise KeyboardInterrupt
        self.calls[arch.string] += 1
        self.order.append(arch.string)
        noise = (int(arch.id[:4], 16) / 0xFFFF - 0.5) * 0.02
        return 0.1 + 0.5 * true_accuracy(arch.string) + noise


def make_loop(path, accuracy, latency, *, controller="evolution", max_trainings=14, resume=False,
              local_search_steps=3, estimator=None, **extra):
    space = create_space("nb201")
    config = {"space": "nb201", "input_shape": [1, 8, 8], "num_classes": 10, "dataset": "synthetic",
              "device": "fake", "budget_ms": 0.7, "max_trainings": max_trainings}
    run_dir = RunDir.open(path) if resume else RunDir.create(path, RunConfig.from_json(config))
    settings = SearchSettings(budget_ms=0.7, max_trainings=max_trainings, initial_trainings=6,
                              candidates_per_round=3, explore_per_round=1, archs_per_round=400, seed=1,
                              local_search_steps=local_search_steps, initial_estimates=30, estimates_per_round=12,
                              **extra)
    if isinstance(controller, str):
        controller = create_controller(controller, space, seed=1)
    return SearchLoop(space=space, controller=controller,
                      reward=create_reward("hard"), accuracy_source=accuracy, latency_source=latency,
                      settings=settings, run_dir=run_dir,
                      make_accuracy_predictor=lambda: AccuracyPredictor(space="nb201", ensemble_size=3,
                                                                        n_estimators=100),
                      make_latency_predictor=lambda: LatencyPredictor(space="nb201", ensemble_size=1,
                                                                      n_estimators=100),
                      estimator=estimator)


def test_search_spends_its_budget_and_answers_with_a_verified_feasible_architecture(tmp_path):
    accuracy, latency = FakeAccuracy(), FakeLatency()
    result = make_loop(tmp_path / "run", accuracy, latency).run()
    assert result["trainings_used"] == 14 and sum(accuracy.calls.values()) == 14
    assert max(accuracy.calls.values()) == 1  # nothing trained twice
    best = result["best"]
    assert best["latency_ms"] <= 0.7 and best["accuracy"] == true_accuracy(best["arch"])
    assert best["latency_ms"] == true_latency(best["arch"])
    # The learner beats the initial diverse samples: later rounds find better feasible architectures.
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    initial_best = max((v["accuracy"] for v in state["verified"] if v["round"] == 0 and v["latency_ms"] <= 0.7),
                       default=0)
    assert best["accuracy"] >= initial_best
    for name in ("config.json", "history.csv", "result.json", "pareto.png", "verified.csv", "controller.ckpt"):
        assert (tmp_path / "run" / name).is_file(), name
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert history[0].startswith("round,trainings_used") and len(history) == 1 + result["rounds"]


@pytest.mark.parametrize("controller", ["ppo", "evolution"])
def test_resume_after_a_crash_loses_and_repeats_nothing_and_matches_an_uninterrupted_run(tmp_path, controller):
    make_loop(tmp_path / "ref", FakeAccuracy(), FakeLatency(), controller=controller).run()

    crashing = FakeAccuracy(crash_after=9)
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path / "run", crashing, FakeLatency(), controller=controller).run()
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert len(state["verified"]) == 9  # every finished evaluation was saved

    resumed_acc = FakeAccuracy()
    resumed_acc.calls.update(crashing.calls)  # the store remembers what finished
    before = dict(resumed_acc.calls)
    result = make_loop(tmp_path / "run", resumed_acc, FakeLatency(), controller=controller, resume=True).run()
    assert all(resumed_acc.calls[a] == n for a, n in before.items())  # nothing repeated
    assert result["trainings_used"] == 14
    ref_archs = [v["arch"] for v in json.loads((tmp_path / "ref" / "state.json").read_text())["verified"]]
    got_archs = [v["arch"] for v in json.loads((tmp_path / "run" / "state.json").read_text())["verified"]]
    assert got_archs == ref_archs


@pytest.mark.parametrize("local_search_steps", [0, 3])
def test_every_round_verifies_new_architectures_even_when_the_controller_has_collapsed(tmp_path,
                                                                                       local_search_steps):
    stuck = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    loop = make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), controller=CollapsedController(stuck),
                     local_search_steps=local_search_steps)
    loop.state.verified.append(Verified(arch=stuck, accuracy=true_accuracy(stuck), latency_ms=true_latency(stuck),
                                        round=0))
    result = loop.run()
    assert result["trainings_used"] == 14
    new_per_round = [int(line.split(",")[6]) for line in
                     (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]]
    assert new_per_round == [4, 3]  # 14 - (1 + 6 initial) = 4 + 3: no idle round
    round_one = [v for v in loop.state.verified if v.round == 1]
    assert len(round_one) == 4 and stuck not in {v.arch for v in round_one}
    assert all(v.latency_ms <= 0.7 for v in loop.state.verified)  # measured before trained


class TooSlowAfter(FakeLatency):
    """A device whose candidates all turn out over the budget once the initial trainings are done, except
    those its profile (``known``) already holds: every candidate the acquisition or the exploration picks is
    measured over the budget."""

    def __init__(self, feasible: int):
        super().__init__()
        self.feasible = feasible

    def measure(self, arch):
        self.calls[arch.string] += 1
        late = sum(self.calls.values()) > self.feasible
        return {"latency_ms": 5.0 if late else true_latency(arch.string), "measured": True}


def test_the_fallback_fills_every_round_when_the_picked_candidates_do_not_fit(tmp_path):
    """Rounds whose proposals all turn out over the budget are filled from the fallback (here the profile's
    untrained architectures within the budget): no round ends short, and the training budget is spent."""
    latency = TooSlowAfter(feasible=12)
    loop = make_loop(tmp_path / "run", FakeAccuracy(), latency, max_trainings=30)
    result = loop.run()
    assert result["trainings_used"] == 30 and result["stop_reason"] == "training budget spent (30)"
    rows = loop.run_dir.history()
    assert all(int(r["new_verified"]) == 4 for r in rows[:-1]) and int(rows[-1]["new_verified"]) > 0
    prior = dict(latency.known())
    later = [v for v in loop.state.verified if v.round > 0]
    from_prior = [v for v in later if v.arch in prior]
    assert len(from_prior) >= len(later) // 2 and all(v.latency_ms <= 0.7 for v in loop.state.verified)


def test_a_search_with_a_tiny_feasible_set_trains_all_of_it_and_says_the_space_is_exhausted(tmp_path):
    """Five equivalence classes fit the budget: the search trains all of them and stops early, saying why."""
    space = create_space("nb201")
    archs = list(space.enumerate())
    keys = {}
    for a in archs:
        keys.setdefault(space.equivalence_key(a), a.string)
    fast = set(list(keys.values())[::997][:5])  # one string of each of five classes

    def latency_of(s):
        return 0.1 if s in fast or space.equivalence_key(space.parse(s)) in {
            space.equivalence_key(space.parse(f)) for f in fast} else 5.0

    class Table(FakeLatency):
        def measure(self, arch):
            self.calls[arch.string] += 1
            return {"latency_ms": latency_of(arch.string), "measured": True}

        def known(self):
            return [(a.string, latency_of(a.string)) for a in archs]

    loop = make_loop(tmp_path / "run", FakeAccuracy(), Table(), max_trainings=20)
    result = loop.run()
    trained = {space.equivalence_key(space.parse(v.arch)) for v in loop.state.verified}
    assert trained == {space.equivalence_key(space.parse(f)) for f in fast}
    assert result["trainings_used"] == 5
    assert result["stop_reason"].startswith("feasible space exhausted: every architecture within the budget is trained (5)")


def test_a_search_that_has_verified_the_whole_space_stops_and_says_so(tmp_path):
    options = {"widths": [[8, 16]], "depths": [1], "kernels": [3, 5], "expansions": [1], "strides": [1]}
    space = create_space("mobilenet", **options)
    everything = {a.string for a in space.enumerate()}
    assert len(everything) == 8

    class Accuracy:
        def evaluate(self, arch):
            return {"accuracy": 0.5 + 0.01 * len(arch.string)}

        def known(self):
            return []

    class Latency:
        def measure(self, arch):
            return {"latency_ms": 0.01 * len(arch.string), "measured": True}

        def known(self):
            return [(s, 0.01 * len(s)) for s in sorted(everything)]

    common = dict(space="mobilenet", space_options=options, ensemble_size=1, n_estimators=20)
    loop = SearchLoop(space=space, controller=create_controller("random", space, seed=0),
                      reward=create_reward("hard"), accuracy_source=Accuracy(), latency_source=Latency(),
                      settings=SearchSettings(budget_ms=10.0, max_trainings=20, initial_trainings=3,
                                              candidates_per_round=2, archs_per_round=50),
                      run_dir=RunDir.create(tmp_path / "run", RunConfig(budget_ms=10.0, input_shape=(1, 8, 8), num_classes=10)),
                      make_accuracy_predictor=lambda: AccuracyPredictor(**common),
                      make_latency_predictor=lambda: LatencyPredictor(**common))
    result = loop.run()
    assert result["trainings_used"] == 8 and {v.arch for v in loop.state.verified} == everything
    assert result["stop_reason"].startswith("feasible space exhausted: every architecture within the budget is trained (8)")


def test_infeasible_budget_is_said_plainly(tmp_path):
    loop = make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), max_trainings=8)
    loop.settings.budget_ms = 0.01
    result = loop.run()
    assert result["feasible"] is False and result["best"] is None
    assert len(result["closest"]) == 3
    assert result["closest"][0]["latency_ms"] == min(v["latency_ms"] for v in result["closest"])


def test_run_dir_errors(tmp_path):
    make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), max_trainings=6)
    # nothing done yet (a start that failed): the folder starts afresh
    make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), max_trainings=6).run()
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir.create(tmp_path / "run", RunConfig(budget_ms=1.0, input_shape=(1, 8, 8), num_classes=10))
    with pytest.raises(RunDirError, match="does not exist"):
        RunDir.open(tmp_path / "missing")
    (tmp_path / "run" / "config.json").write_text("{oops")
    with pytest.raises(RunDirError, match="corrupt"):
        RunDir.open(tmp_path / "run")


class CrashingLatency(FakeLatency):
    """Raises KeyboardInterrupt on the ``crash_after + 1``-th measurement."""

    def __init__(self, crash_after=None):
        super().__init__()
        self.crash_after = crash_after

    def measure(self, arch):
        if self.crash_after is not None and sum(self.calls.values()) >= self.crash_after:
            raise KeyboardInterrupt
        return super().measure(arch)


def test_measure_before_training_never_trains_an_architecture_over_the_budget(tmp_path):
    accuracy, latency = FakeAccuracy(), FakeLatency()
    loop = make_loop(tmp_path / "run", accuracy, latency, max_trainings=20)
    loop.settings.budget_ms = 0.45  # a tight budget: most of the space (and of the prior) is over it
    result = loop.run()
    trained = loop.state.verified
    assert len(trained) == 20 and all(true_latency(v.arch) <= 0.45 for v in trained)
    assert set(accuracy.calls) == {v.arch for v in trained}  # nothing else was trained
    over = [m for m in loop.state.measured if m.latency_ms > 0.45]
    assert over and not {m.arch for m in over} & set(accuracy.calls)  # measured, found too slow, skipped
    assert set(latency.calls) == {m.arch for m in loop.state.measured}  # each measurement is recorded once
    assert result["measurements_used"] == len(loop.state.measured) == sum(latency.calls.values())
    assert result["trainings_over_budget"] == 0 and result["best"]["latency_ms"] <= 0.45
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(",")))
    assert int(last["measurements_used"]) == result["measurements_used"]
    assert int(last["trainings_used"]) == 20
    assert sum(int(dict(zip(header, r.split(",")))["new_over_budget"]) for r in rows[1:]) <= len(over)


def test_the_measurement_budget_stops_the_search_and_counts_are_reported(tmp_path):
    loop = make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), max_trainings=40)
    loop.settings.budget_ms = 0.45
    loop.settings.max_measurements = 12
    result = loop.run()
    assert result["measurements_used"] == 12 and len(loop.state.measured) == 12
    assert result["stop_reason"] == "measurement budget spent (12)"
    assert result["trainings_used"] < 40
    assert SearchSettings(budget_ms=1.0, max_trainings=7).measurement_cap == 140  # 20 x trainings by default
    # the last measurement stops measuring, never the training of a candidate measured within the budget
    feasible = {m.arch for m in loop.state.measured if m.latency_ms <= 0.45}
    assert not loop.state.training and feasible <= {v.arch for v in loop.state.verified}


def test_a_time_budget_that_stops_a_rounds_trainings_keeps_them_for_the_resume(tmp_path, monkeypatch):
    """Stopped by the time budget between a round's selection and its trainings: the selected candidates stay
    in the state (the round open), nothing else is measured, and a resume with more time trains exactly them
    and goes on to the training budget, nothing trained twice."""
    accuracy = FakeAccuracy()
    loop = make_loop(tmp_path / "run", accuracy, FakeLatency(), max_trainings=12)
    real_train = Verifier.train_selected
    calls = {"n": 0}

    def out_of_time_in_round_1(self, round_index):
        if round_index == 1 and calls["n"] == 0:
            calls["n"] += 1
            self.ctx.settings.time_budget_s = 1e-9  # spent: no training may start
        real_train(self, round_index)

    monkeypatch.setattr(Verifier, "train_selected", out_of_time_in_round_1)
    stopped = loop.run()
    assert stopped["stop_reason"].startswith("time budget spent")
    left = [t["arch"] for t in loop.state.training]
    assert left and stopped["trainings_used"] == 6  # the initial ones only
    monkeypatch.setattr(Verifier, "train_selected", real_train)
    resumed = make_loop(tmp_path / "run", accuracy, FakeLatency(), max_trainings=12, resume=True)
    result = resumed.run()
    assert result["trainings_used"] == 12 and max(accuracy.calls.values()) == 1
    assert [v.arch for v in resumed.state.verified[6:6 + len(left)]] == left and not resumed.state.training


def test_resume_after_a_kill_during_measurements_gives_the_uninterrupted_answer(tmp_path):
    def tight(loop):
        loop.settings.budget_ms = 0.45
        return loop

    reference_latency = FakeLatency()
    reference = tight(make_loop(tmp_path / "ref", FakeAccuracy(), reference_latency)).run()
    total = sum(reference_latency.calls.values())
    assert total >= 8
    for crash_after in (3, total - 2):  # in the initial phase, and late in a round
        path = tmp_path / f"run{crash_after}"
        crashing_acc = FakeAccuracy()
        with pytest.raises(KeyboardInterrupt):
            tight(make_loop(path, crashing_acc, CrashingLatency(crash_after))).run()
        resumed_acc = FakeAccuracy()
        resumed_acc.calls.update(crashing_acc.calls)
        result = tight(make_loop(path, resumed_acc, FakeLatency(), resume=True)).run()
        assert max(resumed_acc.calls.values()) == 1  # no training repeated
        assert untimed(result["best"]) == untimed(reference["best"])
        ref = json.loads((tmp_path / "ref" / "state.json").read_text())
        got = json.loads((path / "state.json").read_text())
        assert [v["arch"] for v in got["verified"]] == [v["arch"] for v in ref["verified"]]
        assert [m["arch"] for m in got["measured"]] == [m["arch"] for m in ref["measured"]]


def test_an_infeasible_budget_trains_nothing_and_names_the_fastest_measured(tmp_path):
    accuracy = FakeAccuracy()
    loop = make_loop(tmp_path / "run", accuracy, FakeLatency(), max_trainings=8)
    loop.settings.budget_ms = 0.01
    result = loop.run()
    assert not accuracy.calls and result["trainings_used"] == 0 and result["best"] is None
    assert result["stop_reason"].startswith("feasible space exhausted: no architecture of the space fits the budget")
    assert [c["accuracy"] for c in result["closest"]] == [None] * 3


def test_a_search_at_chance_level_says_so(tmp_path):
    class Chance(FakeAccuracy):
        def evaluate(self, arch):
            self.calls[arch.string] += 1
            return {"accuracy": 0.1}

    loop = make_loop(tmp_path / "run", Chance(), FakeLatency(), max_trainings=8)
    loop.settings.num_classes = 10
    result = loop.run()
    assert "chance level" in result["warning"] and "--epochs" in result["warning"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["warning"] == result["warning"]
    informative = make_loop(tmp_path / "ok", FakeAccuracy(), FakeLatency(), max_trainings=8)
    informative.settings.num_classes = 10
    assert "warning" not in informative.run()


def test_uninformative_judges_chance_and_noise():
    from hwnas.search.diagnostics import uninformative

    def records(accs):
        return [{"accuracy": a, "round": 0} for a in accs]

    assert uninformative(records([0.25, 0.26, 0.24, 0.25]), num_classes=4, validation_size=240)
    assert uninformative(records([0.25, 0.60, 0.70]), num_classes=4, validation_size=240) is None
    # a spread of about half a validation example's worth on 359 examples is noise; 5 points is not
    assert "noise" in uninformative(records([0.951, 0.953, 0.950, 0.952]), num_classes=10, validation_size=359)
    assert uninformative(records([0.90, 0.95, 0.85, 0.80]), num_classes=10, validation_size=359) is None
    assert uninformative(records([0.1, 0.1]), num_classes=10, validation_size=100) is None  # too few to judge
    assert uninformative(records([0.5, 0.5, 0.5]), num_classes=None, validation_size=None) is None


@pytest.mark.parametrize("kill_point", ["before the round's history row", "after the history row, before the state"])
def test_a_kill_after_the_last_training_of_a_round_neither_redoes_nor_loses_the_round(tmp_path, monkeypatch,
                                                                                     kill_point):
    reference = make_loop(tmp_path / "ref", FakeAccuracy(), FakeLatency()).run()
    ref_rows = RunDir(tmp_path / "ref", {}).history()
    path = tmp_path / "run"
    calls = {"n": 0}
    real_append = RunDir.append_history
    real_save = RunDir.save_state

    def killed_append(self, row):
        if int(row["round"]) == 2 and kill_point.startswith("before"):
            raise KeyboardInterrupt
        real_append(self, row)

    def killed_save(self, state):
        # the state write that advances past round 2, right after its history row was written
        if kill_point.startswith("after") and state.round == 3 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt
        real_save(self, state)

    crashing_acc = FakeAccuracy()
    monkeypatch.setattr(RunDir, "append_history", killed_append)
    monkeypatch.setattr(RunDir, "save_state", killed_save)
    with pytest.raises(KeyboardInterrupt):
        make_loop(path, crashing_acc, FakeLatency()).run()
    monkeypatch.setattr(RunDir, "append_history", real_append)
    monkeypatch.setattr(RunDir, "save_state", real_save)
    resumed_acc = FakeAccuracy()
    resumed_acc.calls.update(crashing_acc.calls)
    result = make_loop(path, resumed_acc, FakeLatency(), resume=True).run()
    assert max(resumed_acc.calls.values()) == 1  # no training repeated
    assert untimed(result["best"]) == untimed(reference["best"])
    got = json.loads((path / "state.json").read_text())
    ref = json.loads((tmp_path / "ref" / "state.json").read_text())
    assert [v["arch"] for v in got["verified"]] == [v["arch"] for v in ref["verified"]]
    rows = RunDir(path, {}).history()
    assert [r["round"] for r in rows] == [r["round"] for r in ref_rows]  # no round lost or repeated
    assert [r["new_verified"] for r in rows] == [r["new_verified"] for r in ref_rows]  # whole rounds counted


@pytest.mark.parametrize("kill_point", ["checkpoint written, queue not saved", "queue saved, checkpoint not in place"])
def test_a_kill_around_the_controller_checkpoint_resumes_to_the_uninterrupted_answer(tmp_path, monkeypatch,
                                                                                     kill_point):
    reference = make_loop(tmp_path / "ref", FakeAccuracy(), FakeLatency(), controller="ppo").run()
    real_plan = Planner.plan_round
    fired = []

    def killed_plan(self, objective, round_index):
        if round_index == 2 and not fired:
            fired.append(1)
            if kill_point.startswith("checkpoint written"):
                raise KeyboardInterrupt
            real_plan(self, objective, round_index)
            raise KeyboardInterrupt
        real_plan(self, objective, round_index)

    path = tmp_path / "run"
    crashing_acc = FakeAccuracy()
    monkeypatch.setattr(Planner, "plan_round", killed_plan)
    with pytest.raises(KeyboardInterrupt):
        make_loop(path, crashing_acc, FakeLatency(), controller="ppo").run()
    assert fired and (path / "controller.ckpt.next").exists()
    monkeypatch.setattr(Planner, "plan_round", real_plan)
    resumed_acc = FakeAccuracy()
    resumed_acc.calls.update(crashing_acc.calls)
    result = make_loop(path, resumed_acc, FakeLatency(), controller="ppo", resume=True).run()
    assert max(resumed_acc.calls.values()) == 1
    got = json.loads((path / "state.json").read_text())
    ref = json.loads((tmp_path / "ref" / "state.json").read_text())
    assert [v["arch"] for v in got["verified"]] == [v["arch"] for v in ref["verified"]]
    assert untimed(result["best"]) == untimed(reference["best"]) and not (path / "controller.ckpt.next").exists()


def test_estimates_guide_the_search_and_a_kill_while_planning_resumes_to_the_same_answer(tmp_path):
    reference_estimates = FakeEstimates()
    reference = make_loop(tmp_path / "ref", FakeAccuracy(), FakeLatency(), estimator=reference_estimates).run()
    ref = json.loads((tmp_path / "ref" / "state.json").read_text())
    assert reference["estimates_used"] == len(ref["estimated"]) > 30  # the initial 30, then each round's
    assert max(reference_estimates.calls.values()) == 1
    initial = [v for v in ref["verified"] if v["round"] == 0]
    first = sorted(reference_estimates.order[:30], key=lambda a: -ref["estimated"][a])  # the initial estimates
    assert {v["arch"] for v in initial} <= set(first[:12])  # the initial trainings: the best estimated
    assert {v["arch"] for v in ref["verified"]} <= set(ref["estimated"])
    assert reference["best"]["accuracy"] == true_accuracy(reference["best"]["arch"])  # a training, not an estimate
    crash_at = 30 + 11  # inside the first round's planning, after ten of its estimates
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), estimator=FakeEstimates(crash_at)).run()
    result = make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), resume=True,
                       estimator=FakeEstimates()).run()
    got = json.loads((tmp_path / "run" / "state.json").read_text())
    assert untimed(result["best"]) == untimed(reference["best"])
    assert [v["arch"] for v in got["verified"]] == [v["arch"] for v in ref["verified"]]
    assert got["estimated"] == ref["estimated"]


@pytest.mark.parametrize("skip", [True, False])
def test_a_candidate_equivalent_to_a_trained_one_is_neither_measured_nor_trained(tmp_path, skip):
    # 3<-0 skip alone computes in both (node 1 and node 2 are cut off): one function, two strings
    trained = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    twin = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    other = "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    accuracy, latency = FakeAccuracy(), FakeLatency()
    loop = make_loop(tmp_path / "run", accuracy, latency)
    loop.settings.skip_equivalent = skip
    loop.state.verified.append(Verified(arch=trained, accuracy=true_accuracy(trained), round=0,
                                        latency_ms=true_latency(trained)))
    loop.planner.set_queue([[twin, other]], [1])
    loop.verifier.work_queue(round_index=1)
    assert [v.arch for v in loop.state.verified[1:]] == [other if skip else twin]
    assert (twin in latency.calls) is not skip


@pytest.mark.parametrize("controller", ["ppo", "random"])
def test_no_two_trained_architectures_are_equivalent(tmp_path, controller):
    space = create_space("nb201")
    loop = make_loop(tmp_path / "run", FakeAccuracy(), FakeLatency(), controller=controller, max_trainings=30)
    result = loop.run()
    keys = [space.equivalence_key(space.parse(v.arch)) for v in loop.state.verified]
    assert result["trainings_used"] == 30 and len(set(keys)) == len(keys)
