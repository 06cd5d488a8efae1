import json
import subprocess
import sys

import pytest

from hwnas import __version__
from hwnas.onnx_export import read_metadata

ARCH = "16:k3e3/24:k5e3se/32:k3e6/48:k7e1"


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_every_command_is_listed_with_its_own_help_and_loads_lazily(cli):
    import importlib

    from hwnas.cli import COMMANDS

    for name, (module, attribute, short_help) in COMMANDS.items():
        command = getattr(importlib.import_module(f"hwnas.cli.{module}"), attribute)
        assert command.name == name and command.get_short_help_str(limit=1000) == short_help
    listing = cli("--help").output
    assert all(name in listing for name in COMMANDS)
    for name in COMMANDS:  # each one's own help works through the lazy group
        assert cli(name, "--help").exit_code == 0
    # the version and the command list come without torch (the point of loading lazily)
    code = "import sys; from hwnas.cli import main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_spaces_lists_sizes(cli):
    result = cli("spaces")
    assert result.exit_code == 0
    assert "nb201" in result.output and "15625" in result.output and "mobilenet" in result.output


def test_sample_is_deterministic_and_distinct(cli):
    first = cli("sample", "--space", "nb201", "-n", "20", "--seed", "5")
    again = cli("sample", "--space", "nb201", "-n", "20", "--seed", "5")
    other = cli("sample", "--space", "nb201", "-n", "20", "--seed", "6")
    lines = first.output.splitlines()
    assert first.exit_code == 0 and len(lines) == 20 == len(set(lines))
    assert first.output == again.output != other.output


def test_sample_more_than_the_space_holds_is_refused(cli):
    result = cli("sample", "--space", "nb201", "-O", "channels=8", "-n", "20000")
    assert result.exit_code == 2 and "15625" in result.stderr


def test_inspect_json(cli):
    result = cli("inspect", ARCH, "--json")
    info = json.loads(result.output)
    assert info["arch"] == ARCH and info["params"] > 0 and info["macs"] > 0
    assert info["decisions"]["s0.b0.kernel"] == 3


def test_onnx_writes_a_checked_model(cli, tmp_path):
    out = tmp_path / "m.onnx"
    result = cli("onnx", ARCH, "--input-shape", "3x16x16", "--num-classes", "5", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "max abs error" in result.output
    assert read_metadata(out)["input_shape"] == "3x16x16"


@pytest.mark.parametrize("args, message, code", [
    (["sample", "--space", "nope"], "unknown search space 'nope'", 1),
    (["sample", "-n", "0"], "-n", 2),
    (["inspect", "16:k3e3"], "expected 4 stages", 1),
    (["inspect", ARCH, "--input-shape", "8x8"], "CxHxW", 2),
    (["inspect", ARCH, "--input-shape", "1xax8"], "integer", 2),
    (["onnx", ARCH, "-o", "/nonexistent-dir/m.onnx"], "not an existing folder", 1),
    (["onnx", ARCH], "Missing option '-o'", 2),
    (["sample", "--bogus"], "No such option", 2),
    (["sample", "--space", "nb201", "-O", "widths=3"], "does not take these options", 2),
    (["sample", "-O", "oops"], "KEY=VALUE", 2),
])
def test_bad_input_gives_one_clear_line(cli, args, message, code):
    result = cli(*args)
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_real_process_prints_no_traceback_and_no_exporter_noise(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "hwnas", "onnx", ARCH, "-o", str(tmp_path / "m.onnx")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "hwnas", "inspect", "garbage"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("Error: ")
