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


def test_pipeline_example_runs_over_a_topic_into_the_lake(tmp_path):
    """The README's pipeline file, run with the command its first line gives."""
    import json
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    import plait

    code = next(b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL) if "lake.py" in b)
    command = code.splitlines()[0].split(": ", 1)[1].split()
    assert command[:2] == ["plait", "run"]
    (tmp_path / "lake.py").write_text(code)
    shutil.copy(README.parent / "examples" / "process" / "users.csv", tmp_path / "users.csv")
    data = tmp_path / "data"
    events = [
        {"user_id": 1, "amount": 150.0, "country": "DE", "note": "chargeback!", "ts": 1_700_000_000_000},
        {"user_id": 2, "amount": 50.0, "country": "DE", "note": "small", "ts": 1_700_000_000_001},
        {"user_id": 2, "amount": 500.0, "country": "FR", "note": "fine", "ts": 1_700_000_000_002},
        {"user_id": 3, "amount": 900.0, "country": "US", "note": "fraud", "ts": 1_700_000_000_003},
    ]
    with plait.connect(f"embedded:{data}") as client:
        client.create_topic("orders", 2)
        with client.producer() as producer:
            producer.send_batch("orders", [json.dumps(e).encode() for e in events])
    proc = subprocess.run(
        [sys.executable, "-m", "plait.cli.main", "--data", str(data), *command[1:], "--idle-timeout", "1"],
        cwd=tmp_path, check=False, capture_output=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    lake = pa.concat_tables(pq.read_table(f) for f in (tmp_path / "lake").rglob("part-*.parquet"))
    rows = sorted(lake.select(["user_id", "cents", "match_names"]).to_pylist(), key=lambda r: r["user_id"])
    assert rows == [
        {"user_id": 1, "cents": 15000.0, "match_names": ["chargeback"]},
        {"user_id": 2, "cents": 50000.0, "match_names": []},
    ]
