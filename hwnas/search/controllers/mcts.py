"""Monte Carlo tree search (UCT, Kocsis & Szepesvári 2006) over the decision tree of a space.

**Tree.** A node is a partial architecture: the choices made so far, in the decision order of
:class:`~hwnas.search.env.ArchEnv` (decisions that are inactive for the choices made so far are skipped, as
the environment and :meth:`~hwnas.spaces.base.SearchSpace.is_active` do). A node keeps, per valid action of
its decision, the visit count ``n`` and the summed value ``w`` of that edge; an edge that completes the
architecture has no child node. Nodes are keyed by their action path (a tuple of choice indices).

**A simulation** walks down from the root: while every edge of the node has been tried it follows UCT,
``q(a) + c * sqrt(ln N / n(a))`` with ``q`` the edge's mean value *normalised* to [0, 1] by the lowest and
highest leaf value in the tree (so ``exploration`` does not depend on the reward's scale); at the first node
with an untried edge it takes the untried edge of lowest index (expansion), adds its child node, and completes
the architecture with the rollout policy. The value of the simulation is the predicted reward of the completed
architecture (its leaf); it is added to every edge on the path (mean backup).

**Rollout** (``rollout``): ``"random"`` completes uniformly (the default), ``"epsilon"`` takes, with
probability ``1 - rollout_epsilon``, the choice with the best mean value over every leaf so far at that
decision (all-moves-as-first statistics; untried choices first), else a uniform one; ``"minimal"`` takes the
first (smallest) choice of every remaining decision, the completion progressive mode scores.

**Batching.** ``batch_size`` simulations are selected one after another with a *virtual loss* (each selected
but not yet scored edge counts as a visit of the lowest value in the tree, so later selections of the batch
spread out), their leaves are scored in one objective call, and the values are backed up. One simulation is
one predicted evaluation: :meth:`MCTSController.learn` runs ``n_archs`` of them (a revisited leaf is free: the
objective caches it).

**Re-valuing.** The tree is kept across rounds. Every simulation is recorded as (leaf, number of edges it
updated); when :meth:`~MCTSController.learn` gets a new objective (the predictors were refit), every distinct
leaf of the tree is re-scored in *one* batched call and every edge's ``n`` and ``w`` are recomputed from the
records, so the tree holds exactly what it would hold had the current predictors scored every simulation
(visit counts are unchanged; only the values move). That call costs one prediction per distinct leaf (at most
one per simulation so far) and is not counted in ``n_archs``.

**Progressive mode**: the tree values a leaf by its complete architecture; :meth:`Controller.score` also
scores the partial architectures of each leaf, so they join the candidates for verification.

The checkpoint (:meth:`~MCTSController.state_dict`) holds only JSON types, and restores exactly after a JSON
round trip.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwnas.arch import Arch
from hwnas.search.controllers.base import CONTROLLERS, Controller
from hwnas.search.env import minimal_completion
from hwnas.search.objective import PredictedObjective
from hwnas.spaces.base import SearchSpace

ROLLOUTS = ("random", "epsilon", "minimal")

Path = tuple[int, ...]


class Node:
    """Statistics of the edges leaving one partial architecture.

    Attributes:
        position: Index in ``space.decisions`` of the decision this node makes.
        n: Visits of each valid action's edge.
        w: Summed leaf values of each edge.
        pending: Edges selected in the current batch and not yet backed up (the virtual loss).
    """

    __slots__ = ("position", "n", "w", "pending")

    def __init__(self, position: int, n_actions: int) -> None:
        self.position = position
        self.n = np.zeros(n_actions, dtype=np.int64)
        self.w = np.zeros(n_actions, dtype=np.float64)
        self.pending = np.zeros(n_actions, dtype=np.int64)


@CONTROLLERS.register("mcts")
class MCTSController(Controller):
    """UCT over the decision tree, leaves valued by the predicted objective, kept and re-valued across rounds.

    Args:
        exploration: UCT's constant ``c`` on normalised values (0: greedy on the mean values).
        rollout: ``"random"``, ``"epsilon"`` or ``"minimal"`` (see the module docstring).
        rollout_epsilon: Share of uniform choices of the ``"epsilon"`` rollout.
        batch_size: Simulations selected (with virtual loss) and scored together.
    """

    name = "mcts"

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", exploration: float = 0.5,
                 rollout: str = "random", rollout_epsilon: float = 0.2, batch_size: int = 64) -> None:
        super().__init__(space, seed=seed, mode=mode)
        if rollout not in ROLLOUTS:
            raise ValueError(f"rollout must be one of {ROLLOUTS}, not {rollout!r}")
        if exploration < 0 or batch_size < 1 or not 0 <= rollout_epsilon <= 1:
            raise ValueError("need exploration >= 0, batch_size >= 1 and 0 <= rollout_epsilon <= 1")
        self.exploration = float(exploration)
        self.rollout = rollout
        self.rollout_epsilon = float(rollout_epsilon)
        self.batch_size = int(batch_size)
        self.decisions = list(space.decisions)
        self._index = {d.label: i for i, d in enumerate(self.decisions)}
        n_choices = max(len(d.choices) for d in self.decisions)
        self.nodes: dict[Path, Node] = {}
        self.leaves: dict[str, float] = {}  # leaf string -> its value under the current objective
        self.records: dict[tuple[str, int], int] = {}  # (leaf, edges updated) -> simulations
        self.low, self.high = math.inf, -math.inf  # range of leaf values, for the normalisation
        self.amaf_n = np.zeros((len(self.decisions), n_choices), dtype=np.int64)
        self.amaf_w = np.zeros((len(self.decisions), n_choices), dtype=np.float64)
        self._paths: dict[str, tuple[list[int], list[int]]] = {}  # derived, not saved: leaf -> its path
        self.simulations = 0

    # -- the search ------------------------------------------------------------------------------------------
    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        if self.leaves:
            self.revalue(objective)
        spent = 0
        while spent < n_archs:
            batch = [self._select() for _ in range(min(self.batch_size, n_archs - spent))]
            values = self.score(objective, [arch for _, arch in batch])
            for (path, arch), value in zip(batch, values):
                self._backup(path, arch, float(value))
            spent += len(batch)

    def revalue(self, objective: PredictedObjective) -> None:
        """Re-scores every distinct leaf in one call; recomputes every edge's statistics from the records."""
        strings = list(self.leaves)
        values = objective([self.space.parse(s) for s in strings])
        self.leaves = {s: float(v) for s, v in zip(strings, values)}
        self.low, self.high = min(self.leaves.values()), max(self.leaves.values())
        for node in self.nodes.values():
            node.n[:] = 0
            node.w[:] = 0.0
        self.amaf_n[:] = 0
        self.amaf_w[:] = 0.0
        for (string, depth), count in self.records.items():
            value = self.leaves[string]
            positions, actions = self._path(string)
            for k in range(depth):
                node = self.nodes[tuple(actions[:k])]
                node.n[actions[k]] += count
                node.w[actions[k]] += count * value
            self.amaf_n[positions, actions] += count
            self.amaf_w[positions, actions] += count * value

    def best_path(self) -> dict[str, Any]:
        """The choices of the most visited edges from the root (a partial architecture, for inspection)."""
        chosen: dict[str, Any] = {}
        path: Path = ()
        while path in self.nodes and self.nodes[path].n.any():
            node = self.nodes[path]
            action = int(node.n.argmax())
            chosen[self.decisions[node.position].label] = self.decisions[node.position].choices[action]
            path += (action,)
        return chosen

    def _select(self) -> tuple[list[Node | int], Arch]:
        """One simulation's way down (virtual loss added on its edges) and its completed architecture."""
        chosen: dict[str, Any] = {}
        path: Path = ()
        edges: list = []
        position = self._next_active(0, chosen)
        while True:
            node = self.nodes.get(path)
            if node is None:
                node = self.nodes[path] = Node(position, len(self.decisions[position].choices))
            fresh = np.flatnonzero((node.n == 0) & (node.pending == 0))
            action = int(fresh[0]) if fresh.size else self._uct(node)
            node.pending[action] += 1
            edges.append((node, action))
            decision = self.decisions[position]
            chosen[decision.label] = decision.choices[action]
            path += (action,)
            position = self._next_active(position + 1, chosen)
            if position >= len(self.decisions):
                return edges, self.space.from_mapping(chosen)
            if fresh.size:
                self.nodes[path] = Node(position, len(self.decisions[position].choices))
                return edges, self._complete(chosen, position)

    def _uct(self, node: Node) -> int:
        visits = node.n + node.pending
        spread = self.high - self.low
        if spread > 0:  # pending visits count as the lowest value: q = 0
            q = (node.w - node.n * self.low) / (spread * visits)
        else:
            q = np.zeros(len(visits))
        bonus = self.exploration * np.sqrt(math.log(visits.sum()) / visits)
        return int(np.argmax(q + bonus))

    def _complete(self, chosen: dict[str, Any], position: int) -> Arch:
        if self.rollout == "random":
            return self.space.complete(chosen, self.rng)
        if self.rollout == "minimal":
            return minimal_completion(self.space, chosen)
        chosen = dict(chosen)
        while position < len(self.decisions):
            decision = self.decisions[position]
            k = len(decision.choices)
            if self.rng.random() < self.rollout_epsilon:
                action = int(self.rng.integers(k))
            else:
                n, w = self.amaf_n[position, :k], self.amaf_w[position, :k]
                action = int(np.argmax(np.where(n > 0, w / np.maximum(n, 1), np.inf)))
            chosen[decision.label] = decision.choices[action]
            position = self._next_active(position + 1, chosen)
        return self.space.from_mapping(chosen)

    def _backup(self, edges: list, arch: Arch, value: float) -> None:
        string = arch.string
        for node, action in edges:
            node.pending[action] -= 1
            node.n[action] += 1
            node.w[action] += value
        key = (string, len(edges))
        self.records[key] = self.records.get(key, 0) + 1
        self.leaves[string] = value
        self.low, self.high = min(self.low, value), max(self.high, value)
        positions, actions = self._path(string, arch)
        self.amaf_n[positions, actions] += 1
        self.amaf_w[positions, actions] += value
        self.simulations += 1

    def _next_active(self, index: int, chosen: dict[str, Any]) -> int:
        while index < len(self.decisions) and not self.space.is_active(self.decisions[index], chosen):
            index += 1
        return index

    def _path(self, string: str, arch: Arch | None = None) -> tuple[list[int], list[int]]:
        """Positions and actions of an architecture's active decisions (cached)."""
        path = self._paths.get(string)
        if path is None:
            arch = self.space.parse(string) if arch is None else arch
            decisions = self.space.active_decisions(arch)
            path = self._paths[string] = ([self._index[d.label] for d in decisions],
                                          [d.index(arch[d.label]) for d in decisions])
        return path

    # -- checkpoints -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        empty = not self.leaves  # no range yet: JSON has no infinity
        return {**super().state_dict(), "simulations": self.simulations,
                "low": None if empty else self.low, "high": None if empty else self.high,
                "nodes": {",".join(map(str, path)): [node.position, node.n.tolist(), node.w.tolist()]
                          for path, node in self.nodes.items()},
                "leaves": dict(self.leaves),
                "records": [[string, depth, count] for (string, depth), count in self.records.items()],
                "amaf_n": self.amaf_n.tolist(), "amaf_w": self.amaf_w.tolist()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.simulations = int(state["simulations"])
        empty = state["low"] is None
        self.low = math.inf if empty else float(state["low"])
        self.high = -math.inf if empty else float(state["high"])
        self.nodes = {}
        for key, (position, n, w) in state["nodes"].items():
            path = tuple(int(a) for a in key.split(",")) if key else ()
            node = self.nodes[path] = Node(int(position), len(n))
            node.n[:] = n
            node.w[:] = w
        self.leaves = {str(s): float(v) for s, v in state["leaves"].items()}
        self.records = {(str(s), int(d)): int(c) for s, d, c in state["records"]}
        self.amaf_n = np.array(state["amaf_n"], dtype=np.int64)
        self.amaf_w = np.array(state["amaf_w"], dtype=np.float64)
