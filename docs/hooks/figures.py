"""mkdocs hook: the measured figures' provenance and stale marks.

A measured figure in the docs opens with one HTML comment naming where it comes from::

    <!-- figure commit=7eb9b87 date=2026-12-07 machine="2-core, idle" paths=hwnas/predictors,benchmarks/x.py -->

``commit`` is the commit the figure was measured at (for figures moved from the README: the commit that last
recorded it there), ``paths`` the sources it depends on. At build time the comment becomes one line saying
when, where and at which commit it was measured, and whether the code changed since: ``git log
<commit>..HEAD -- <paths>`` non-empty marks it **stale: code changed since**; without git (or without the
commit, as in a shallow clone) it says **unknown**. A figure comment that lacks a key, or names a path that
does not exist, is a build warning (an error under ``mkdocs build --strict``).
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.figures")

FIGURE = re.compile(r"^<!-- figure (?P<args>.*?) -->[ \t]*$", re.M)
REQUIRED = ("commit", "date", "machine", "paths")


def parse(args: str) -> dict[str, str]:
    """The ``key=value`` pairs of a figure comment (values may be double-quoted)."""
    fields = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        if not sep:
            raise ValueError(f"not key=value: {token!r}")
        fields[key] = value
    return fields


def changes_since(root: Path, commit: str, paths: list[str]) -> list[str] | None:
    """One line per commit after ``commit`` that touches ``paths``; None when git cannot tell."""
    try:
        done = subprocess.run(["git", "log", "--oneline", f"{commit}..HEAD", "--", *paths], cwd=root,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return [line for line in done.stdout.splitlines() if line.strip()]


def mark(fields: dict[str, str], root: Path) -> str:
    """The admonition that replaces a figure comment: stale (warning), current (success) or unknown (note)."""
    paths = [p for p in fields["paths"].split(",") if p]
    names = ", ".join(f"`{p}`" for p in paths)
    changes = changes_since(root, fields["commit"], paths)
    if changes is None:
        kind, title, state = "note", "Unknown whether the code changed since", "git cannot tell here (no history)"
    elif changes:
        kind, title = "warning", "Stale: code changed since"
        state = f"{len(changes)} later commit{'s touch' if len(changes) != 1 else ' touches'} {names}"
    else:
        kind, title, state = "success", "Current", f"no later commit touches {names}"
    command = f" Command: `{fields['command']}`." if fields.get("command") else ""
    return (f'!!! {kind} "{title}"\n    Measured {fields["date"]} at commit `{fields["commit"]}` on '
            f'{fields["machine"]}; {state}.{command}\n')


def render(markdown: str, root: Path, where: str = "") -> str:
    """``markdown`` with every figure comment replaced by its mark."""

    def one(match: re.Match) -> str:
        try:
            fields = parse(match.group("args"))
        except ValueError as error:
            log.warning("%s: bad figure comment (%s): %s", where, error, match.group(0))
            return match.group(0)
        missing = [key for key in REQUIRED if not fields.get(key)]
        if missing:
            log.warning("%s: figure comment lacks %s: %s", where, ", ".join(missing), match.group(0))
            return match.group(0)
        absent = [p for p in fields["paths"].split(",") if p and not (root / p).exists()]
        if absent:
            log.warning("%s: figure depends on paths that do not exist: %s", where, ", ".join(absent))
        return mark(fields, root)

    return FIGURE.sub(one, markdown)


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 - the mkdocs hook signature
    root = Path(config["docs_dir"]).resolve().parent
    return render(markdown, root, page.file.src_uri)
