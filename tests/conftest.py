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


def nb201_latency_of(s: str) -> float:
    """A synthetic nb201 latency: convolutions cost, everything else almost nothing."""
    return round(0.2 + 0.12 * s.count("nor_conv_3x3") + 0.04 * s.count("nor_conv_1x1"), 6)


@pytest.fixture(scope="session")
def latency_table(tmp_path_factory):
    """A ``arch,latency_ms`` table of every nb201 cell (:func:`nb201_latency_of`)."""
    from hwnas.spaces import create_space

    path = tmp_path_factory.mktemp("tables") / "lat.csv"
    strings = [a.string for a in create_space("nb201").enumerate()]
    path.write_text("arch,latency_ms\n" + "".join(f"{s},{nb201_latency_of(s)}\n" for s in strings))
    return path
