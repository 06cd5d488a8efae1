"""The model-based controllers, ``mcts`` and ``dynaq``: known optima, determinism, exact resume (pickle and
JSON), MCTS statistics against a hand computation, and Dyna-Q's real-experience hook."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.errors import ArchError
from hwnas.search.controllers import CONTROLLERS, DynaQController, MCTSController, create_controller
from hwnas.search.objective import PredictedObjective
from hwnas.search.reward import create_reward
from hwnas.spaces import create_space
from hwnas.spaces.base import Decision, SearchSpace

from test_search_components import toy_objective

MODEL_BASED = ["mcts", "dynaq"]


class TinySpace(SearchSpace):
    """78 architectures with conditional decisions: ``depth`` blocks (1-3) of an op each, and a width.

    ``b1.op`` exists only for depth >= 2 and ``b2.op`` only for depth 3, like a mobilenet stage's blocks."""

    name = "tiny"
    _decisions = (Decision("depth", (1, 2, 3)), *(Decision(f"b{i}.op", ("x", "y", "z")) for i in range(3)),
                  Decision("width", (1, 2)))

    @property
    def decisions(self):
        return self._decisions

    def is_active(self, decision, chosen):
        return not decision.label.startswith("b") or int(decision.label[1]) < chosen["depth"]

    def size(self):
        return 78

    def format(self, choices):
        return ";".join(f"{label}={value}" for label, value in choices.items())

    def parse_choices(self, string):
        try:
            pairs = dict(part.split("=") for part in string.split(";"))
        except ValueError:
            raise ArchError(f"tiny: bad string {string!r}") from None
        return {k: int(v) if k in ("depth", "width") else v for k, v in pairs.items()}

    def units(self, arch, input_shape, num_classes):
        raise NotImplementedError

    def build_unit(self, unit):
        raise NotImplementedError


TINY_BEST = "depth=3;b0.op=z;b1.op=z;b2.op=z;width=1"


def tiny_objective() -> PredictedObjective:
    """Accuracy: share of ``z`` ops (+0.05 for width 2); latency 0.25 ms per ``z`` + 0.1 per width; target
    0.9 ms. The unique optimum is three ``z`` at width 1 (reward 1.0; width 2 breaks the budget)."""

    def accuracy(strings):
        acc = np.array([s.count("=z") / 3 + 0.05 * s.endswith("width=2") for s in strings])
        return acc, np.zeros_like(acc)

    def latency(strings):
        lat = np.array([0.25 * s.count("=z") + 0.1 * int(s[-1]) for s in strings])
        return lat, np.zeros_like(lat)

    return PredictedObjective(accuracy=accuracy, latency=latency, reward=create_reward("hard"), budget_ms=0.9)


def table_objective(values: dict[str, float]) -> PredictedObjective:
    """Reward = the accuracy given by ``values`` (no latency penalty: the target is never reached)."""

    def accuracy(strings):
        return np.array([values[s] for s in strings]), np.zeros(len(strings))

    return PredictedObjective(accuracy=accuracy, latency=lambda s: (np.full(len(s), 0.5), np.zeros(len(s))),
                              reward=create_reward("hard"), budget_ms=1.0)


def proposals(controller, objective, n):
    before = set(objective.cache)
    controller.learn(objective, n)
    return sorted(set(objective.cache) - before)


def json_round_trip(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))


def test_both_are_registered():
    assert set(MODEL_BASED) <= set(CONTROLLERS.names())


@pytest.mark.parametrize("name", MODEL_BASED)
@pytest.mark.parametrize("mode", ["oneshot", "progressive"])
def test_finds_the_known_optimum_of_a_conditional_toy_space(name, mode):
    space = TinySpace()
    everything = tiny_objective()
    everything(list(space.enumerate()))
    assert len(everything.cache) == 78 and everything.best(1)[0].arch.string == TINY_BEST
    objective = tiny_objective()
    create_controller(name, space, seed=1, mode=mode).learn(objective, 600)
    best = objective.best(1)[0]
    assert best.arch.string == TINY_BEST and best.reward == pytest.approx(1.0)


@pytest.mark.parametrize("name", MODEL_BASED)
def test_finds_the_nb201_toy_optimum_and_concentrates_on_good_architectures(name):
    objective = toy_objective()
    rewards = []
    controller = create_controller(name, create_space("nb201"), seed=0)
    for _ in range(4):
        before = objective.calls
        controller.learn(objective, 500)
        assert objective.calls >= before + 500
    rewards = [objective.cache[s].reward for s in objective.cache]
    assert objective.best(1)[0].reward == pytest.approx(4 / 6)
    assert np.mean(rewards) > 0.3  # random search on this toy averages about 0.2


