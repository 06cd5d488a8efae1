"""Every command in README.md and docs/ runs in a test or says it is illustrative, and the docs site builds.

A fenced ``bash``/``console``/``shell``/``python`` block must follow (on the line before it, blank lines
allowed) one of two HTML comments:

- ``<!-- tested: tests/FILE.py -->``: FILE runs it. The file must exist and mention the page (its file name);
  blocks naming this file are run here, every ``hwnas ...`` line of them, in this process (``hwnas.cli:main``
  through click's runner: torch is imported once, not once a command);
- ``<!-- illustrative -->``: shown, not run (a search, a profile, a training: minutes each).

Every ``hwnas`` command line in any block, illustrative or not, must name an existing command and only options
that command has (read from the click commands, not run). ``mkdocs build --strict`` runs into a temporary folder
(about 6 s on 2 cores; skipped when the docs extra is not installed).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
CHECKED_LANGUAGES = {"bash", "console", "shell", "sh", "python"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARK = re.compile(r"<!--\s*(?:(?P<illustrative>illustrative)|tested:\s*(?P<test>\S+))\s*-->\s*$")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    mark: str | None  # "illustrative", a test file path, or None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} ({self.lang})"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)]


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip().splitlines()
        mark = MARK.search(before[-1]) if before else None
        label = None
        if mark:
            label = "illustrative" if mark.group("illustrative") else mark.group("test")
        found.append(Block(page, text.count("\n", 0, match.start()) + 1, match.group("lang"),
                           match.group("body"), label))
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks(page)]


def command_lines(body: str) -> list[list[str]]:
    """The ``hwnas ...`` command lines of a shell block, continuation lines joined, comments and ``[...]``
    optional parts dropped, as argument lists (without ``hwnas``)."""
    joined = re.sub(r"\\\n\s*", " ", body)
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"\s#\s.*$", "", line).strip()
        line = re.sub(r"^(\.venv/bin/|\$ )", "", line)
        if not line.startswith("hwnas ") and line != "hwnas":
            continue
        line = re.sub(r"\[[^]\"']*\]", " ", line)  # [--json], [--transfer-from A,B | --no-transfer]
        commands.append(shlex.split(line)[1:])
    return commands


def _command(args: list[str]) -> tuple[click.Command, list[str]]:
    """The click command that ``args`` names (groups descended) and the arguments left for it."""
    from hwnas.cli import main

    command, rest = main, list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        if sub is None:
            raise LookupError(f"no command {rest[0]!r} under {command.name!r}")
        command, rest = sub, rest[1:]
    return command, rest


def test_every_code_block_is_tested_or_illustrative():
    unmarked = [str(block) for block in all_blocks() if block.lang in CHECKED_LANGUAGES and block.mark is None]
    assert not unmarked, ("code blocks neither marked <!-- tested: tests/FILE.py --> nor <!-- illustrative -->:\n"
                          + "\n".join(unmarked))


def test_tested_marks_name_a_test_that_mentions_the_page():
    wrong = []
    for block in all_blocks():
        if block.mark in (None, "illustrative"):
            continue
        test = ROOT / block.mark
        if not test.is_file():
            wrong.append(f"{block}: {block.mark} does not exist")
        elif test.name != Path(__file__).name and block.page.name not in test.read_text(encoding="utf-8"):
            wrong.append(f"{block}: {block.mark} never mentions {block.page.name}")
    assert not wrong, "\n".join(wrong)


def test_every_hwnas_command_line_names_real_commands_and_options():
    wrong = []
    for block in all_blocks():
        if block.lang not in CHECKED_LANGUAGES - {"python"}:
            continue
        for args in command_lines(block.body):
            try:
                command, rest = _command(args)
            except LookupError as error:
                wrong.append(f"{block}: hwnas {' '.join(args)}: {error}")
                continue
            known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
            known |= {"-h", "--help"}
            for token in rest:
                name = token.split("=", 1)[0]
                if name.startswith("-") and name not in ("-", "--") and name != "...":
                    if name not in known:
                        wrong.append(f"{block}: hwnas {command.name}: no option {name}")
    assert not wrong, "\n".join(wrong)


def test_the_blocks_this_file_runs(tmp_path, monkeypatch):
    from hwnas.cli import main

    mine = [block for block in all_blocks() if block.mark == f"tests/{Path(__file__).name}"]
    assert mine, "no block is marked as run by this file"
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for block in mine:
        commands = command_lines(block.body)
        assert commands, f"{block}: no hwnas command to run"
        for args in commands:
            result = runner.invoke(main, args, catch_exceptions=False)
            assert result.exit_code == 0, f"{block}: hwnas {' '.join(args)} -> {result.exit_code}\n{result.output}"
            assert result.output.strip(), f"{block}: hwnas {' '.join(args)} printed nothing"


def test_help_of_every_command():
    from hwnas.cli import main

    runner = CliRunner()

    def walk(command: click.Command, path: list[str]) -> None:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output)
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                walk(command.get_command(click.Context(command), name), [*path, name])

    walk(main, [])


def test_the_figure_hook_marks_stale_current_and_unknown(tmp_path):
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import figures
    finally:
        sys.path.pop(0)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0 or shutil.which("git") is None:
        pytest.skip("no git history here")
    comment = '<!-- figure commit={} date=2026-12-07 machine="m" paths={} -->'
    current = figures.render(comment.format(head.stdout.strip(), "README.md"), ROOT)
    assert current.startswith('!!! success "Current"')
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    stale = figures.render(comment.format(first.stdout.split()[0], "README.md"), ROOT)
    assert stale.startswith('!!! warning "Stale: code changed since"')
    unknown = figures.render(comment.format("0" * 40, "README.md"), ROOT)
    assert unknown.startswith('!!! note "Unknown')
    assert "<!-- figure" in figures.render('<!-- figure commit=abc date=x -->', ROOT)  # lacks keys: left, warned


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("mkdocs_click")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()
