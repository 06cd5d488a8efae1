"""Shared CLI plumbing: the error-handling command group, logging set-up and reusable option types."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

import click

from hwnas.errors import HwnasError
from hwnas.shapes import MAX_BATCH, MAX_EPOCHS, MAX_SEED, parse_input_shape

EXIT_INTERRUPTED = 130


def fail(message: str, code: int = 1) -> "None":
    """Prints one ``Error: ...`` line on stderr and exits with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


class HwnasGroup(click.Group):
    """A click group whose every failure is one clear line on stderr and a non-zero exit, never a traceback.

    - usage errors (bad flag, bad value): exit 2;
    - :class:`~hwnas.errors.HwnasError` and file-system errors: exit 1;
    - Ctrl-C: exit 130 (long jobs keep what they finished: they write atomically and resume).
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra: Any):
        if not standalone_mode:  # programmatic use keeps click's behaviour
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            fail(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("interrupted; finished work is kept", EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            fail("interrupted; finished work is kept", EXIT_INTERRUPTED)
        except HwnasError as exc:
            fail(str(exc))
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            fail(f"{where}{exc.strerror or exc}")
        sys.exit(rv if isinstance(rv, int) else 0)


class OwnLoggers(logging.Filter):
    """Lets hwnas's own records through from ``level``, every other library's only from WARNING."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "hwnas" or record.name.startswith("hwnas.")
        return record.levelno >= (self.level if own else logging.WARNING)


def setup_logging(verbosity: int, quiet: bool = False) -> None:
    """WARNING by default (and with ``-q``), INFO with ``-v``, DEBUG with ``-vv``, on stderr; the verbosity raises
    only hwnas's own loggers (PIL's, matplotlib's or onnx's debug output stays off)."""
    level = logging.WARNING if verbosity <= 0 or quiet else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(OwnLoggers(level))
    logging.getLogger("hwnas").setLevel(level)


def stderr_echo(message: str = "") -> None:
    """``click.echo`` to stderr: the progress lines of a command whose stdout is ``--json``."""
    click.echo(message, err=True)


#: Where ``hwnas -q`` is recorded: the click context's ``meta``, shared by the group and every subcommand.
QUIET_KEY = "hwnas.quiet"


def set_quiet(ctx: click.Context, quiet: bool) -> None:
    """Records ``-q/--quiet`` for the commands of this invocation (:func:`is_quiet`)."""
    ctx.meta[QUIET_KEY] = bool(quiet)


def is_quiet() -> bool:
    """Whether ``hwnas -q`` was given: no progress lines and no progress bars, only results, warnings and
    errors. False outside a command (a Python caller)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(QUIET_KEY))


def _no_echo(message: str = "") -> None:
    """The progress echo of ``hwnas -q``: nothing."""


def progress_echo(as_json: bool = False) -> Callable[[str], None]:
    """Where a command's progress lines go: nowhere with ``-q``, stderr with ``--json`` (stdout holds the one
    document), else stdout with the results."""
    if is_quiet():
        return _no_echo
    return stderr_echo if as_json else click.echo


def bars_wanted(no_progress: bool = False) -> bool:
    """Whether a command draws a live progress bar: only on a terminal (stderr), never with ``--no-progress`` or
    ``-q``."""
    return not no_progress and not is_quiet() and sys.stderr.isatty()


def warn(message: str) -> None:
    """One ``Warning: ...`` line on stderr (shown with ``-q`` too); the message says what to do about it."""
    click.echo(f"Warning: {message}", err=True)


def force_option(func):
    """The ``--force`` flag of a command that writes one output file: write through a symbolic link (never
    into a device or a FIFO; :func:`hwnas.io.check_output_file`)."""
    return click.option("--force", is_flag=True,
                        help="Write the output through a symbolic link (refused without it).")(func)


def json_option(func):
    """The ``--json`` flag of a command that prints data: one JSON document on stdout instead of the text
    (:func:`print_json`); progress and warnings go to stderr."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the same information as one JSON document on stdout.")(func)


def print_json(document: Any) -> None:
    """The one JSON document of a ``--json`` command, on stdout (numpy scalars and paths as plain values)."""
    import json

    def plain(value: Any) -> Any:
        if hasattr(value, "item"):  # numpy scalars
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        return str(value)

    click.echo(json.dumps(document, indent=2, sort_keys=True, default=plain))


class InputShapeType(click.ParamType):
    """``CxHxW`` parsed into a tuple."""

    name = "CxHxW"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_input_shape(value)
        except HwnasError as exc:
            self.fail(str(exc), param, ctx)


INPUT_SHAPE = InputShapeType()

#: Every ``--batch-size``: inputs per run, at most :data:`hwnas.shapes.MAX_BATCH` (and, once the input shape is
#: known, :func:`check_batch_option`).
BATCH_SIZE = click.IntRange(1, MAX_BATCH)


