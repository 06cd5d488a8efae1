"""The bad-input battery of issue 15 (cases in ``tests/fault_cases.py``): every case ends in exactly one
``Error:`` line with the expected exit code, never a traceback, and damages nothing outside its folder."""

from __future__ import annotations

import pytest

from fault_cases import CASES, SETUPS


@pytest.mark.parametrize("case_id, setup, args, code, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(cli, tmp_path, monkeypatch, case_id, setup, args, code, needle):
    monkeypatch.chdir(tmp_path)
    values = {"tmp": str(tmp_path), **SETUPS[setup](tmp_path)}
    result = cli(*[a.format(**values) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], result.stderr
    assert not (tmp_path.parent / "victim").exists()
