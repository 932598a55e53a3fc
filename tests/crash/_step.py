"""Crash-test child: run the exactly-once step until caught up, or until killed.

Usage: python _step.py DATA_DIR SEED
Prints "READY" once the step has joined its group, "WARM" after its first output
(the first poll of a process pays for loading compiled kernels), "DONE <n>" after
polls found nothing new for a while (then exits 0). The batch size varies with SEED, so batch
boundaries differ between incarnations, as they do after a real restart.
"""

from __future__ import annotations

import random
import sys
import time

import plait
from plait.functions import Step


def transform(m: plait.Message) -> bytes | list[bytes] | None:
    """Deterministic, and not one-to-one: drops some events, doubles others."""
    n = int(m.value or b"0")
    if n % 7 == 0:
        return None
    if n % 5 == 0:
        return [b"a%d" % n, b"b%d" % n]
    return b"x%d" % n


def main() -> None:
    data, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    client = plait.connect(f"embedded:{data}")
    step = Step(
        client, "crash", "in", "out", transform,
        member_id="worker", session_timeout_s=2.0, max_records=rng.randint(3, 80),
    )
    # Model a metadata store with network latency (etcd): the gap between an append
    # and the commit of its input offsets is then wide enough for kills to land in it.
    commit = step.consumer.commit

    def slow_commit(offsets: dict[tuple[str, int], int] | None = None) -> None:
        time.sleep(0.005)
        commit(offsets)

    step.consumer.commit = slow_commit  # type: ignore[method-assign]
    print("READY", flush=True)
    done = step.run_once(2.0)
    print("WARM", flush=True)
    done += step.run(idle_exit_s=0.5)
    print(f"DONE {done}", flush=True)
    step.close()
    client.close()


if __name__ == "__main__":
    main()
