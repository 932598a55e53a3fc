"""`plait run PIPELINE.py --topic T`: a pipeline over a topic, with committed offsets."""

from __future__ import annotations

import json
import subprocess
import sys

import plait

PIPELINE = '''
from plait.pipeline import pipeline as make
from plait.process.sinks import encode_rows
OUT = {out!r}
def pipeline(source):
    f = open(OUT, "ab")
    return make(source, engine="cpu").decode({{"n": "int", "who": "str"}}).filter("n % 2 == 0").project("n", "who").to(
        lambda b: f.write(b"".join(r + b"\\n" for r in encode_rows(b))) and f.flush())
'''


def test_run_over_topic_commits_and_resumes(tmp_path):
    data = tmp_path / "data"
    out = tmp_path / "out.jsonl"
    pipe = tmp_path / "pipe.py"
    pipe.write_text(PIPELINE.format(out=str(out)))
    with plait.connect(f"embedded:{data}") as client:
        client.create_topic("events", 1)
        with client.producer() as producer:
            producer.send_batch("events", [json.dumps({"n": i, "who": f"u{i}"}).encode() for i in range(100)] + [b"not json"])

    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "plait.cli.main", "--data", str(data), "run", str(pipe),
             "--topic", "events", "--group", "etl", "--idle-timeout", "1"],
            check=False, capture_output=True, timeout=120,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stderr.decode().strip().splitlines()[-1])
    assert stats == {"rows_in": 101, "rows_out": 50, "dead_letters": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["n"] for r in rows] == list(range(0, 100, 2))
    # A second run resumes from the committed offsets: nothing is processed twice.
    with plait.connect(f"embedded:{data}") as client, client.producer() as producer:
        producer.send_batch("events", [json.dumps({"n": 200, "who": "late"}).encode()])
    second = run()
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stderr.decode().strip().splitlines()[-1])["rows_in"] == 1
    assert [json.loads(line)["n"] for line in out.read_text().splitlines()][-1] == 200
    assert len(out.read_text().splitlines()) == 51
