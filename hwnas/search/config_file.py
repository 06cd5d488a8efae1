"""A search's settings in a TOML file: ``hwnas search --config run.toml`` (:func:`load_run_config`), and a
:class:`~hwnas.search.config.RunConfig` written back as TOML (:func:`dump_toml`).

A key is a :class:`RunConfig` setting (``max_trainings``) or the ``hwnas search`` flag that sets it, with or
without its dashes (``max-trainings``, ``latency-budget = "2ms"``, ``time-budget = "10m"``, ``input-shape =
"1x8x8"``, ``epochs``, ``data-fraction``, ``train-equivalent``, ``no-transfer``); options and the recipe are
tables::

    latency-budget = "2ms"
    dataset = "photos/"          # a path is read from the current folder, as on the command line
    input-shape = "3x32x32"
    max-trainings = 40
    dataset_options = { val_fraction = 0.25 }

    [recipe]
    epochs = 5
    batch_size = 64

An unknown key, a setting the run records itself (``dataset_key``, ``num_classes``...) or a value of the wrong
type is refused in one line naming the key and the file; the values themselves are checked by
:class:`RunConfig`. On the command line, flags given there override the file (:func:`merge_fields`).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from hwnas.search.config import ConfigError, RunConfig
from hwnas.training.recipe import Recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Settings a run records itself (:meth:`RunConfig.resolved`, the first session): never read from a file.
RECORDED = ("dataset_name", "dataset_key", "input_shape", "num_classes", "class_names", "created", "hwnas_version",
            "trained_on", "transfer_sources", "transfer_source_records", "accuracy_function")
#: Flag spellings (dashes made underscores) of settings whose :class:`RunConfig` name differs.
FLAG_NAMES = {"latency_budget": "budget_ms", "time_budget": "time_budget_s", "threads": "measure_threads",
              "input_shape": "dataset_input_shape"}
#: Flags that set a part of the recipe, or the opposite of a setting.
RECIPE_FLAGS = ("epochs", "data_fraction")
NEGATED_FLAGS = {"train_equivalent": "skip_equivalent", "no_transfer": "transfer"}
#: Settings whose tables merge key by key (a flag's keys over the file's).
TABLES = ("space_options", "dataset_options", "predictor_options", "recipe")


def settable() -> dict[str, Any]:
    """``name -> type`` of every :class:`RunConfig` setting a file may give."""
    hints = typing.get_type_hints(RunConfig)
    return {f.name: hints[f.name] for f in fields(RunConfig) if f.name not in RECORDED}


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The :class:`RunConfig` settings of a TOML file (``recipe`` a table of recipe settings, maybe partial).

    Raises:
        ConfigError: the file is unreadable or not TOML, or a key is unknown, recorded by the run, or of the
            wrong type (one line naming the key and the file).
    """
    target = Path(path)
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {target}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target} is not TOML: {exc}") from None
    return config_fields(data, where=str(target))


def config_fields(data: Mapping[str, Any], *, where: str = "the configuration") -> dict[str, Any]:
    """The :class:`RunConfig` settings of a parsed TOML document (see :func:`read_config_file`)."""
    from hwnas.search.budget import BudgetError, parse_duration, parse_latency

    known = settable()
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    recipe: dict[str, Any] = {}

    def put(name: str, value: Any, key: str) -> None:
        if name in origin:
            raise ConfigError(f"{where}: {key!r} and {origin[name]!r} both set {name}; give one")
        origin[name] = key
        out[name] = value

    for key, value in data.items():
        name = key.replace("-", "_")
        try:
            if name in ("latency_budget", "time_budget") and isinstance(value, str):
                value = parse_latency(value) if name == "latency_budget" else parse_duration(value)
        except BudgetError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
        if name in RECIPE_FLAGS:
            if name in recipe:
                raise ConfigError(f"{where}: {key!r} is given twice")
            recipe[name] = value
            continue
        if name in NEGATED_FLAGS:
            _check(NEGATED_FLAGS[name], value, bool, key, where)
            put(NEGATED_FLAGS[name], not value, key)
            continue
        name = FLAG_NAMES.get(name, name)
        if name in RECORDED:
            raise ConfigError(f"{where}: {key!r} is recorded by the run from its data and session, not a setting")
        if name not in known:
            raise ConfigError(f"{where}: unknown setting {key!r} (not a RunConfig setting or an hwnas search flag)")
        if name == "dataset_input_shape" and isinstance(value, str):
            value = _shape(value, key, where)
        _check(name, value, known[name], key, where)
        put(name, value, key)
    if recipe:
        table = dict(out.get("recipe") or {})
        clash = sorted(set(table) & set(recipe))
        if clash:
            raise ConfigError(f"{where}: {clash[0]} is given both at the top and in [recipe]; give one")
        out["recipe"] = {**table, **recipe}
    return out


