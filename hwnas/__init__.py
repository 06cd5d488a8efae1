"""hwnas: hardware-aware, predictor-driven neural architecture search."""

__version__ = "0.1.0"

__all__ = ["__version__"]
