"""Shared fixtures: small spaces and helpers for CLI tests."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from hwnas.cli import main


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def cli():
    """Runs ``hwnas ARGS...`` in-process; returns click's Result (stdout and stderr kept apart)."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, [str(a) for a in args], prog_name="hwnas")

    return run
