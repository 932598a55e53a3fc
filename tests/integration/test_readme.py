"""The README's commands are run as written, so the quickstart cannot rot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_setup_is_two_commands_and_ci_runs_the_test_one():
    commands = [line for line in sh_blocks()[0].splitlines() if line and not line.startswith("#")]
    assert commands == ["pip install . && plait serve", "./dev/test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "./dev/test" in ci.splitlines()[-1]


def test_embedded_commands_run_as_written(tmp_path):
    block = next(b for b in sh_blocks() if "plait topic create" in b)
    plait = shutil.which("plait")
    if plait is None:
        pytest.fail("the plait console script is not installed (pip install -e .)")
    env = {**os.environ, "PLAIT_DATA": str(tmp_path / "data")}
    script = block.replace("plait bench --events 1000000", "plait bench --events 100000")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, check=False, capture_output=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = proc.stdout.decode().splitlines()
    assert "created topic demo with 3 partition(s)" in out
    assert "events/s" in proc.stdout.decode()
    # consume printed 5 values, each one of the produced numbers
    values = [line for line in out if line.isdigit()]
    assert len(values) == 5 and all(1 <= int(v) <= 100000 for v in values)
