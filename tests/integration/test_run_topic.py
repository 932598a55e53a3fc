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


def setup_topic(tmp_path, partitions: int, values: dict[int | None, list[bytes]], *extra_topics: str):
    """A data dir with topic ``events`` holding ``values`` (per partition, None: spread),
    and the pipeline file; returns (data dir, its output file, the pipeline file)."""
    data, out, pipe = tmp_path / "data", tmp_path / "out.jsonl", tmp_path / "pipe.py"
    pipe.write_text(PIPELINE.format(out=str(out)))
    with plait.connect(f"embedded:{data}") as client:
        client.create_topic("events", partitions)
        for name in extra_topics:
            client.create_topic(name, 1)
        with client.producer() as producer:
            for p, vals in values.items():
                producer.send_batch("events", vals, partition=p)
    return data, out, pipe


def stats_of(stderr: bytes) -> dict:
    """The stats line plait run prints last."""
    return json.loads(stderr.decode().strip().splitlines()[-1])


def test_run_over_topic_commits_and_resumes(tmp_path):
    values = [json.dumps({"n": i, "who": f"u{i}"}).encode() for i in range(100)] + [b"not json"]
    data, out, pipe = setup_topic(tmp_path, 1, {None: values})

    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "plait.cli.main", "--data", str(data), "run", str(pipe),
             "--topic", "events", "--group", "etl", "--idle-timeout", "1"],
            check=False, capture_output=True, timeout=120,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    stats = stats_of(first.stderr)
    assert stats == {"rows_in": 101, "rows_out": 50, "dead_letters": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["n"] for r in rows] == list(range(0, 100, 2))
    # A second run resumes from the committed offsets: nothing is processed twice.
    with plait.connect(f"embedded:{data}") as client, client.producer() as producer:
        producer.send_batch("events", [json.dumps({"n": 200, "who": "late"}).encode()])
    second = run()
    assert second.returncode == 0, second.stderr
    assert stats_of(second.stderr)["rows_in"] == 1
    assert [json.loads(line)["n"] for line in out.read_text().splitlines()][-1] == 200
    assert len(out.read_text().splitlines()) == 51


LAKE_PIPELINE = '''
import time
from plait.pipeline import pipeline as make
from plait.process.sinks import ParquetSink
def slow(batch):
    time.sleep(0.02)
    return batch
def pipeline(source):
    return make(source, engine="cpu").decode({{"n": "int", "ts": "int"}}).map(slow).to(
        ParquetSink({lake!r}, time="ts"))
'''


def test_run_through_broker_static_member_resumes_after_sigkill(tmp_path):
    """Through ``plait serve``: a SIGKILLed ``plait run`` restarted with the same
    ``--member-id`` takes its partitions back at once (Kafka static membership) and the
    Parquet lake ends with every event of the 3 partitions once."""
    import signal
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from plait.broker.testing import ServeProcess

    lake, pipe = tmp_path / "lake", tmp_path / "lake.py"
    pipe.write_text(LAKE_PIPELINE.format(lake=str(lake)))
    with ServeProcess(tmp_path / "broker") as broker:
        with plait.connect(f"kafka://{broker.bootstrap}") as client:
            client.create_topic("events", 3)
            with client.producer() as producer:
                for p in range(3):
                    producer.send_batch(
                        "events",
                        [json.dumps({"n": p * 1000 + i, "ts": 1_700_000_000_000}).encode() for i in range(300)],
                        partition=p,
                    )
        cmd = [sys.executable, "-m", "plait.cli.main", "run", str(pipe), "--bootstrap", broker.bootstrap,
               "--topic", "events", "--group", "lake", "--member-id", "lake-a", "--batch-size", "50"]
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not list(lake.glob("_plait_commits/p*")) and first.poll() is None:
            assert time.monotonic() < deadline, "no progress in 60 s"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        started = time.monotonic()
        second = subprocess.run(cmd + ["--idle-timeout", "3"], check=False, capture_output=True, timeout=120)
        assert second.returncode == 0, second.stderr.decode()[-2000:]
        took = time.monotonic() - started
        # its offsets were committed through the broker: a third run has nothing to read
        third = subprocess.run(cmd + ["--idle-timeout", "1"], check=False, capture_output=True, timeout=120)
        assert third.returncode == 0 and stats_of(third.stderr)["rows_in"] == 0, third.stderr.decode()[-2000:]
    t = pa.concat_tables(pq.read_table(f) for f in lake.rglob("part-*.parquet"))
    assert sorted(t.column("n").to_pylist()) == sorted(p * 1000 + i for p in range(3) for i in range(300))
    # a dynamic member would wait out the killed one's session (45 s in librdkafka)
    assert took < 30, took


