"""The public API type-checks: ``hwnas`` ships ``py.typed`` and names every public symbol explicitly, so mypy
(run by ``make test`` over the package first, whose cache this test reuses) catches a user's type errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hwnas

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
import hwnas

config = hwnas.RunConfig(budget_ms=0.05, dataset="digits", max_trainings=10)
result: hwnas.SearchResult = hwnas.start_search(config, run_dir="runs/x")
best: hwnas.Trial | None = result.best
rows = [t.row() for t in result.sorted_trials("accuracy")]
"""

BAD = """
import hwnas

config = hwnas.RunConfig(budget_ms=0.05, dataset=3.5)
hwnas.start_search({"budget_ms": 0.05})
hwnas.no_such_function()
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy")
    script = tmp_path / "user_script.py"
    script.write_text(source)
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                           "--cache-dir", str(ROOT / ".mypy_cache"), "--no-error-summary", str(script)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_mypy_catches_a_users_type_errors_and_passes_correct_use(tmp_path):
    bad = _mypy(tmp_path, BAD)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    errors = [line for line in bad.stdout.splitlines() if "user_script.py" in line and "error" in line]
    assert any(":4:" in e and "dataset" in e and "float" in e for e in errors), errors  # a float for a str
    assert any(":5:" in e and "RunConfig" in e and "dict" in e for e in errors), errors  # a dict for a RunConfig
    assert any(":6:" in e and "no_such_function" in e for e in errors), errors
    good = _mypy(tmp_path, GOOD)
    assert good.returncode == 0, good.stdout + good.stderr


def test_every_public_name_resolves_and_is_typed():
    assert (ROOT / "hwnas" / "py.typed").is_file()
    assert sorted(hwnas.__all__) == sorted(["__version__", *hwnas._API])
    for name in hwnas.__all__:
        assert getattr(hwnas, name) is not None
    source = (ROOT / "hwnas" / "__init__.py").read_text()
    imports = source.split("if TYPE_CHECKING:", 1)[1].split("_API", 1)[0]
    for name in hwnas._API:  # imported explicitly for type checkers, not only through __getattr__
        assert re.search(rf"[ (]{name}[,)\n]", imports), name
