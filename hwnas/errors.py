"""Exception types that carry a message meant for the user.

Every failure a user can cause (bad flag, malformed architecture, unwritable path, ...) is raised as a
:class:`HwnasError` subclass; the CLI prints its message as one line on stderr and exits non-zero.
"""


class HwnasError(Exception):
    """Base class of all user-facing errors."""


class ArchError(HwnasError, ValueError):
    """An architecture string or mapping is malformed or outside its search space."""


class RegistryError(HwnasError, KeyError):
    """A name was looked up in a registry that does not hold it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ProfileError(HwnasError):
    """A device profile is missing, unreadable, corrupt, or measured under other conditions (also the base of
    :class:`hwnas.runtimes.ProviderError`: a runtime or provider not usable for measuring)."""


class ExportError(HwnasError):
    """ONNX export, checking or parity verification failed."""


class ShapeError(HwnasError, ValueError):
    """An input shape is malformed or unusable."""
