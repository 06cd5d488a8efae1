"""The README's Python example runs as written, in a fresh folder, and does what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# The docs page shows the same block: it is this test's as long as it is the README's, character for character.
DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "python.md"


def _python_block(path: Path = README, heading: str = "## From Python") -> str:
    text = path.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_docs_page_shows_the_readme_block():
    assert _python_block(DOCS_PAGE, "# From Python") == _python_block()


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_python_block())
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    arch, accuracy, latency = lines[0].split(" ", 2)
    assert 0.0 <= float(accuracy) <= 1.0 and float(latency.split()[0]) <= 50.0  # within the 50 us budget
    assert sum(line.startswith("  ") for line in lines) == 2  # the callback saw the own loop's 2 trainings
    assert 0.0 <= float(lines[-1]) <= 1.0
    for run in ("python-digits", "python-own-loop"):
        assert (tmp_path / "runs" / run / "result.json").is_file()
    config = (tmp_path / "runs" / "python-own-loop" / "config.json").read_text()
    assert "my_accuracy" in config  # the run records where its accuracies came from
    model = onnx.load(tmp_path / "model-python.onnx")
    assert {p.key for p in model.metadata_props} >= {"arch", "space"}