def _shape(text: str, key: str, where: str) -> list[int]:
    from hwnas.errors import HwnasError
    from hwnas.shapes import parse_input_shape

    try:
        return list(parse_input_shape(text))
    except HwnasError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None


def _check(name: str, value: Any, hint: Any, key: str, where: str) -> None:
    if not _fits(value, hint):
        raise ConfigError(f"{where}: {key} must be {_describe(hint)}, got {value!r} ({_toml_type(value)})")


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint) if arg is not type(None))
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is Recipe or origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, dict)
    if origin is tuple or hint is tuple:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value) if args else isinstance(value, list)
    return True  # a type this check does not know: RunConfig checks the value


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(hint)
    if hint is Recipe:
        return "a table of recipe settings"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "a table"
    if origin is tuple or hint is tuple:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {_describe(args[0]).replace('a ', '', 1) + 's' if args else 'values'}"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(hint, str(hint))


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def merge_fields(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s settings on top; tables (:data:`TABLES`: options, the recipe) merge key by key."""
    merged = dict(base)
    for name, value in over.items():
        if name in TABLES and isinstance(merged.get(name), (Mapping, Recipe)) and isinstance(value, (Mapping, Recipe)):
            merged[name] = {**_table(merged[name]), **_table(value)}
        else:
            merged[name] = value
    return merged


def _table(value: Mapping[str, Any] | Recipe) -> dict[str, Any]:
    return value.to_dict() if isinstance(value, Recipe) else dict(value)


def load_run_config(path: str | os.PathLike, **overrides: Any) -> RunConfig:
    """The :class:`RunConfig` of a TOML file, with ``overrides`` (settings, tables merged key by key) on top; not
    resolved (:meth:`RunConfig.resolved` checks the data set and space).

    Raises:
        ConfigError: a key or type the file may not hold, no latency budget, or a value :class:`RunConfig`
            refuses (one line naming the file).
    """
    settings = merge_fields(read_config_file(path), overrides)
    if settings.get("budget_ms") is None:
        raise ConfigError(f"{path}: no latency budget: give latency-budget = \"2ms\" (or budget_ms = 2.0)")
    try:
        return RunConfig(**settings)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# -- writing ---------------------------------------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(name: str) -> str:
    return name if _BARE.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise ConfigError(f"cannot write {value!r} as TOML")


def dump_toml(config: RunConfig, *, recorded: bool = True) -> str:
    """``config`` as a TOML document that :func:`load_run_config` reads back to the same settings: one
    ``name = value`` line a setting (an unset one, ``None``, as a comment), the recipe as a ``[recipe]`` table;
    with ``recorded``, what the run recorded (data set key, shape, classes...) follows as comments."""
    lines: list[str] = []
    for name in settable():
        value = getattr(config, name)
        if name == "recipe":
            continue
        lines.append(f"# {name}: not set" if value is None else f"{name} = {_value(value)}")
    if recorded:
        notes = [f"# {name} = {_value(getattr(config, name))}" for name in RECORDED
                 if getattr(config, name) is not None]
        if notes:
            lines += ["", "# recorded by the run (not settings):", *notes]
    lines += ["", "[recipe]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in config.recipe.to_dict().items() if v is not None]
    return "\n".join(lines) + "\n"
