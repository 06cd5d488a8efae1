"""Predictors of latency and accuracy: featurisation, XGBoost ensembles, quality metrics, persistence."""

from hwnas.predictors.additive import AdditiveLatencyPredictor
from hwnas.predictors.base import Predictor
from hwnas.predictors.features import ArchFeaturizer
from hwnas.predictors.model import (PREDICTORS, AccuracyPredictor, LatencyPredictor, PredictorError, XGBPredictor,
                                    read_meta)
from hwnas.predictors.quality import assess
from hwnas.predictors.transfer import LatencySource, TransferLatencyPredictor

__all__ = ["PREDICTORS", "AccuracyPredictor", "AdditiveLatencyPredictor", "ArchFeaturizer", "LatencyPredictor",
           "LatencySource", "Predictor", "PredictorError", "TransferLatencyPredictor", "XGBPredictor", "assess",
           "read_meta"]
