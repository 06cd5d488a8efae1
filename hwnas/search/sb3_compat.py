"""Every use of stable-baselines3's private internals, in one place, with a check that fails loudly.

hwnas relies on three things stable-baselines3 does not promise (pinned below 3.0 in ``pyproject.toml``):

- ``DummyVecEnv``'s buffers and helpers (``envs``, ``actions``, ``buf_rews``, ``buf_dones``, ``buf_infos``,
  ``reset_infos``, ``_save_obs``, ``_obs_from_buf``): :func:`batched_vec_env_class` overrides ``step_wait`` to
  score a whole vectorised step in one predictor call and to skip the infos' deep copy;
- ``OnPolicyAlgorithm._last_obs`` and ``_last_episode_starts``: :func:`restart_rollouts` resets them so that
  every learning phase starts fresh episodes (a resumed run then learns exactly as an uninterrupted one);
- ``Logger(folder=None, output_formats=[])``: :func:`quiet_logger`, so no ``$TMPDIR/SB3-<time>/`` folder is
  left per learning phase.

:func:`check_internals` verifies them against the installed version; the suite runs it
(``tests/test_sb3_compat.py``), so an upgrade that changes them fails there, by name, instead of mid-search.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from hwnas.errors import HwnasError

#: The DummyVecEnv attributes :func:`batched_vec_env_class` uses (instance attributes once a step is under way).
VEC_ENV_INTERNALS = ("envs", "actions", "buf_rews", "buf_dones", "buf_infos", "reset_infos", "_save_obs",
                     "_obs_from_buf")
#: The OnPolicyAlgorithm attributes :func:`restart_rollouts` sets (read by ``collect_rollouts``).
ROLLOUT_INTERNALS = ("_last_obs", "_last_episode_starts")


class SB3CompatError(HwnasError):
    """The installed stable-baselines3 lacks an internal hwnas relies on."""


def _version() -> str:
    import stable_baselines3

    return stable_baselines3.__version__


def check_internals(vec_env: Any = None, model: Any = None) -> None:
    """Raises :class:`SB3CompatError` naming the first missing internal of a ``DummyVecEnv`` instance and of
    an on-policy model (either may be None: it is then built from a tiny environment)."""
    if vec_env is None or model is None:
        import gymnasium as gym
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv

        vec_env = vec_env or DummyVecEnv([lambda: gym.make("CartPole-v1")])
        model = model or PPO("MlpPolicy", vec_env, n_steps=8, batch_size=8, device="cpu")
    if hasattr(vec_env, "step_async") and hasattr(vec_env, "action_space"):
        vec_env.reset()
        vec_env.step_async(np.array([vec_env.action_space.sample() for _ in range(vec_env.num_envs)]))
    for name in VEC_ENV_INTERNALS:
        if not hasattr(vec_env, name):
            raise SB3CompatError(f"stable-baselines3 {_version()}: DummyVecEnv has no {name!r}, which hwnas's "
                                 f"batched environment uses; install a stable-baselines3 < 3 that has it")
    for name in ROLLOUT_INTERNALS:
        if name not in vars(model) and not hasattr(type(model), name):
            raise SB3CompatError(f"stable-baselines3 {_version()}: {type(model).__name__} has no {name!r}, "
                                 f"which hwnas resets before each learning phase")


def restart_rollouts(model: Any, n_envs: int) -> None:
    """Starts the next ``model.learn`` from freshly reset episodes (not the last phase's unfinished ones)."""
    model._last_obs = model.env.reset()
    model._last_episode_starts = np.ones(n_envs, dtype=bool)


def quiet_logger():
    """A stable-baselines3 logger that writes nothing anywhere (no temporary folder)."""
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


ScoreFn = Callable[[Sequence[Any]], Any]


def batched_vec_env_class(shaper_factory: Callable[[int], Any]):
    """A ``DummyVecEnv`` subclass whose environments' deferred scores are computed together: one
    ``score(archs)`` call per vectorised step, turned into rewards by ``shaper_factory(n_envs)`` (a callable
    ``(score, infos, dones) -> rewards`` with ``reset()``)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    class BatchedVecEnv(DummyVecEnv):
        def __init__(self, env_fns, score: ScoreFn) -> None:
            super().__init__(env_fns)
            self.score = score
            self.shaper = shaper_factory(self.num_envs)

        def reset(self):
            self.shaper.reset()
            return super().reset()

        def step_wait(self):
            # DummyVecEnv.step_wait, less its deep copy of the infos (a third of the stepping time on
            # mobilenet): every environment returns fresh info dicts, so a shallow list copy is enough.
            for i, env in enumerate(self.envs):
                obs, self.buf_rews[i], terminated, truncated, self.buf_infos[i] = env.step(self.actions[i])
                self.buf_dones[i] = terminated or truncated
                self.buf_infos[i]["TimeLimit.truncated"] = truncated and not terminated
                if self.buf_dones[i]:
                    self.buf_infos[i]["terminal_observation"] = obs
                    obs, self.reset_infos[i] = env.reset()
                self._save_obs(i, obs)
            infos = list(self.buf_infos)
            rewards = self.shaper(self.score, infos, self.buf_dones)
            return self._obs_from_buf(), rewards, np.copy(self.buf_dones), infos

    return BatchedVecEnv
