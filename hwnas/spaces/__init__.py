"""Search spaces, in a registry: ``create_space("mobilenet")``; adding one = one module + registration."""

from __future__ import annotations

from hwnas.errors import HwnasError
from hwnas.registry import Registry
from hwnas.spaces.base import Decision, SearchSpace, Unit

SPACES: Registry[SearchSpace] = Registry("search space")
register_space = SPACES.register


class SpaceOptionError(HwnasError, TypeError, ValueError):
    """A space option the space does not take, or one outside its range (a TypeError for an unknown keyword and
    a ValueError for a bad value, as Python callers of the constructor expect)."""


def create_space(name: str, **kwargs) -> SearchSpace:
    """The registered space ``name``, built with keyword arguments (its defaults when none are given).

    Raises:
        RegistryError: no such space.
        SpaceOptionError: an option the constructor does not take, or a value outside its range (the space
            checks its own arguments), as one line naming the space.
    """
    import inspect

    factory = SPACES.get(name)
    try:
        params = dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # no signature to read: the call below says what is wrong
        params = {}
    if params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        taken = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unknown = [key for key in kwargs if key not in taken]
        if unknown:
            raise SpaceOptionError(f"space {name!r} does not take these options: {', '.join(unknown)} "
                                   f"(its options: {', '.join(taken) or 'none'})")
    try:
        return factory(**kwargs)
    except HwnasError:
        raise
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise SpaceOptionError(f"space {name!r}: {exc}") from None


# Import every space module so that each registers itself.
from hwnas.spaces import mobilenet, nb201  # noqa: E402,F401

__all__ = ["SPACES", "Decision", "SearchSpace", "SpaceOptionError", "Unit", "create_space", "register_space"]
