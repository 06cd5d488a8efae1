"""Dyna-Q (Sutton 1990; Sutton & Barto 2018, section 8.2): tabular Q-learning from real rewards, plus planning
on a model — here the predictors.

The table, its state ``(decision index, previous action)``, the epsilon-greedy policy and the reverse-order
update are :mod:`~hwnas.search.controllers.tabular`'s Q-learning. Sutton's three parts map onto the search
loop:

- **Direct RL** from *real* experience: the loop hands over the verified architectures with their real
  reward (:meth:`DynaQController.observe`); each new one updates the table once, as an episode that takes its
  choices and ends with the real reward, at the start of the next :meth:`~DynaQController.learn`. In
  progressive mode the partial architectures on the way are valued by the model and the final step by the
  real reward, so the rewards still add up to the real score.
- **Model learning** is the loop's refit of the predictors; the refit model arrives as the new objective.
- **Planning**: ``n_archs`` episodes per :meth:`~DynaQController.learn` drawn from the model — the current
  epsilon-greedy policy's trajectories scored by the objective (Sutton & Barto's *trajectory sampling*), plus
  :class:`~hwnas.search.controllers.tabular.QLearningController`'s replay of remembered model episodes
  (re-scored after a refit). Real episodes are replayed among them: one real update per ``planning_steps``
  model episodes (Sutton's ``n`` planning updates per real one), drawn uniformly from every real episode seen,
  so the real rewards keep anchoring the values that the model's errors would pull away.

Without observations it is Q-learning on the model alone (pure planning).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hwnas.search.controllers.base import CONTROLLERS
from hwnas.search.controllers.episodes import Episode, run_episodes
from hwnas.search.controllers.tabular import QLearningController
from hwnas.search.env import decision_group, partial_architectures
from hwnas.search.objective import PredictedObjective
from hwnas.spaces.base import SearchSpace


@CONTROLLERS.register("dynaq")
class DynaQController(QLearningController):
    """Dyna-Q: Q-learning on real rewards (:meth:`observe`) and on episodes planned with the predictors.

    Args:
        planning_steps: Model episodes per real update (Sutton's ``n``).
        **kwargs: :class:`~hwnas.search.controllers.tabular.TabularController`'s arguments.
    """

    name = "dynaq"

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", planning_steps: int = 10,
                 **kwargs: Any) -> None:
        super().__init__(space, seed=seed, mode=mode, **kwargs)
        if planning_steps < 1:
            raise ValueError(f"planning_steps must be at least 1, not {planning_steps}")
        self.planning_steps = int(planning_steps)
        self.real: dict[str, float] = {}  # verified architecture -> real reward, in the order observed
        self.real_applied = 0  # how many of ``real`` have had their direct update
        self.planned = 0  # model episodes so far
        self.replayed = 0  # real replays so far

    def observe(self, verified: Sequence[tuple[str, float]]) -> None:
        """Real experience: ``(canonical string, real reward)`` of verified architectures, the reward on the
        objective's scale (the loop's reward function of the measured accuracy and latency, without any
        exploration bonus).

        Idempotent: an architecture already observed is not learnt from twice (its reward is updated), so the
        loop may pass every verified architecture so far before every :meth:`learn`, after a resume too.
        """
        for string, reward in verified:
            self.space.parse(string)  # validates
            self.real[string] = float(reward)

    def greedy(self) -> dict[str, Any]:
        """The architecture (as a mapping) the table's greedy policy builds."""
        chosen: dict[str, Any] = {}
        previous = -1
        for position, decision in enumerate(self.space.decisions):
            if self.space.is_active(decision, chosen):
                previous = int(np.argmax(self.q[position, previous + 1, :len(decision.choices)]))
                chosen[decision.label] = decision.choices[previous]
        return chosen

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        self._refresh_memory(objective)
        real = self._real_episodes(objective)
        for episode in real[self.real_applied:]:  # direct RL: each new real episode once
            self._update(episode)
        self.real_applied = len(real)
        spent = 0
        while spent < n_archs:
            episodes = run_episodes(self.space, objective, min(self.batch_size, n_archs - spent), self._act,
                                    progressive=self.progressive)
            self.episodes_seen += len(episodes)
            for episode in episodes:
                self._update(episode)
            self.memory.extend(episodes)
            if self.replay_batch > 0:
                picks = self.rng.choice(len(self.memory), size=min(self.replay_batch, len(self.memory)),
                                        replace=False)
                for i in picks:
                    self._update(self.memory[int(i)])
            self.planned += len(episodes)
            spent += len(episodes)
            if real:
                due = self.planned // self.planning_steps - self.replayed
                for i in self.rng.integers(len(real), size=max(due, 0)):
                    self._update(real[int(i)])
                self.replayed += max(due, 0)

    def _real_episodes(self, objective: PredictedObjective) -> list[Episode]:
        """Every observed architecture as an episode ending with its real reward (partials from the model)."""
        episodes = [self._episode(self.space.parse(string)) for string in self.real]
        partials = [a for e in episodes for a in e.scored[:-1]]  # empty in one-shot mode
        partial_scores = iter(objective(partials) if partials else [])
        for episode, reward in zip(episodes, self.real.values()):
            episode.set_scores([next(partial_scores) for _ in episode.scored[:-1]] + [reward])
        return episodes

    def _episode(self, arch) -> Episode:
        """The episode that builds ``arch`` (what :func:`run_episodes` records), without rewards."""
        active = self.space.active_decisions(arch)
        index = {d.label: i for i, d in enumerate(self.space.decisions)}
        episode = Episode(positions=[index[d.label] for d in active],
                          actions=[d.index(arch[d.label]) for d in active],
                          n_valid=[len(d.choices) for d in active])
        if self.progressive:
            episode.score_steps = [t for t in range(len(active) - 1)
                                   if decision_group(active[t].label) != decision_group(active[t + 1].label)]
            episode.scored = partial_architectures(self.space, arch)
        episode.score_steps.append(len(active) - 1)
        episode.scored.append(arch)
        return episode

    # -- checkpoints -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "q": self.q.tolist(), "real": [[s, r] for s, r in self.real.items()],
                "real_applied": self.real_applied, "planned": self.planned, "replayed": self.replayed}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.real = {str(s): float(r) for s, r in state["real"]}
        self.real_applied = int(state["real_applied"])
        self.planned, self.replayed = int(state["planned"]), int(state["replayed"])
