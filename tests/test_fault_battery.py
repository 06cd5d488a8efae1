"""The bad-input battery of issue 15 (cases in ``tests/fault_cases.py``): every case ends in exactly one
``Error:`` line with the expected exit code, never a traceback, and damages nothing outside its folder."""

from __future__ import annotations

import pytest

from battery import assert_refused
from fault_cases import CASES, SETUPS


#: What a failing case may still change (relative to its folder; ``x/``: the folder and everything in it).
ALLOWED: dict[str, tuple[str, ...]] = {
    "benchmark-corrupt-latency-prior": ("b/",),  # the benchmark's own output folder
    "export-config-without-budget": ("run",),  # the run folder's lock file, made and removed: its mtime
}


@pytest.mark.parametrize("case_id, setup, args, code, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(cli, tmp_path, monkeypatch, case_id, setup, args, code, needle):
    monkeypatch.chdir(tmp_path)
    values = {"tmp": str(tmp_path), **SETUPS[setup](tmp_path)}
    assert_refused(cli, tmp_path, *[a.format(**values) for a in args], code=code, needle=needle,
                   allowed=ALLOWED.get(case_id, ()))
    assert not (tmp_path.parent / "victim").exists()