def test_run_sends_dead_letters_to_a_topic(tmp_path):
    """Bad records of a 2-partition topic end up in the dead-letter topic, each naming
    its input partition and offset, keyed by that partition; an unknown one is refused."""
    data, _, pipe = setup_topic(tmp_path, 2, {
        0: [b'{"n": 2, "who": "a"}', b"bad-0", b'{"n": "x", "who": "b"}'],
        1: [b"bad-1", b'{"n": 4, "who": "c"}'],
    }, "dlq")
    cmd = [sys.executable, "-m", "plait.cli.main", "--data", str(data), "run", str(pipe),
           "--topic", "events", "--idle-timeout", "1"]
    missing = subprocess.run(cmd + ["--dead-letter-topic", "nope"], check=False, capture_output=True, timeout=120)
    assert missing.returncode == 1
    assert len(missing.stderr.decode().strip().splitlines()) == 1 and "nope" in missing.stderr.decode()
    done = subprocess.run(cmd + ["--dead-letter-topic", "dlq"], check=False, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert stats_of(done.stderr)["dead_letters"] == 3
    with plait.connect(f"embedded:{data}") as client, client.consumer(["dlq"], from_beginning=True) as c:
        got = []
        while len(got) < 3:
            batch = c.poll(timeout=5)
            assert batch, got
            got += batch
    letters = sorted(((m.key, json.loads(m.value)) for m in got), key=lambda x: (x[1]["partition"], x[1]["offset"]))
    assert [(k, d["partition"], d["offset"], d["stage"]) for k, d in letters] == [
        (b"0", 0, 1, "decode"), (b"0", 0, 2, "decode"), (b"1", 1, 0, "decode"),
    ]
    assert letters[0][1]["value"] == "bad-0"


def test_sigterm_stops_run_between_polls_and_commits(tmp_path):
    """SIGTERM (a Kubernetes pod stop) ends ``plait run`` cleanly: exit 0, the stats
    line, every event it read committed, so a restart reads nothing twice."""
    import signal
    import time

    values = [json.dumps({"n": 2 * i, "who": "x"}).encode() for i in range(50)]
    data, out, pipe = setup_topic(tmp_path, 2, {None: values})
    cmd = [sys.executable, "-m", "plait.cli.main", "--data", str(data), "run", str(pipe),
           "--topic", "events", "--group", "g"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while (not out.exists() or len(out.read_text().splitlines()) < 50) and proc.poll() is None:
        assert time.monotonic() < deadline, "no output in 60 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert stats_of(err)["rows_in"] == 50
    again = subprocess.run(cmd + ["--idle-timeout", "1"], check=False, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert stats_of(again.stderr)["rows_in"] == 0
    assert len(out.read_text().splitlines()) == 50


TOPIC_PIPELINE = '''
from plait.pipeline import pipeline as make
from plait.process.sinks import TopicSink
def pipeline(source, client):
    return make(source, engine="cpu").decode({"n": "int", "who": "str"}).filter("n % 2 == 0").to(
        TopicSink(client.producer(), "evens", key="who"))
'''


def read_topic(client, topic: str, count: int) -> list:
    import time

    deadline = time.monotonic() + 30  # a kafka:// consumer's first polls may come back empty
    with client.consumer([topic], from_beginning=True) as consumer:
        got: list = []
        while len(got) < count:
            assert time.monotonic() < deadline, f"{len(got)} of {count} records in 30 s"
            got += consumer.poll(timeout=1)
    return got


def test_run_produces_to_a_topic_with_the_runs_own_client(tmp_path):
    """pipeline(source, client) gets the run's client, embedded or through the broker,
    and a TopicSink on it produces to another topic: keyed rows, one key's rows in order."""
    from plait.broker.testing import ServeProcess

    values = [json.dumps({"n": i, "who": f"u{i % 3}"}).encode() for i in range(30)]
    data, _, _ = setup_topic(tmp_path, 2, {None: values}, "evens")
    pipe = tmp_path / "to_topic.py"
    pipe.write_text(TOPIC_PIPELINE)
    embedded = subprocess.run(
        [sys.executable, "-m", "plait.cli.main", "--data", str(data), "run", str(pipe),
         "--topic", "events", "--idle-timeout", "1"], check=False, capture_output=True, timeout=120,
    )
    assert embedded.returncode == 0, embedded.stderr.decode()[-2000:]
    with plait.connect(f"embedded:{data}") as client:
        got = read_topic(client, "evens", 15)
    by_key: dict = {}
    for m in got:
        by_key.setdefault(m.key, []).append(json.loads(m.value)["n"])
    assert by_key == {f"u{k}".encode(): [n for n in range(0, 30, 2) if n % 3 == k] for k in range(3)}
    with ServeProcess(tmp_path / "broker") as broker:
        with plait.connect(f"kafka://{broker.bootstrap}") as client:
            client.create_topic("events", 2)
            client.create_topic("evens", 1)
            with client.producer() as producer:
                producer.send_batch("events", values)
        remote = subprocess.run(
            [sys.executable, "-m", "plait.cli.main", "run", str(pipe), "--bootstrap", broker.bootstrap,
             "--topic", "events", "--idle-timeout", "2"], check=False, capture_output=True, timeout=120,
        )
        assert remote.returncode == 0, remote.stderr.decode()[-2000:]
        with plait.connect(f"kafka://{broker.bootstrap}") as client:
            got = read_topic(client, "evens", 15)
    assert sorted(json.loads(m.value)["n"] for m in got) == list(range(0, 30, 2))
