"""Quix Streams runs an unchanged example application against plait serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from plait.broker.testing import ServeProcess

APP = Path(__file__).parent / "apps" / "quix_word_counts.py"
SENTENCES = ["the quick brown fox", "the lazy dog", "The fox jumps", "a dog and a fox"]


def test_quix_word_count_app(serve: ServeProcess, tmp_path: Path) -> None:
    p = Producer({"bootstrap.servers": serve.bootstrap})
    for s in SENTENCES:
        # One key: Quix keeps state per message key, so all sentences share one count.
        p.produce("text-input", key=b"doc", value=json.dumps({"text": s}).encode())
    assert p.flush(10) == 0

    env = dict(os.environ, Quix__Broker__Address=serve.bootstrap, Quix__State__Dir=str(tmp_path))
    app = subprocess.Popen([sys.executable, "-W", "ignore", str(APP)], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        c = Consumer({"bootstrap.servers": serve.bootstrap, "group.id": "checker",
                      "auto.offset.reset": "earliest"})
        c.subscribe(["word-counts"])
        final: dict[str, int] = {}
        want = {"the": 3, "fox": 3, "dog": 2, "a": 2, "quick": 1, "lazy": 1}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(final.get(w) != n for w, n in want.items()):
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            row = json.loads(msg.value())
            final[row["word"]] = max(final.get(row["word"], 0), row["count"])
        c.close()
        assert {w: final.get(w) for w in want} == want
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            out, _ = app.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            out, _ = app.communicate()
    assert app.returncode == 0, out.decode(errors="replace")[-3000:]
