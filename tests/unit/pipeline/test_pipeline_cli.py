"""``plait process`` and ``plait run`` end to end, the example spec, and the bench command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from plait.bench.process_bench import bench_process
from plait.cli.process_cmd import process
from plait.cli.run_cmd import run

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "process"


def test_example_spec_end_to_end(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    res = CliRunner().invoke(
        process,
        [str(EXAMPLE / "spec.yaml"), "--engine", "cpu", "--dead-letters", str(dead)],
        input=(EXAMPLE / "events.jsonl").read_bytes(),
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [
        (r["event_id"], r["segment"], r["match_names"], r["match_any"]) for r in rows
    ] == [
        (1, "gold", ["fraud"], True),
        (3, "bronze", ["chargeback", "stolen card"], True),
        (4, None, [], False),
    ]
    assert rows[0]["amount_cents"] == 25000.0
    dl = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(d["stage"], d["offset"]) for d in dl] == [("decode", 4), ("decode", 5)]
    assert "$.amount" in dl[0]["reason"]


def test_process_as_module_streams_dead_letters_to_stderr() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "plait.cli.process_cmd",
            str(EXAMPLE / "spec.yaml"),
            "--engine",
            "cpu",
        ],
        input=(EXAMPLE / "events.jsonl").read_bytes(),
        capture_output=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3
    assert [json.loads(line)["offset"] for line in proc.stderr.splitlines()] == [4, 5]


def test_process_errors_are_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("schema: {a: int}\nfilter: 'a >'\n")
    res = CliRunner().invoke(
        process, [str(spec), "--engine", "cpu"], input=b'{"a": 1}\n'
    )
    assert res.exit_code == 1
    assert (
        res.output.strip()
        == "Error: expected a value, a column name or '(', got end of expression at column 4 of 'a >'"
    )
    spec.write_text("schema: {a: int}\nfilterr: 'a > 1'\n")
    res = CliRunner().invoke(process, [str(spec)], input=b"")
    assert (
        res.exit_code == 1
        and "filterr" in res.output
        and len(res.output.strip().splitlines()) == 1
    )
    res = CliRunner().invoke(process, [str(spec), "--engine", "gpu"], input=b"")
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1


def test_run_command_with_pipeline_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    user = tmp_path / "pipe.py"
    user.write_text(
        "from plait.pipeline import pipeline as make\n"
        "from plait.process.sinks import encode_rows\n"
        f"OUT = {str(out)!r}\n"
        "def pipeline(source):\n"
        "    f = open(OUT, 'wb')\n"
        "    return make(source, engine='cpu').decode({'a': 'int'}).filter('a > 1').to(\n"
        "        lambda b: f.write(b''.join(r + b'\\n' for r in encode_rows(b))) and f.flush())\n"
    )
    res = CliRunner().invoke(
        run, [str(user), "--stdin"], input=b'{"a": 1}\n{"a": 5}\nx\n'
    )
    assert res.exit_code == 0, res.output
    assert out.read_text().splitlines() == ['{"a":5}']
    *dead, stats = res.stderr.strip().splitlines()
    assert json.loads(stats) == {"rows_in": 3, "rows_out": 1, "dead_letters": 1}
    # the dead letter itself, not only its count, in the form plait process writes
    [letter] = [json.loads(line) for line in dead]
    assert (letter["stage"], letter["offset"], letter["value"]) == ("decode", 2, "x")
    res = CliRunner().invoke(run, [str(user), "--topic", "t", "--stdin"])
    assert res.exit_code == 1 and "exactly one" in res.output
    dead_file = tmp_path / "dead.jsonl"
    dead_file.write_text("earlier\n")
    res = CliRunner().invoke(
        run, [str(user), "--stdin", "--dead-letters", str(dead_file)], input=b"x\ny\n"
    )
    assert res.exit_code == 0, res.output
    lines = dead_file.read_text().splitlines()
    assert lines[0] == "earlier" and [json.loads(x)["value"] for x in lines[1:]] == ["x", "y"]
    res = CliRunner().invoke(
        run, [str(user), "--stdin", "--dead-letters", "f", "--dead-letter-topic", "t"]
    )
    assert res.exit_code == 1 and "at most one" in res.output
    nowhere = tmp_path / "no" / "such" / "dir.jsonl"
    res = CliRunner().invoke(run, [str(user), "--stdin", "--dead-letters", str(nowhere)], input=b"x\n")
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"Error: --dead-letters {nowhere}: No such file or directory"]


def test_run_keeps_the_pipeline_files_own_dead_letter_handler(tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    user = tmp_path / "pipe.py"
    user.write_text(
        "from plait.pipeline import pipeline as make\n"
        f"SEEN = {str(seen)!r}\n"
        "def pipeline(source):\n"
        "    f = open(SEEN, 'w')\n"
        "    return make(source, engine='cpu', dead_letters=lambda d: f.write(d.stage) and f.flush())"
        ".decode({'a': 'int'})\n"
    )
    res = CliRunner().invoke(run, [str(user), "--stdin"], input=b"x\n")
    assert res.exit_code == 0, res.output
    assert seen.read_text() == "decode"
    assert len(res.stderr.strip().splitlines()) == 1  # the stats line alone


def test_bench_json_small() -> None:
    res = CliRunner().invoke(
        bench_process, ["--engine", "all", "--batch", "300", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    [row] = data["results"]
    assert row["batch"] == 300
    for name in ("python_loop", "cpu"):
        assert set(row[name]) == {"decode", "filter", "enrich", "match", "end_to_end"}
        assert all(v > 0 for v in row[name].values())
    assert isinstance(row["gpu"], (dict, str))
    assert 150 <= data["event_bytes"] <= 260


@pytest.mark.parametrize(
    ("code", "last_line", "frame"),
    [
        ("def pipeline(source:\n", "pipe.py cannot be loaded: SyntaxError: '(' was never closed", "line 1"),
        ("import no_such_module_here\n", "pipe.py cannot be loaded: ModuleNotFoundError", "line 1, in <module>"),
        (
            (
                "from plait.pipeline import pipeline as make\n"
                "def boom(batch):\n"
                "    raise KeyError('k')\n"
                "def pipeline(source):\n"
                "    return make(source, engine='cpu').decode({'a': 'int'}).map(boom)\n"
            ),
            "pipe.py failed: KeyError: 'k'",
            "line 3, in boom",
        ),
    ],
)
def test_errors_in_the_pipeline_file_show_its_own_frames(
    tmp_path: Path, code: str, last_line: str, frame: str
) -> None:
    user = tmp_path / "pipe.py"
    user.write_text(code)
    res = CliRunner().invoke(run, [str(user), "--stdin"], input=b'{"a": 1}\n')
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith(f"Error: {last_line}"), lines[-1]
    assert any(str(user) in line and frame in line for line in lines), lines
    assert not any("plait/cli" in line for line in lines)  # no frames of plait's own
