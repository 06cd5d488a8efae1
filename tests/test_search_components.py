"""The search's building blocks on toy objectives: environment, rewards, objective cache, controllers."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from hwnas.search.controllers import CONTROLLERS, create_controller
from hwnas.search.env import ArchEnv, make_vec_env
from hwnas.search.objective import PredictedObjective
from hwnas.search.reward import create_reward
from hwnas.spaces import SPACES, create_space


def toy_objective(budget_ms: float = 1.0, reward: str = "hard") -> PredictedObjective:
    """nb201 toy: accuracy = share of 3x3 convs; latency grows with convs. Optimum under 1 ms: 4 conv3x3."""

    def accuracy(strings):
        acc = np.array([s.count("nor_conv_3x3") / 6 for s in strings])
        return acc, np.zeros_like(acc)

    def latency(strings):
        lat = np.array([0.3 + 0.15 * s.count("nor_conv_3x3") + 0.05 * s.count("nor_conv_1x1") for s in strings])
        return lat, np.zeros_like(lat)

    return PredictedObjective(accuracy=accuracy, latency=latency, reward=create_reward(reward), budget_ms=budget_ms)


@pytest.mark.parametrize("space_name", SPACES.names())
def test_environment_passes_gymnasiums_checker_and_builds_valid_architectures(space_name):
    space = create_space(space_name)
    env = ArchEnv(space, score=lambda archs: np.ones(len(archs)))
    check_env(env, skip_render_check=True)
    rng = np.random.default_rng(0)
    for _ in range(10):
        env.reset(seed=int(rng.integers(100)))
        done, steps = False, 0
        while not done:
            action = rng.choice(np.flatnonzero(env.action_masks()))
            _, reward, done, _, info = env.step(action)
            steps += 1
        arch = info["arch"]
        assert space.parse(arch.string) == arch and reward == 1.0
        assert steps == len(arch)  # one step per active decision, inactive ones skipped


def test_masked_actions_are_refused():
    env = ArchEnv(create_space("mobilenet"), score=lambda a: np.zeros(len(a)))
    env.reset()
    mask = env.action_masks()
    assert mask.sum() == 3 and not mask[3:].any() if len(mask) > 3 else mask.sum() == 3
    with pytest.raises(ValueError, match="masked"):
        env.step(len(mask))


def test_vec_env_scores_finished_episodes_in_one_batch():
    calls = []

    def score(archs):
        calls.append(len(archs))
        return np.arange(len(archs), dtype=float) + 1

    env = make_vec_env(create_space("nb201"), score, n_envs=4)
    env.reset()
    for _ in range(6):
        _, rewards, dones, infos = env.step(np.zeros(4, dtype=int))
    assert dones.all() and calls == [4] and list(rewards) == [1, 2, 3, 4]


def test_rewards_on_known_values():
    acc, lat = np.array([0.9, 0.9, 0.9]), np.array([1.0, 2.0, 0.5])
    soft = create_reward("soft")(acc, lat, 1.0)
    assert soft == pytest.approx([0.9, 0.9 * 2 ** -0.07, 0.9 * 0.5 ** -0.07])
    hard = create_reward("hard", k=10)(acc, lat, 1.0)
    assert hard == pytest.approx([0.9, 0.9 * 0.5 ** 10, 0.9])
    absolute = create_reward("absolute")(acc, lat, 1.0)
    assert absolute == pytest.approx([0.9, 0.9 - 0.07, 0.9 - 0.07 * 0.5])


def test_objective_caches_and_adds_an_exploration_bonus():
    calls = []

    def accuracy(strings):
        calls.append(len(strings))
        return np.full(len(strings), 0.5), np.full(len(strings), 0.1)

    objective = PredictedObjective(accuracy=accuracy, latency=lambda s: (np.ones(len(s)), np.zeros(len(s))),
                                   reward=create_reward("absolute"), budget_ms=1.0, explore=2.0)
    space = create_space("nb201")
    archs = [space.sample(np.random.default_rng(i)) for i in range(3)]
    assert objective(archs + archs[:1]) == pytest.approx([0.7] * 4)
    objective(archs)
    assert calls == [3] and objective.calls == 7
    assert [s.arch for s in objective.best(2, exclude={archs[0].string})] == sorted(archs[1:],
                                                                                    key=lambda a: a.string)


@pytest.mark.parametrize("name", CONTROLLERS.names())
def test_every_controller_finds_the_toy_optimum(name):
    objective = toy_objective()
    create_controller(name, create_space("nb201"), seed=0).learn(objective, 2500)
    best = objective.best(1)[0]
    assert best.reward == pytest.approx(4 / 6) and best.latency_ms <= 1.0


@pytest.mark.parametrize("name", CONTROLLERS.names())
def test_controllers_are_deterministic_and_resume_from_a_checkpoint(name, tmp_path):
    space = create_space("nb201")

    def proposals(controller, objective, n):
        before = set(objective.cache)
        controller.learn(objective, n)
        return sorted(set(objective.cache) - before)

    a, b = create_controller(name, space, seed=3), create_controller(name, space, seed=3)
    oa, ob = toy_objective(), toy_objective()
    assert proposals(a, oa, 300) == proposals(b, ob, 300)
    a.save(tmp_path / "ckpt")
    c = create_controller(name, space, seed=99)
    c.load(tmp_path / "ckpt")
    oc = toy_objective()
    oc.cache.update(oa.cache)
    assert proposals(a, oa, 300) == proposals(c, oc, 300)
