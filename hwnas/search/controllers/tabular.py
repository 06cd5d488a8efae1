"""Tabular value-based controllers in the MetaQNN style (Baker et al. 2017): Q-learning and SARSA.

The state is ``(decision index, previous action)`` — MetaQNN's "layer depth and previous layer" — so the
table has ``decisions x (actions + 1) x actions`` entries whatever the size of the space. Actions are chosen
epsilon-greedily (ties broken at random) with epsilon decaying from ``epsilon_start`` to ``epsilon_end``
exponentially over ``epsilon_decay_archs`` architectures (MetaQNN lowers it in steps from 1.0 to 0.1). Each
batch of episodes is scored together; the table is then updated episode by episode in *reverse* step order
(MetaQNN's trick: the final reward reaches the first decision in one pass), with ``gamma = 1``:

- ``qlearning``: ``Q(s,a) += alpha * (r + max_a' Q(s',a') - Q(s,a))`` (off-policy), plus experience replay:
  every finished episode enters a replay memory and ``replay_batch`` stored episodes are replayed after each
  batch. When the predictors are refit (a new objective), the memory's architectures are rescored in one
  batched call so that replayed rewards are current.
- ``sarsa``: ``Q(s,a) += alpha * (r + Q(s',a') - Q(s,a))`` with the action actually taken next (on-policy):
  it learns from its own fresh episodes only, so it has no replay memory.
"""

from __future__ import annotations

import collections

import numpy as np

from hwnas.search.controllers.base import CONTROLLERS, Controller
from hwnas.search.controllers.episodes import Episode, run_episodes
from hwnas.search.objective import PredictedObjective
from hwnas.spaces.base import SearchSpace


class TabularController(Controller):
    """Shared machinery of the tabular controllers.

    Args:
        batch_size: Episodes per batch (scored together).
        learning_rate: Step size alpha of the table update.
        epsilon_start: Exploration rate at the start.
        epsilon_end: Exploration rate it decays to.
        epsilon_decay_archs: Architectures over which epsilon falls by a factor e (towards ``epsilon_end``).
        q_init: Initial value of every table entry (MetaQNN: 0.5, for rewards in [0, 1]).
    """

    replay = False

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", batch_size: int = 64,
                 learning_rate: float = 0.1, epsilon_start: float = 1.0, epsilon_end: float = 0.05,
                 epsilon_decay_archs: float = 1000.0, q_init: float = 0.5, replay_size: int = 2000,
                 replay_batch: int = 64) -> None:
        super().__init__(space, seed=seed, mode=mode)
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.epsilon_start, self.epsilon_end = epsilon_start, epsilon_end
        self.epsilon_decay_archs = epsilon_decay_archs
        self.replay_size, self.replay_batch = replay_size, replay_batch
        n_actions = max(len(d.choices) for d in space.decisions)
        self.q = np.full((len(space.decisions), n_actions + 1, n_actions), float(q_init))
        self.episodes_seen = 0
        self.memory: collections.deque[Episode] = collections.deque(maxlen=replay_size)

    @property
    def epsilon(self) -> float:
        decay = np.exp(-self.episodes_seen / self.epsilon_decay_archs)
        return float(self.epsilon_end + (self.epsilon_start - self.epsilon_end) * decay)

    def _refresh_memory(self, objective: PredictedObjective) -> None:
        """Re-scores the remembered episodes with the (possibly refit) objective, in one call."""
        if not self.memory:
            return
        episodes = list(self.memory)
        scores = objective([arch for episode in episodes for arch in episode.scored])
        start = 0
        for episode in episodes:
            episode.set_scores(scores[start:start + len(episode.scored)])
            start += len(episode.scored)

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        if self.replay:  # the predictors may have been refit: refresh the stored rewards
            self._refresh_memory(objective)
        spent = 0
        while spent < n_archs:
            episodes = run_episodes(self.space, objective, self.batch_size, self._act, progressive=self.progressive)
            self.episodes_seen += len(episodes)
            for episode in episodes:
                self._update(episode)
            if self.replay:
                self.memory.extend(episodes)
                picks = self.rng.choice(len(self.memory), size=min(self.replay_batch, len(self.memory)),
                                        replace=False)
                for i in picks:
                    self._update(self.memory[int(i)])
            spent += len(episodes)

    def _act(self, alive, positions, previous, masks) -> np.ndarray:
        n_valid = masks.sum(axis=1)
        values = self.q[positions, previous + 1]
        noise = self.rng.random(values.shape) * 1e-9  # random tie-breaking among equal values
        values = np.where(masks, values + noise, -np.inf)
        greedy = values.argmax(axis=1)
        explore = self.rng.random(len(alive)) < self.epsilon
        random_actions = (self.rng.random(len(alive)) * n_valid).astype(np.int64)
        return np.where(explore, random_actions, greedy)

    def _next_value(self, episode: Episode, t: int, previous: np.ndarray) -> float:
        raise NotImplementedError

    def _update(self, episode: Episode) -> None:
        previous = episode.previous_actions
        for t in reversed(range(len(episode.actions))):
            target = episode.rewards[t]
            if t + 1 < len(episode.actions):
                target += self._next_value(episode, t + 1, previous)
            entry = (episode.positions[t], previous[t] + 1, episode.actions[t])
            self.q[entry] += self.learning_rate * (target - self.q[entry])

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "q": self.q.copy(), "episodes_seen": self.episodes_seen,
                "memory": [episode.to_state() for episode in self.memory]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.q = np.asarray(state["q"], dtype=float).copy()
        self.episodes_seen = int(state["episodes_seen"])
        self.memory = collections.deque((Episode.from_state(e, self.space) for e in state["memory"]),
                                        maxlen=self.replay_size)


@CONTROLLERS.register("qlearning")
class QLearningController(TabularController):
    """Tabular Q-learning with experience replay (MetaQNN). See :class:`TabularController` for the arguments;
    ``replay_size`` episodes are remembered and ``replay_batch`` replayed after every batch."""

    name = "qlearning"
    replay = True

    def _next_value(self, episode: Episode, t: int, previous: np.ndarray) -> float:
        state = self.q[episode.positions[t], previous[t] + 1]
        return float(state[: episode.n_valid[t]].max())


@CONTROLLERS.register("sarsa")
class SarsaController(TabularController):
    """Tabular SARSA: the on-policy counterpart of Q-learning (no replay). See :class:`TabularController`."""

    name = "sarsa"

    def _next_value(self, episode: Episode, t: int, previous: np.ndarray) -> float:
        return float(self.q[episode.positions[t], previous[t] + 1, episode.actions[t]])
