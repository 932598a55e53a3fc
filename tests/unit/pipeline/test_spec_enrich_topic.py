"""``plait process`` with ``enrich: {topic: ...}``: the table is read from the --data dir,
bad reference records are dead letters of stage enrich-table, and a wrong spec or an
unknown topic is one line on stderr."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import plait
from plait.cli.process_cmd import process
from plait.errors import ConfigError
from plait.pipeline.spec import build, load_spec

SPEC = """\
schema: {event_id: int, user_id: int, amount: float}
enrich:
  topic: users
  key: user_id
  schema: {user_id: int, segment: string, since: int}
  columns: [segment]
output: [event_id, user_id, segment]
batch_size: 2
"""
EVENTS = b"".join(
    json.dumps({"event_id": i, "user_id": u, "amount": 1.5}).encode() + b"\n"
    for i, u in enumerate([1, 2, 3, 1, 4])
)


def fill(data: Path, records: list[tuple[bytes | None, bytes | None]]) -> None:
    with plait.connect(f"embedded:{data}") as client:  # closed again: the CLI locks the dir
        client.create_topic("users", 2)
        with client.producer() as p:
            for key, value in records:
                p.send("users", value, key=key).result()


def user(uid: int, segment: str) -> tuple[bytes, bytes]:
    return str(uid).encode(), json.dumps({"user_id": uid, "segment": segment, "since": 2020}).encode()


def plait_cli(*args: str, cwd: Path, stdin: bytes = EVENTS) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", *args], input=stdin, cwd=cwd,
                          capture_output=True, timeout=120, check=False)


def test_process_enriches_from_a_topic_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data, [user(1, "bronze"), user(2, "silver"), (b"2", None), user(3, "gold"),
                user(1, "platinum"), (b"9", b"{broken"), (b"x", None)])
    (tmp_path / "spec.yaml").write_text(SPEC)
    proc = plait_cli("plait.cli.main", "--data", str(data), "process", "spec.yaml", "--engine", "cpu",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows == [
        {"event_id": 0, "user_id": 1, "segment": "platinum"},
        {"event_id": 1, "user_id": 2, "segment": None},  # deleted by its tombstone
        {"event_id": 2, "user_id": 3, "segment": "gold"},
        {"event_id": 3, "user_id": 1, "segment": "platinum"},
        {"event_id": 4, "user_id": 4, "segment": None},
    ]
    dead = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [d["stage"] for d in dead] == ["enrich-table", "enrich-table"]
    assert sorted(str(d.get("value")) for d in dead) == ["None", "{broken"]
    assert all("reference topic 'users'" in d["reason"] and d["partition"] in (0, 1) for d in dead)


def test_process_as_a_module_uses_the_default_data_dir(tmp_path: Path) -> None:
    fill(tmp_path / "plait-data", [user(1, "bronze")])
    (tmp_path / "spec.yaml").write_text(SPEC)
    proc = plait_cli("plait.cli.process_cmd", "spec.yaml", "--engine", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout.splitlines()[0]) == {"event_id": 0, "user_id": 1, "segment": "bronze"}


def test_unknown_topic_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data, [])
    (tmp_path / "spec.yaml").write_text(SPEC.replace("topic: users", "topic: missing"))
    proc = plait_cli("plait.cli.main", "--data", str(data), "process", "spec.yaml", cwd=tmp_path)
    assert proc.returncode != 0
    err = [line for line in proc.stderr.decode().splitlines() if line.strip()]
    assert len(err) == 1 and "'missing' does not exist" in err[0], err
    assert proc.stdout == b""


@pytest.mark.parametrize(
    ("enrich", "message"),
    [
        ("{key: user_id}", "expected exactly one of 'file' or 'topic'"),
        ("{file: u.csv, topic: users, key: user_id}", "expected exactly one of 'file' or 'topic'"),
        ("{topic: users, key: user_id}", "expected 'schema'"),
        ("{topic: users, key: user_id, schema: {user_id: int}, format: csv}", "format: expected 'json' or 'msgpack'"),
        ("{topic: users, key: user_id, schema: {user_id: int}, refresh_s: -1}", "refresh_s: expected >= 0"),
        ("{file: u.csv, key: user_id, schema: {user_id: int}}", "['schema'] only go with 'topic'"),
        ("{topic: users, key: user_id, schema: {user_id: int}, topics: x}", "unknown field `topics`"),
    ],
)
def test_a_wrong_enrich_is_one_line(tmp_path: Path, enrich: str, message: str) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"schema: {{user_id: int}}\nenrich: {enrich}\n")
    res = CliRunner().invoke(process, [str(spec)], input=b"")
    assert res.exit_code != 0
    assert message in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_build_needs_a_client_for_a_topic(tmp_path: Path) -> None:
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(SPEC)
    spec, base = load_spec(spec_path)
    with pytest.raises(ConfigError, match="topic 'users' needs a client"):
        build(spec, base)


def test_the_readme_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    example = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL) if "topic: users" in b)
    data = tmp_path / "data"
    fill(data, [user(1, "gold")])
    (tmp_path / "spec.yaml").write_text(example)
    proc = plait_cli("plait.cli.main", "--data", str(data), "process", "spec.yaml", "--engine", "cpu",
                     cwd=tmp_path, stdin=b'{"event_id": 5, "user_id": 1, "amount": 2.5}\n')
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout) == {"event_id": 5, "user_id": 1, "amount": 2.5, "segment": "gold"}
