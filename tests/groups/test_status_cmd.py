"""``plait status``: topics, groups, members, committed offsets and lag, text and JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

import plait
from plait.cli.main import cli
from plait.groups.membership import GroupMembership
from plait.meta.url import open_meta


def test_status_reports_offsets_lag_and_live_members(tmp_path):
    data = tmp_path / "data"
    with plait.connect(f"embedded:{data}") as client:
        client.create_topic("orders", 2)
        with client.producer() as producer:
            producer.send_batch("orders", [b"%d" % i for i in range(10)], partition=0)
            producer.send_batch("orders", [b"%d" % i for i in range(4)], partition=1)
        consumer = client.consumer(["orders"], group="billing", from_beginning=True)
        got = []
        while len(got) < 14:
            got += consumer.poll(timeout=0.5)
        consumer.commit({("orders", 0): 7, ("orders", 1): 4})
        consumer.close()
    # A member in "another process" on the same SQLite metadata file, still alive.
    meta = open_meta(f"sqlite:{data / 'meta.sqlite'}")
    other = GroupMembership(meta, "billing", lambda t: 2, session_timeout_s=30)
    mid = other.join(["orders"])
    try:
        result = CliRunner().invoke(cli, ["--data", str(data), "status", "--json"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        (topic,) = doc["topics"]
        assert topic["name"] == "orders"
        assert [(p["log_start"], p["log_end"]) for p in topic["partitions"]] == [(0, 10), (0, 4)]
        (group,) = doc["groups"]
        assert group["name"] == "billing" and group["generation"] == other.generation
        assert [(m["id"], m["live"]) for m in group["members"]] == [(mid, True)]
        assert group["members"][0]["assignment"] == [["orders", 0], ["orders", 1]]
        lags = {(o["topic"], o["partition"]): (o["committed"], o["lag"]) for o in group["offsets"]}
        assert lags == {("orders", 0): (7, 3), ("orders", 1): (4, 0)}
        assert group["total_lag"] == 3
        text = CliRunner().invoke(cli, ["--data", str(data), "status"])
        assert text.exit_code == 0, text.output
        assert "billing  generation" in text.output and "lag 3" in text.output
        assert f"member {mid} (live)  orders[0], orders[1]" in text.output
    finally:
        other.close()
        meta.close()
