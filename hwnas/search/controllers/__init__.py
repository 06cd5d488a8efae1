"""Controllers propose architectures and learn from the predicted objective; a registry holds them.

=============  ============================================================================================
``ppo``        sb3-contrib's MaskablePPO on the Gymnasium environment (the default)
``a2c``        stable-baselines3's A2C (no masking: invalid actions are mapped modulo the valid count)
``reinforce``  Zoph & Le's autoregressive (GRU) policy with a moving-average baseline, by hand in torch
``qlearning``  tabular Q-learning, MetaQNN-style: decaying epsilon-greedy, experience replay
``sarsa``      tabular SARSA, the on-policy counterpart
``dynaq``      Dyna-Q: tabular Q-learning on real (verified) rewards plus planning episodes on the predictors
``mcts``       Monte Carlo tree search (UCT) over the decision tree, kept and re-valued across rounds
``random``     uniform random search, the baseline
``evolution``  regularised (aging) evolution, Real et al. 2019
=============  ============================================================================================
"""

from hwnas.search.controllers.base import CONTROLLERS, MODES, Controller, create_controller
from hwnas.search.controllers import (baselines, dynaq, mcts, reinforce, sb3,  # noqa: F401  (registers them)
                                      tabular)
from hwnas.search.controllers.baselines import EvolutionController, RandomController
from hwnas.search.controllers.dynaq import DynaQController
from hwnas.search.controllers.mcts import MCTSController
from hwnas.search.controllers.reinforce import ReinforceController
from hwnas.search.controllers.sb3 import A2CController, PPOController
from hwnas.search.controllers.tabular import QLearningController, SarsaController

__all__ = ["CONTROLLERS", "MODES", "Controller", "create_controller", "RandomController", "EvolutionController",
           "PPOController", "A2CController", "ReinforceController", "QLearningController", "SarsaController",
           "DynaQController", "MCTSController"]