def check_batch_option(batch_size: int | None, shape) -> None:
    """Refuses, before any work, a ``--batch-size`` whose batch of ``shape`` inputs would not fit memory (a
    usage error naming the limit)."""
    from hwnas.shapes import check_batch

    if batch_size is None or shape is None:
        return
    try:
        check_batch(batch_size, shape)
    except HwnasError as exc:
        raise click.BadParameter(str(exc), param_hint="'--batch-size'") from None

#: Every seed on the command line: a non-negative integer that fits the evaluation store (SQLite, 64 bits).
SEED = click.IntRange(0, MAX_SEED)
#: Every ``--epochs`` (the recipe's range).
EPOCHS = click.IntRange(1, MAX_EPOCHS)
#: Output classes of a built model (a stated limit instead of running out of memory).
MAX_CLASSES = 100_000
NUM_CLASSES = click.IntRange(1, MAX_CLASSES)


class FiniteFloat(click.ParamType):
    """A finite float at least ``min`` (above it with ``min_open``) and at most ``max``: ``nan`` and ``inf`` are
    refused (click's ``FloatRange`` lets ``nan`` through, every comparison with it being false)."""

    name = "float"

    def __init__(self, min: float = 0.0, max: float | None = None, *,  # noqa: A002 - click's own words
                 min_open: bool = False) -> None:
        self.min, self.max, self.min_open = float(min), None if max is None else float(max), min_open

    def range_text(self) -> str:
        low = f"{'>' if self.min_open else '>='} {self.min:g}"
        return low if self.max is None else f"{low} and <= {self.max:g}"

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        too_low = number <= self.min if self.min_open else number < self.min
        if not math.isfinite(number) or too_low or self.max is not None and number > self.max:
            self.fail(f"{value!r} must be a finite number {self.range_text()}", param, ctx)
        return number


def split_names(value: str, option: str) -> list[str]:
    """The names of a comma-separated list option (``A,B``), blanks stripped; an empty name (``a,,b``, a
    trailing comma) or none at all is a usage error naming ``option``."""
    names = [name.strip() for name in str(value).split(",")]
    if not any(names):
        raise click.BadParameter("names nothing: give NAME,NAME...", param_hint=f"'{option}'")
    if not all(names):
        raise click.BadParameter(f"{value!r} holds an empty name (two commas in a row, or one at an end)",
                                 param_hint=f"'{option}'")
    return names


#: Threads one measurement or one training may ask for, per core of this machine: more only oversubscribes
#: (and a huge count exhausts memory before any work).
THREADS_PER_CORE = 4


def max_threads() -> int:
    """The most threads ``--measure-threads`` and ``--train-threads`` accept: :data:`THREADS_PER_CORE` times
    this machine's cores."""
    import os

    return THREADS_PER_CORE * (os.cpu_count() or 1)


class ThreadsType(click.ParamType):
    """A thread count: an integer from 1 to :func:`max_threads`, checked before any work."""

    name = "integer"

    def convert(self, value, param, ctx):
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not an integer", param, ctx)
        limit = max_threads()
        if not 1 <= number <= limit:
            self.fail(f"{number} is not between 1 and {limit} ({THREADS_PER_CORE} per core of this machine's "
                      f"{limit // THREADS_PER_CORE})", param, ctx)
        return number


THREADS = ThreadsType()


def parse_space_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("channels=8", ...)`` -> ``{"channels": 8}``; values are parsed as int, float, then kept as text."""
    from hwnas.io import parse_key_values

    try:
        return parse_key_values(pairs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--space-option") from None


def space_options(func):
    """Adds ``--space`` and repeatable ``--space-option KEY=VALUE`` to a command."""
    func = click.option("--space-option", "-O", "space_option", multiple=True, metavar="KEY=VALUE",
                        help="Keyword argument of the space's constructor (e.g. channels=8 for nb201).")(func)
    func = click.option("--space", "space_name", default="mobilenet", show_default=True,
                        help="Search space (see 'hwnas spaces').")(func)
    return func


def make_space(space_name: str, space_option: tuple[str, ...]):
    """Creates the space named on the command line, with its ``--space-option`` values."""
    from hwnas.spaces import SpaceOptionError, create_space

    kwargs = parse_space_options(space_option)
    try:
        return create_space(space_name, **kwargs)
    except SpaceOptionError as exc:
        raise click.BadParameter(str(exc), param_hint="--space-option") from None
    except TypeError as exc:
        raise click.BadParameter(f"space {space_name!r} does not take these options: {exc}",
                                 param_hint="--space-option") from None
    except ValueError as exc:
        raise click.BadParameter(f"space {space_name!r}: {exc}", param_hint="--space-option") from None
