"""Training: the recipe, the trainer, evaluators (training or a table) and the store of every evaluation.

Typical use::

    from hwnas.data import resolve_dataset
    from hwnas.spaces import create_space
    from hwnas.training import EvalStore, Recipe

    space, dataset = create_space("mobilenet"), resolve_dataset("digits")
    with EvalStore("evals.sqlite") as store:
        record = store.evaluate(space, "16:k3e3/24:k5e3/32:k3e6/48:k7e1", dataset, recipe=Recipe(), seed=0)
    print(record.val_accuracy, record.reused)
"""

from hwnas.training.evaluator import Evaluator, Trainer
from hwnas.training.recipe import DEFAULT_RECIPE, Recipe, RecipeError
from hwnas.training.store import (DEFAULT_STORE, EvalKey, EvalRecord, EvalStore, StoreError, as_evaluator,
                                  default_store_path, make_key, space_key)
from hwnas.training.table import AccuracyTable, TableError, TableEvaluator
from hwnas.training.trainer import TrainingError, TrainResult, available_cores, train

__all__ = ["DEFAULT_RECIPE", "DEFAULT_STORE", "AccuracyTable", "EvalKey", "EvalRecord", "EvalStore",
           "Evaluator", "Recipe", "RecipeError", "StoreError", "TableError", "TableEvaluator", "TrainResult",
           "Trainer", "TrainingError", "as_evaluator", "available_cores", "default_store_path", "make_key",
           "space_key", "train"]
