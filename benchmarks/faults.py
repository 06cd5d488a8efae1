"""The bad-input battery of issue 15, with counts: how many cases end in one clear error line, a traceback,
a silent accept (exit 0) or another outcome. The cases are data in ``tests/fault_cases.py`` (the suite runs
them too, in ``tests/test_fault_battery.py``).

    .venv/bin/python benchmarks/faults.py      # ~10 s; prints a table, writes benchmarks/results/faults.json
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from _common import print_table, write_result  # noqa: E402


def classify(result, code: int, needle: str) -> str:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback"
    if result.exit_code == 0:
        return "silent accept"
    lines = (result.stderr or "").strip().splitlines()
    if len(lines) == 1 and lines[0].startswith("Error:") and result.exit_code == code and needle in lines[0]:
        return "one clear line"
    return "other"


def main() -> int:
    import os

    from click.testing import CliRunner

    from fault_cases import CASES, SETUPS
    from hwnas.cli import main as cli_main

    rows, outcomes = [], Counter()
    start = os.getcwd()
    for case_id, setup, args, code, needle in CASES:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            os.chdir(tmp)
            try:
                values = {"tmp": str(tmp), **SETUPS[setup](tmp)}
                result = CliRunner().invoke(cli_main, [a.format(**values) for a in args], prog_name="hwnas")
            finally:
                os.chdir(start)
        outcome = classify(result, code, needle)
        outcomes[outcome] += 1
        line = (result.stderr or "").strip().splitlines()
        rows.append({"case": case_id, "exit": result.exit_code, "outcome": outcome,
                     "message": line[-1][:100] if line else repr(result.exception)[:100]})
    print_table(("case", "exit", "outcome", "message"), [tuple(r.values()) for r in rows])
    print()
    print_table(("outcome", "cases"), sorted(outcomes.items()))
    path = write_result("faults", {"cases": rows, "counts": dict(outcomes), "total": len(rows)})
    print(f"wrote {path}")
    return 0 if outcomes["one clear line"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
