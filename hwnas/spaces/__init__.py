"""Search spaces, in a registry: ``create_space("mobilenet")``; adding one = one module + registration."""

from __future__ import annotations

from hwnas.registry import Registry
from hwnas.spaces.base import Decision, SearchSpace, Unit

SPACES: Registry[SearchSpace] = Registry("search space")
register_space = SPACES.register


def create_space(name: str, **kwargs) -> SearchSpace:
    """The registered space ``name``, built with keyword arguments (its defaults when none are given)."""
    return SPACES.create(name, **kwargs)


# Import every space module so that each registers itself.
from hwnas.spaces import mobilenet, nb201  # noqa: E402,F401

__all__ = ["SPACES", "Decision", "SearchSpace", "Unit", "create_space", "register_space"]
