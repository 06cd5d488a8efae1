"""Controllers from stable-baselines3 on :class:`~hwnas.search.env.ArchEnv`: PPO (with masking) and A2C.

One episode builds one architecture and its return arrives when it is complete (``gamma = 1``); ``n_envs``
environments step together and the architectures they finish are scored in one batched predictor call.

Exact resume: each :meth:`~SB3Controller.learn` call starts from fresh episodes with the global torch and
numpy RNGs (which stable-baselines3 draws actions and minibatches from) seeded from ``(seed, steps so far)``
inside a forked torch RNG, restored afterwards; so the policy, optimiser and step count alone determine what
follows.
"""

from __future__ import annotations

import numpy as np

from hwnas.search.controllers.base import CONTROLLERS, Controller
from hwnas.search.env import make_vec_env
from hwnas.search.sb3_compat import quiet_logger, restart_rollouts
from hwnas.search.objective import PredictedObjective
from hwnas.spaces.base import SearchSpace


class SB3Controller(Controller):
    """Shared machinery of the stable-baselines3 controllers (subclasses implement :meth:`_make_model`)."""

    invalid_actions = "raise"

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", n_envs: int = 32,
                 n_steps: int = 32, net_arch: tuple[int, ...] = (64, 64), **hyperparameters) -> None:
        super().__init__(space, seed=seed, mode=mode)
        self.n_envs = n_envs
        self.n_steps = n_steps
        self.net_arch = list(net_arch)
        self.hyperparameters = dict(n_steps=n_steps, gamma=1.0, **hyperparameters)
        self.model = None
        self._objective: PredictedObjective | None = None
        self._pending_state: dict | None = None

    def _make_model(self, env):
        raise NotImplementedError

    def _score(self, archs):
        return self._objective(archs)

    def _ensure_model(self, objective: PredictedObjective) -> None:
        self._objective = objective
        if self.model is not None:
            return
        env = make_vec_env(self.space, self._score, n_envs=self.n_envs, seed=self.seed,
                           progressive=self.progressive, invalid_actions=self.invalid_actions)
        self.model = self._make_model(env)
        # A logger of our own: stable-baselines3 otherwise makes an empty $TMPDIR/SB3-<time>/ folder per learn().
        self.model.set_logger(quiet_logger())
        if self._pending_state is not None:
            self._restore(self._pending_state)
            self._pending_state = None

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        import torch

        self._ensure_model(objective)
        steps_per_arch = max(1.0, self._mean_episode_length())
        timesteps = int(np.ceil(n_archs * steps_per_arch / (self.n_envs * self.n_steps)))
        timesteps *= self.n_envs * self.n_steps
        # The policy is tiny: one thread is ~10x faster than a thread pool on a busy 2-core machine.
        threads = torch.get_num_threads()
        numpy_state = np.random.get_state()
        torch.set_num_threads(1)
        try:
            run_seed = (self.seed * 1_000_003 + self.model.num_timesteps) % 2**32
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(run_seed)
                np.random.seed(run_seed)
                restart_rollouts(self.model, self.n_envs)
                self.model.learn(total_timesteps=timesteps, reset_num_timesteps=False)
        finally:
            np.random.set_state(numpy_state)
            torch.set_num_threads(threads)

    def _mean_episode_length(self) -> float:
        rng = np.random.default_rng(0)
        return float(np.mean([len(self.space.sample(rng)) for _ in range(64)]))

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.model is not None:
            state["policy"] = {k: v.cpu() for k, v in self.model.policy.state_dict().items()}
            state["optimizer"] = self.model.policy.optimizer.state_dict()
            state["num_timesteps"] = self.model.num_timesteps
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "policy" in state:
            if self.model is None:
                self._pending_state = state
            else:
                self._restore(state)

    def _restore(self, state: dict) -> None:
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["optimizer"])
        self.model.num_timesteps = state["num_timesteps"]


@CONTROLLERS.register("ppo")
class PPOController(SB3Controller):
    """PPO with invalid-action masking (sb3-contrib ``MaskablePPO``).

    Clipped surrogate objective, value baseline and entropy bonus as in Schulman et al. 2017. A rollout is
    128 environments x 8 steps (1,024 steps, ~170 episodes): the same rollout and update as 32 x 32, with a
    quarter of the environment steps and predictor calls (a PPO search on NAS-Bench-201 ~16% faster).

    Args:
        n_envs: Parallel environments (architectures built at once).
        n_steps: Steps per environment per rollout.
        batch_size: Minibatch size of the PPO update.
        n_epochs: Passes over each rollout.
        learning_rate: Adam step size.
        clip_range: PPO clipping of the probability ratio.
        ent_coef: Weight of the entropy bonus.
        gae_lambda: GAE parameter.
        net_arch: Hidden layer sizes of the policy and value networks.
    """

    name = "ppo"

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", n_envs: int = 128,
                 n_steps: int = 8, batch_size: int = 256, n_epochs: int = 4, learning_rate: float = 1e-3,
                 clip_range: float = 0.2, ent_coef: float = 0.01, gae_lambda: float = 0.95,
                 net_arch: tuple[int, ...] = (64, 64)) -> None:
        super().__init__(space, seed=seed, mode=mode, n_envs=n_envs, n_steps=n_steps, net_arch=net_arch,
                         batch_size=batch_size, n_epochs=n_epochs, learning_rate=learning_rate,
                         clip_range=clip_range, ent_coef=ent_coef, gae_lambda=gae_lambda)

    def _make_model(self, env):
        from sb3_contrib import MaskablePPO

        return MaskablePPO("MlpPolicy", env, seed=self.seed, verbose=0, device="cpu",
                           policy_kwargs={"net_arch": self.net_arch}, **self.hyperparameters)


@CONTROLLERS.register("a2c")
class A2CController(SB3Controller):
    """Synchronous advantage actor-critic (stable-baselines3 ``A2C``, Mnih et al. 2016).

    Neither stable-baselines3 nor sb3-contrib offers a masked A2C, so the environment maps an invalid action
    ``a`` to ``a % n_valid`` (``invalid_actions="modulo"``): every action is legal, and decisions with fewer
    choices than the action space get some choices from more than one action (a slight prior towards the
    first choices; the policy learns around it).

    Args:
        n_envs: Parallel environments.
        n_steps: Steps per environment per update.
        learning_rate: RMSprop step size.
        ent_coef: Weight of the entropy bonus.
        vf_coef: Weight of the value loss.
        gae_lambda: GAE parameter (1: plain n-step advantages).
        net_arch: Hidden layer sizes of the policy and value networks.
    """

    name = "a2c"
    invalid_actions = "modulo"

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", n_envs: int = 32,
                 n_steps: int = 8, learning_rate: float = 1e-3, ent_coef: float = 0.01, vf_coef: float = 0.5,
                 gae_lambda: float = 1.0, net_arch: tuple[int, ...] = (64, 64)) -> None:
        super().__init__(space, seed=seed, mode=mode, n_envs=n_envs, n_steps=n_steps, net_arch=net_arch,
                         learning_rate=learning_rate, ent_coef=ent_coef, vf_coef=vf_coef, gae_lambda=gae_lambda)

    def _make_model(self, env):
        from stable_baselines3 import A2C

        return A2C("MlpPolicy", env, seed=self.seed, verbose=0, device="cpu",
                   policy_kwargs={"net_arch": self.net_arch}, **self.hyperparameters)
