"""REINFORCE with a moving-average baseline: Zoph & Le's (2017) original NAS controller.

An autoregressive recurrent policy: at each step a GRU cell reads the embedding of the decision to make plus
that of the previous action, and a per-decision softmax head (masked to the decision's choices) picks the
action. A batch of episodes is sampled (architectures scored together), and the policy follows

    grad J = mean over episodes and steps of (G_t - b_d) * grad log pi(a_t | s_t) + ent_coef * grad H

with ``G_t`` the return from step ``t`` (``gamma = 1``; in one-shot mode the architecture's reward) and
``b_d`` an exponential moving average of the returns seen at decision ``d`` (Zoph & Le's baseline). Written by
hand in torch because no maintained library ships it on Gymnasium; actions are drawn with the controller's
numpy generator, so the checkpoint (weights, optimiser, baseline, generator) resumes exactly.
"""

from __future__ import annotations

import numpy as np

from hwnas.search.controllers.base import CONTROLLERS, Controller
from hwnas.search.controllers.episodes import run_episodes, sample_masked
from hwnas.search.objective import PredictedObjective
from hwnas.spaces.base import SearchSpace


def _policy(n_decisions: int, n_actions: int, hidden: int):
    import torch
    from torch import nn

    class AutoregressivePolicy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decision_embedding = nn.Embedding(n_decisions, hidden)
            self.action_embedding = nn.Embedding(n_actions + 1, hidden)  # index 0: no previous action
            self.cell = nn.GRUCell(hidden, hidden)
            self.heads = nn.Linear(hidden, n_decisions * n_actions)

        def forward(self, h: torch.Tensor, positions: torch.Tensor, previous: torch.Tensor):
            h = self.cell(self.decision_embedding(positions) + self.action_embedding(previous + 1), h)
            logits = self.heads(h).view(-1, n_decisions, n_actions)[torch.arange(len(positions)), positions]
            return h, logits

    return AutoregressivePolicy()


@CONTROLLERS.register("reinforce")
class ReinforceController(Controller):
    """Zoph & Le's REINFORCE controller (autoregressive GRU policy, moving-average baseline, entropy bonus).

    Args:
        batch_size: Episodes (architectures) per policy update, scored together.
        learning_rate: Adam step size.
        hidden: GRU width.
        ent_coef: Weight of the entropy bonus.
        baseline_decay: Decay of the moving-average baseline (Zoph & Le: 0.95-0.99 with far fewer updates).
    """

    name = "reinforce"

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", batch_size: int = 64,
                 learning_rate: float = 5e-3, hidden: int = 64, ent_coef: float = 0.01,
                 baseline_decay: float = 0.9) -> None:
        import torch

        super().__init__(space, seed=seed, mode=mode)
        self.batch_size = batch_size
        self.ent_coef = ent_coef
        self.baseline_decay = baseline_decay
        n_decisions = len(space.decisions)
        self.n_actions = max(len(d.choices) for d in space.decisions)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = _policy(n_decisions, self.n_actions, hidden)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=learning_rate)
        self.baseline = np.zeros(n_decisions)
        self.baseline_seen = np.zeros(n_decisions, dtype=bool)

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            spent = 0
            while spent < n_archs:
                self._update(objective, self.batch_size)
                spent += self.batch_size
        finally:
            torch.set_num_threads(threads)

    def _update(self, objective: PredictedObjective, count: int) -> None:
        import torch

        hidden = torch.zeros(count, self.policy.cell.hidden_size)
        log_probs: dict[tuple[int, int], torch.Tensor] = {}
        entropies: list[torch.Tensor] = []
        steps = np.zeros(count, dtype=np.int64)

        def act(alive, positions, previous, masks):
            nonlocal hidden
            index = torch.as_tensor(alive)
            h, logits = self.policy(hidden[index], torch.as_tensor(positions), torch.as_tensor(previous))
            hidden = hidden.index_copy(0, index, h)
            mask = torch.as_tensor(masks)
            logits = logits.masked_fill(~mask, float("-inf"))
            log_p = torch.log_softmax(logits, dim=1)
            probs = log_p.exp()
            actions = sample_masked(probs.detach().numpy(), self.rng)
            chosen = log_p[torch.arange(len(alive)), torch.as_tensor(actions)]
            for row, episode in enumerate(alive):
                log_probs[(int(episode), int(steps[episode]))] = chosen[row]
            steps[alive] += 1
            entropies.append(-(probs * log_p.masked_fill(~mask, 0.0)).sum(dim=1))
            return actions

        episodes = run_episodes(self.space, objective, count, act,
                                progressive=self.progressive)
        terms, returns_by_decision = [], {}
        for e, episode in enumerate(episodes):
            returns = np.cumsum(episode.rewards[::-1])[::-1]
            for t, (position, ret) in enumerate(zip(episode.positions, returns)):
                base = self.baseline[position] if self.baseline_seen[position] else ret
                terms.append(log_probs[(e, t)] * float(ret - base))
                returns_by_decision.setdefault(position, []).append(ret)
        loss = -torch.stack(terms).sum() / count - self.ent_coef * torch.cat(entropies).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        for position, values in returns_by_decision.items():
            mean = float(np.mean(values))
            if self.baseline_seen[position]:
                decay = self.baseline_decay
                self.baseline[position] = decay * self.baseline[position] + (1 - decay) * mean
            else:
                self.baseline[position], self.baseline_seen[position] = mean, True

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "policy": {k: v.clone() for k, v in self.policy.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "baseline": self.baseline.copy(),
                "baseline_seen": self.baseline_seen.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = np.asarray(state["baseline"], dtype=float).copy()
        self.baseline_seen = np.asarray(state["baseline_seen"], dtype=bool).copy()
