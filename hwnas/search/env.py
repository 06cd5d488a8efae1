"""The Gymnasium environment every controller plugs into: an episode builds one architecture.

One step = one decision of the space, in canonical order; decisions that do not exist for the choices made
so far (a block beyond a stage's depth) are skipped. The action space is ``Discrete(max choices)`` with an
action mask for decisions that have fewer choices (sb3-contrib's ``MaskablePPO`` reads ``action_masks()``).
The observation is the decisions so far (one-hot per decision) plus a one-hot of the current step. The reward
comes from an objective at the end of the episode; :class:`BatchedArchVecEnv` defers it so that all
architectures finished in one vectorised step are scored with one batched predictor call.

**Progressive mode** (``progressive=True``): the architecture grows one *group* of decisions at a time — a
group is the part of a decision's label before its first ``.``, i.e. one stage for ``mobilenet`` (width,
depth and its blocks) and one cell edge for ``nb201``. When a group is complete, the partial architecture is
completed into a valid one by :func:`minimal_completion` (every decision not made yet takes its first,
smallest choice: width/depth/kernel/expansion minimal and no SE for mobilenet, ``none`` for nb201 edges), it
is scored, and the reward of that step is the *improvement* of the score over the previous partial
architecture (the first one is compared with 0). The rewards of an episode therefore add up to the final
architecture's score, exactly the one-shot return; only its timing differs (reward shaping).

**Invalid actions**: by default a masked-out action raises. ``invalid_actions="modulo"`` maps an action
``a`` to ``a % n_valid`` instead, for agents that cannot mask (stable-baselines3's A2C).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from hwnas.arch import Arch
from hwnas.spaces.base import SearchSpace

ScoreFn = Callable[[Sequence[Arch]], np.ndarray]


def decision_group(label: str) -> str:
    """The progressive-mode group of a decision: its label up to the first ``.`` (a stage, a cell edge)."""
    return label.split(".", 1)[0]


def minimal_completion(space: SearchSpace, partial: Mapping[str, Any]) -> Arch:
    """The valid architecture that keeps ``partial``'s active choices and takes every other decision's first
    (smallest) choice."""
    chosen: dict[str, Any] = {}
    for decision in space.decisions:
        if space.is_active(decision, chosen):
            chosen[decision.label] = partial.get(decision.label, decision.choices[0])
    return space.from_mapping(chosen)


def partial_architectures(space: SearchSpace, arch: Arch) -> list[Arch]:
    """The minimal completions of ``arch`` after each of its groups but the last (what progressive mode
    scores on the way to ``arch``)."""
    partial: dict[str, Any] = {}
    out = []
    active = space.active_decisions(arch)
    for i, decision in enumerate(active[:-1]):
        partial[decision.label] = arch[decision.label]
        if decision_group(decision.label) != decision_group(active[i + 1].label):
            out.append(minimal_completion(space, partial))
    return out


INVALID_ACTIONS = ("raise", "modulo")


class ArchEnv(gym.Env):
    """Builds one architecture of ``space`` per episode; reward = ``score([arch])[0]`` at the end.

    Args:
        space: The search space.
        score: Maps a batch of architectures to rewards. None defers the reward (``info["arch"]`` holds the
            architecture to score; the vectorised env fills the reward in).
        progressive: Score the minimal completion after every group of decisions and reward improvements.
        invalid_actions: ``"raise"`` on a masked-out action, or ``"modulo"`` to map it to a valid one.
    """

    metadata = {"render_modes": []}

    def __init__(self, space: SearchSpace, score: ScoreFn | None = None, *, progressive: bool = False,
                 invalid_actions: str = "raise") -> None:
        super().__init__()
        if invalid_actions not in INVALID_ACTIONS:
            raise ValueError(f"invalid_actions must be one of {INVALID_ACTIONS}, not {invalid_actions!r}")
        self.space = space
        self.score = score
        self.progressive = bool(progressive)
        self.invalid_actions = invalid_actions
        self._last_score = 0.0
        self.decisions = list(space.decisions)
        self._sizes = [len(d.choices) for d in self.decisions]
        self._offsets = np.cumsum([0] + self._sizes)
        self.n_actions = max(self._sizes)
        obs_size = int(self._offsets[-1]) + len(self.decisions) + 1
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(obs_size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.n_actions)
        self._chosen: dict[str, Any] = {}
        self._step = 0
        self._obs = np.zeros(obs_size, dtype=np.float32)  # choices so far (one-hot) + position, kept up to date

    # -- episode ---------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._chosen = {}
        self._last_score = 0.0
        self._obs[:] = 0.0
        self._step = self._next_active(0)
        return self._observation(), {}

    @property
    def position(self) -> int:
        """Index (in ``space.decisions``) of the decision the next action makes; ``len(decisions)`` at the end."""
        return self._step

    def step(self, action):
        action = int(action)
        decision = self.decisions[self._step]
        if not 0 <= action < len(decision.choices):
            if self.invalid_actions == "raise" or action < 0:
                raise ValueError(f"action {action} is masked out for {decision.label} "
                                 f"({len(decision.choices)} choices)")
            action %= len(decision.choices)
        self._chosen[decision.label] = decision.choices[action]
        self._obs[self._offsets[self._step] + action] = 1.0
        self._step = self._next_active(self._step + 1)
        done = self._step >= len(self.decisions)
        if done:
            arch = self.space.from_mapping(self._chosen)
        elif self.progressive and decision_group(decision.label) != decision_group(
                self.decisions[self._step].label):
            arch = minimal_completion(self.space, self._chosen)
        else:
            return self._observation(), 0.0, False, False, {}
        reward = 0.0
        if self.score is not None:
            score = float(self.score([arch])[0])
            reward, self._last_score = score - self._last_score, score
        info = {"arch": arch} if done else {"arch": arch, "partial": True}
        return self._observation(), reward, done, False, info

    def action_masks(self) -> np.ndarray:
        """True for the valid actions of the current decision."""
        mask = np.zeros(self.n_actions, dtype=bool)
        if self._step < len(self.decisions):
            mask[: self._sizes[self._step]] = True
        else:
            mask[0] = True
        return mask

    # -- helpers ---------------------------------------------------------------------------------------------
    def _next_active(self, index: int) -> int:
        while index < len(self.decisions) and not self.space.is_active(self.decisions[index], self._chosen):
            index += 1
        return index

    def _observation(self) -> np.ndarray:
        """One-hot of every choice made so far, then one-hot of the position (a fresh array)."""
        obs = self._obs.copy()
        obs[int(self._offsets[-1]) + self._step] = 1.0
        return obs


def make_vec_env(space: SearchSpace, score: ScoreFn, *, n_envs: int = 16, seed: int = 0, progressive: bool = False,
                 invalid_actions: str = "raise"):
    """A :class:`BatchedArchVecEnv` of ``n_envs`` environments scored by ``score`` in batches."""
    env = BatchedArchVecEnv([lambda: ArchEnv(space, score=None, progressive=progressive,
                                             invalid_actions=invalid_actions) for _ in range(n_envs)], score)
    env.seed(seed)
    return env


class RewardShaper:
    """Turns the deferred scores of ``n`` parallel episodes into rewards: one batched ``score`` call per step;
    the reward is the improvement over the episode's previous score (its only score in one-shot mode)."""

    def __init__(self, n: int) -> None:
        self.last = np.zeros(n, dtype=np.float64)

    def reset(self) -> None:
        self.last[:] = 0.0

    def __call__(self, score: ScoreFn, infos: Sequence[dict], dones: Sequence[bool]) -> np.ndarray:
        rewards = np.zeros(len(infos), dtype=np.float32)
        scored = [i for i, info in enumerate(infos) if "arch" in info]
        if scored:
            values = np.asarray(score([infos[i]["arch"] for i in scored]), dtype=np.float64)
            for i, value in zip(scored, values):
                rewards[i] = value - self.last[i]
                self.last[i] = 0.0 if dones[i] else value
        return rewards


class _LazyVecEnv:
    """Defers importing stable-baselines3 until a vectorised env is made."""

    def __call__(self, *args, **kwargs):
        from hwnas.search.sb3_compat import batched_vec_env_class

        return batched_vec_env_class(RewardShaper)(*args, **kwargs)


BatchedArchVecEnv = _LazyVecEnv()