@pytest.mark.parametrize("name", MODEL_BASED)
def test_same_seed_same_proposals_other_seed_other_proposals(name):
    space = create_space("nb201")
    runs = [proposals(create_controller(name, space, seed=seed), toy_objective(), 300) for seed in (4, 4, 5)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


@pytest.mark.parametrize("name", MODEL_BASED)
@pytest.mark.parametrize("mode", ["oneshot", "progressive"])
def test_resumes_exactly_from_a_pickle_checkpoint_and_from_json(name, mode, tmp_path):
    space = create_space("nb201")
    a = create_controller(name, space, seed=7, mode=mode)
    oa = toy_objective()
    a.learn(oa, 250)
    if name == "dynaq":
        a.observe([(s, 0.5) for s in sorted(oa.cache)[:3]])
    state = a.state_dict()
    text = json.dumps(state, allow_nan=False)  # data only: JSON types, no infinities
    a.save(tmp_path / "ckpt")
    from_pickle = create_controller(name, space, seed=0, mode=mode)
    from_pickle.load(tmp_path / "ckpt")
    from_json = create_controller(name, space, seed=0, mode=mode)
    from_json.load_state_dict(json.loads(text))
    assert json.dumps(from_json.state_dict()) == text == json.dumps(from_pickle.state_dict())
    objectives = []
    for controller in (a, from_pickle, from_json):
        objective = toy_objective(budget_ms=1.1)  # a refit: new predictions for the stored leaves / memory
        objective.cache.update({s: v for s, v in oa.cache.items() if "avg_pool" in s})
        objectives.append(objective)
        controller.learn(objective, 250)
    assert sorted(objectives[0].cache) == sorted(objectives[1].cache) == sorted(objectives[2].cache)
    texts = [json.dumps(c.state_dict()) for c in (a, from_pickle, from_json)]
    assert texts[0] == texts[1] == texts[2]


def test_a_fresh_controller_checkpoints_as_json_too():
    for name in MODEL_BASED:
        controller = create_controller(name, create_space("mobilenet"), seed=0)
        state = json_round_trip(controller.state_dict())
        other = create_controller(name, create_space("mobilenet"), seed=1)
        other.load_state_dict(state)
        assert json.dumps(other.state_dict()) == json.dumps(controller.state_dict())


# -- MCTS ----------------------------------------------------------------------------------------------------
class TwoDecisions(TinySpace):
    """``depth`` in {1, 2} then ``b0.op`` in {x, y}: a 2-level tree of 4 leaves (no conditional decision)."""

    name = "tiny"
    _decisions = (Decision("depth", (1, 2)), Decision("b0.op", ("x", "y")))

    def is_active(self, decision, chosen):
        return True

    def size(self):
        return 4


LEAF = {(d, op): f"depth={d};b0.op={op}" for d in (1, 2) for op in "xy"}
VALUES = {LEAF[1, "x"]: 0.1, LEAF[1, "y"]: 0.2, LEAF[2, "x"]: 0.5, LEAF[2, "y"]: 0.9}


def test_mcts_visits_and_values_match_a_hand_computation():
    # c = 0 (greedy on values normalised by the tree's range), minimal rollout (first choice), one per batch:
    # 1. root: untried depth=1 -> rollout x -> 0.1      root n=[1,0] w=[.1,0]
    # 2. root: untried depth=2 -> rollout x -> 0.5      root n=[1,1] w=[.1,.5]    range [.1,.5]
    # 3. q=[0,1] -> depth=2; node(2): untried x -> 0.5  root n=[1,2] w=[.1,1.0]  node(2) n=[1,0] w=[.5,0]
    # 4. q=[0,1] -> depth=2; node(2): untried y -> 0.9  root n=[1,3] w=[.1,1.9]  node(2) n=[1,1] w=[.5,.9]
    # 5. q=[0,(1.9-.3)/(.8*3)] -> depth=2; node(2): q=[.5,1] -> y -> 0.9
    #                                                   root n=[1,4] w=[.1,2.8]  node(2) n=[1,2] w=[.5,1.8]
    controller = MCTSController(TwoDecisions(), exploration=0.0, rollout="minimal", batch_size=1)
    controller.learn(table_objective(VALUES), 5)
    root, one, two = (controller.nodes[path] for path in [(), (0,), (1,)])
    assert root.n.tolist() == [1, 4] and root.w == pytest.approx([0.1, 2.8])
    assert two.n.tolist() == [1, 2] and two.w == pytest.approx([0.5, 1.8])
    assert one.n.tolist() == [0, 0] and len(controller.nodes) == 3
    assert controller.records == {(LEAF[1, "x"], 1): 1, (LEAF[2, "x"], 1): 1, (LEAF[2, "x"], 2): 1,
                                  (LEAF[2, "y"], 2): 2}
    assert controller.best_path() == {"depth": 2, "b0.op": "y"}
    # Refit: the leaves are re-scored, counts stay, values are recomputed from the records.
    new = {string: 1.0 - value for string, value in VALUES.items()}
    controller.revalue(table_objective(new))
    assert root.n.tolist() == [1, 4] and root.w == pytest.approx([0.9, 2 * 0.5 + 2 * 0.1])
    assert two.n.tolist() == [1, 2] and two.w == pytest.approx([0.5, 0.2])
    assert (controller.low, controller.high) == pytest.approx((0.1, 0.9))


def test_mcts_batches_simulations_with_a_virtual_loss_in_one_objective_call():
    # c = 1, a batch of 4: the two untried root edges first; then the pending visits (virtual loss) send the
    # third simulation to depth=1 and, its visits now [2, 1], the fourth to depth=2.
    calls = []
    objective = table_objective(VALUES)
    accuracy = objective.accuracy
    objective.accuracy = lambda strings: calls.append(len(strings)) or accuracy(strings)
    controller = MCTSController(TwoDecisions(), exploration=1.0, rollout="minimal", batch_size=4)
    controller.learn(objective, 4)
    assert calls == [2] and objective.calls == 4  # 4 simulations, 2 distinct leaves, one predictor call
    assert controller.nodes[()].n.tolist() == [2, 2]
    assert controller.nodes[(0,)].n.tolist() == [1, 0] and controller.nodes[(1,)].n.tolist() == [1, 0]
    assert all(not node.pending.any() for node in controller.nodes.values())


def test_mcts_revalue_with_the_same_predictions_changes_nothing_but_rounding():
    controller = MCTSController(create_space("nb201"), seed=2, rollout="epsilon")
    controller.learn(toy_objective(), 400)
    before = {path: (node.n.copy(), node.w.copy()) for path, node in controller.nodes.items()}
    amaf = controller.amaf_n.copy()
    controller.revalue(toy_objective())
    for path, node in controller.nodes.items():
        assert np.array_equal(node.n, before[path][0]) and node.w == pytest.approx(before[path][1])
    assert np.array_equal(controller.amaf_n, amaf) and controller.amaf_n.sum() == 400 * 6


def test_mcts_respects_inactive_decisions():
    controller = MCTSController(TinySpace(), seed=0)
    controller.learn(tiny_objective(), 200)
    depth_one = [path for path in controller.nodes if path[:1] == (0,)]  # depth=1: b0.op then width
    assert {controller.nodes[p].position for p in depth_one} <= {1, 4}
    assert all(len(p) <= 4 for p in controller.nodes)  # depth + 3 ops; the width edge ends the tree


def test_mcts_rejects_bad_settings():
    with pytest.raises(ValueError, match="rollout"):
        MCTSController(TinySpace(), rollout="greedy")
    with pytest.raises(ValueError, match="exploration"):
        MCTSController(TinySpace(), exploration=-1)


# -- Dyna-Q --------------------------------------------------------------------------------------------------
def flat_objective(space) -> PredictedObjective:
    """A model that knows nothing: every architecture predicted 0."""
    return PredictedObjective(accuracy=lambda s: (np.zeros(len(s)), np.zeros(len(s))),
                              latency=lambda s: (np.full(len(s), 0.5), np.zeros(len(s))),
                              reward=create_reward("hard"), budget_ms=1.0)


def test_dynaq_learns_from_real_rewards_the_model_does_not_know():
    # A flat model (every prediction 0) and q_init 0: only the real reward can make a table entry positive,
    # and on a 2-decision tree the state (decision, previous action) aliases nothing, so exactly the two
    # entries on the observed architecture's path become positive and the greedy policy builds it.
    space = TwoDecisions()
    without = DynaQController(space, seed=0, q_init=0.0)
    without.learn(flat_objective(space), 200)
    assert not without.q.any() and without.greedy() == {"depth": 1, "b0.op": "x"}  # ties: the first choice
    controller = DynaQController(space, seed=0, q_init=0.0)
    controller.observe([(LEAF[1, "y"], 1.0), (LEAF[2, "x"], 0.0)])
    controller.learn(flat_objective(space), 200)
    assert controller.greedy() == {"depth": 1, "b0.op": "y"}
    assert sorted(map(tuple, np.argwhere(controller.q > 0).tolist())) == [(0, 0, 0), (1, 1, 1)]
    assert controller.real_applied == 2 and controller.replayed == 200 // controller.planning_steps


def test_dynaq_observe_is_idempotent_and_validates():
    space = create_space("nb201")
    strings = sorted({a.string for a in (space.sample(np.random.default_rng(i)) for i in range(5))})
    twice = DynaQController(space, seed=3)
    twice.observe([(s, 0.4) for s in strings[:2]])
    twice.learn(toy_objective(), 64)
    twice.observe([(s, 0.4) for s in strings])  # the loop passes everything verified so far, every round
    assert twice.real_applied == 2 and len(twice.real) == 5
    with pytest.raises(ArchError):
        twice.observe([("not an architecture", 1.0)])


def test_dynaq_real_episodes_end_with_the_real_reward_in_both_modes():
    space = create_space("nb201")
    arch = space.sample(np.random.default_rng(0))
    for mode in ("oneshot", "progressive"):
        controller = DynaQController(space, seed=0, mode=mode)
        controller.observe([(arch.string, 0.75)])
        episode = controller._real_episodes(toy_objective())[0]
        assert episode.rewards.sum() == pytest.approx(0.75) and episode.arch == arch
        assert len(episode.actions) == 6 and len(episode.scored) == (6 if mode == "progressive" else 1)
