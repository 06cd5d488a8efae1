"""The literature's controllers beyond the registry contract: learning, progressive mode, A2C's action mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.search.controllers import CONTROLLERS, create_controller
from hwnas.search.env import ArchEnv, make_vec_env, partial_architectures
from hwnas.spaces import create_space

from test_search_components import toy_objective

LEARNERS = [name for name in CONTROLLERS.names() if name != "random"]


class Recorder:
    """Wraps an objective and records every reward it hands out, in order."""

    def __init__(self, objective):
        self.objective = objective
        self.cache = objective.cache
        self.rewards: list[float] = []

    def __call__(self, archs):
        rewards = self.objective(archs)
        self.rewards.extend(rewards.tolist())
        return rewards


@pytest.mark.parametrize("name", LEARNERS)
def test_learners_propose_better_architectures_than_random_search_as_they_learn(name):
    # Random search on the toy averages about 0.2; its optimum is 4/6.
    random = Recorder(toy_objective())
    create_controller("random", create_space("nb201"), seed=0).learn(random, 3000)
    learner = Recorder(toy_objective())
    create_controller(name, create_space("nb201"), seed=0).learn(learner, 3000)
    assert np.mean(learner.rewards[-300:]) > np.mean(random.rewards[-300:]) + 0.2


@pytest.mark.parametrize("space_name", ["nb201", "mobilenet"])
def test_progressive_rewards_are_improvements_that_add_up_to_the_final_score(space_name):
    space = create_space(space_name)
    scores = {}

    def score(archs):
        return np.array([scores.setdefault(a.string, float(len(scores) % 7)) for a in archs])

    env = ArchEnv(space, score=score, progressive=True)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.reset()
        done, rewards, partials = False, [], []
        while not done:
            _, reward, done, _, info = env.step(rng.choice(np.flatnonzero(env.action_masks())))
            rewards.append(reward)
            if info.get("partial"):
                partials.append(info["arch"])
        final = info["arch"]
        assert sum(rewards) == pytest.approx(scores[final.string])
        assert partials == partial_architectures(space, final)
        groups = {label.split(".")[0] for label in final}
        assert len(partials) == len(groups) - 1 and sum(r != 0 for r in rewards) <= len(groups)


@pytest.mark.parametrize("space_name, shape", [("nb201", (3, 8, 8)), ("mobilenet", (1, 8, 8))])
def test_partial_architectures_are_valid_models(space_name, shape):
    space = create_space(space_name)
    arch = space.sample(np.random.default_rng(3))
    partials = partial_architectures(space, arch)
    assert len(partials) >= 3  # nb201: one per edge but the last; mobilenet: one per stage but the last
    for partial in partials:
        assert space.parse(partial.string) == partial
        model = space.build(partial, shape, 10).eval()
        with torch.no_grad():
            out = model(torch.randn(2, *shape))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
    # Later decisions of a partial architecture take their smallest (first) choice.
    first = partials[0]
    decisions = space.active_decisions(first)
    assert all(first[d.label] == d.choices[0] for d in decisions[len(decisions) // 2:])


def test_vec_env_shapes_rewards_with_one_scoring_call_per_step():
    calls = []

    def score(archs):
        calls.append(len(archs))
        return np.array([a.string.count("nor_conv_3x3") for a in archs], dtype=float)

    env = make_vec_env(create_space("nb201"), score, n_envs=3, progressive=True)
    env.reset()
    total = np.zeros(3)
    for _ in range(6):
        _, rewards, dones, infos = env.step(np.array([3, 3, 0]))  # 3 = nor_conv_3x3, 0 = none
        total += rewards
    assert dones.all() and calls == [3] * 6
    assert list(total) == [6, 6, 0]


@pytest.mark.parametrize("name", CONTROLLERS.names())
def test_every_controller_runs_progressively_deterministically_and_scores_partials(name, tmp_path):
    space = create_space("nb201")
    a, b = (create_controller(name, space, seed=5, mode="progressive") for _ in range(2))
    oa, ob = toy_objective(), toy_objective()
    a.learn(oa, 200)
    b.learn(ob, 200)
    assert sorted(oa.cache) == sorted(ob.cache)
    partial_cells = [s for s in oa.cache if s.endswith("|none~0|none~1|none~2|")]
    assert partial_cells  # minimal completions of partial cells were scored (and may be verified)
    a.save(tmp_path / "ckpt")
    c = create_controller(name, space, seed=0, mode="progressive")
    c.load(tmp_path / "ckpt")
    oc = toy_objective()
    oc.cache.update(oa.cache)
    before = set(oa.cache)
    a.learn(oa, 200)
    c.learn(oc, 200)
    assert set(oa.cache) - before == set(oc.cache) - before


def test_modulo_mapping_lets_an_unmasked_agent_act():
    env = ArchEnv(create_space("mobilenet"), score=lambda a: np.zeros(len(a)), invalid_actions="modulo")
    env.reset()
    n = int(env.action_masks().sum())
    env.step(n + 1)  # maps to choice 1 of the first decision
    assert env._chosen[env.decisions[0].label] == env.decisions[0].choices[1]
    with pytest.raises(ValueError):
        ArchEnv(create_space("nb201"), invalid_actions="ignore")


def test_tabular_exploration_decays():
    controller = create_controller("qlearning", create_space("nb201"), seed=0, epsilon_decay_archs=100)
    start = controller.epsilon
    controller.learn(toy_objective(), 640)
    assert start == pytest.approx(1.0) and controller.epsilon < 0.05 + 0.95 * np.exp(-6) + 1e-9
    assert len(controller.memory) == 640


def test_random_search_best_so_far_matches_its_known_expectation():
    # With n uniform draws, P(best <= v) = F(v)^n, F the rewards' distribution over the whole space; the mean
    # best-so-far curve over many seeds must follow E[max of n draws] computed from the enumeration.
    space = create_space("nb201")
    values = np.sort(toy_objective()(list(space.enumerate())).astype(float))
    levels, counts = np.unique(values, return_counts=True)
    cdf = np.cumsum(counts) / len(values)
    marks = np.array([1, 3, 10, 30])

    def expected_max(n):
        below = np.concatenate([[0.0], cdf[:-1]])
        return float(np.sum(levels * (cdf ** n - below ** n)))

    curves = []
    for seed in range(300):
        recorder = Recorder(toy_objective())
        create_controller("random", space, seed=seed).learn(recorder, int(marks[-1]))
        curves.append(np.maximum.accumulate(recorder.rewards)[marks - 1])
    curves = np.array(curves)
    mean, sem = curves.mean(axis=0), curves.std(axis=0) / np.sqrt(len(curves))
    expected = np.array([expected_max(int(n)) for n in marks])
    assert np.all(np.abs(mean - expected) <= 4 * sem + 1e-3), (mean, expected)
    assert np.all(np.diff(expected) > 0)  # the curve rises: the check is not vacuous


class _Exploit:
    """Unpickling this runs ``os.system``: a crafted checkpoint."""

    def __reduce__(self):
        import os

        return os.system, ("touch " + _Exploit.marker,)


@pytest.mark.parametrize("payload", ["pickle", "torch-pickle", "garbage"])
def test_a_crafted_checkpoint_runs_no_code_and_is_refused_in_one_line(tmp_path, payload):
    import pickle

    import torch

    from hwnas.search.controllers.base import CheckpointError

    marker = tmp_path / "pwned"
    _Exploit.marker = str(marker)
    path = tmp_path / "controller.ckpt"
    if payload == "pickle":
        path.write_bytes(pickle.dumps({"name": "random", "seed": 0, "rng": _Exploit()}))
    elif payload == "torch-pickle":
        torch.save({"format": "hwnas-controller", "version": 1, "state": _Exploit()}, path)
    else:
        path.write_bytes(b"\x00not a checkpoint")
    controller = create_controller("random", create_space("nb201"), seed=0)
    with pytest.raises(CheckpointError, match="not a data-only hwnas controller checkpoint") as info:
        controller.load(path)
    assert not marker.exists() and "\n" not in str(info.value)


def test_checkpoints_hold_numpy_state_exactly(tmp_path):
    space = create_space("nb201")
    a = create_controller("qlearning", space, seed=3)
    a.learn(toy_objective(), 200)
    a.save(tmp_path / "ckpt")
    b = create_controller("qlearning", space, seed=0)
    b.load(tmp_path / "ckpt")
    assert b.q.dtype == a.q.dtype and np.array_equal(b.q, a.q)
    assert b.rng.bit_generator.state == a.rng.bit_generator.state


def test_ppo_learning_leaves_no_folders_in_the_temporary_directory(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    controller = create_controller("ppo", create_space("nb201"), seed=0)
    for _ in range(2):
        controller.learn(toy_objective(), 100)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("SB3")] == []
