"""What the window operators cost per batch, by key count.

Usage: python benchmarks/window_cost.py [BATCHES]
Feeds BATCHES (default 5) batches of 65,536 events (one minute of event time each,
in order, float values) through a tumbling 60 s window and a 5 s-gap session window,
with 100 and with 10,000 keys, without and with two quantiles; prints the median time
per batch and rows/s. The windows keep per-window state in Python objects, so the cost
grows with the number of (key, window) groups a batch touches, not with its rows.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import pyarrow as pa

from plait.process.session import SessionSpec, SessionWindowOperator
from plait.process.window import WindowOperator, WindowSpec

ROWS = 65_536


def run(make: object, keys: int, batches: int) -> float:
    rng = np.random.default_rng(1)
    op = make()  # type: ignore[operator]
    took = []
    for b in range(batches):
        ts = np.sort(rng.integers(b * 60_000, (b + 1) * 60_000, ROWS))
        batch = pa.record_batch({"ts": ts, "k": rng.integers(0, keys, ROWS), "v": rng.random(ROWS)})
        t0 = time.perf_counter()
        op.process(batch)
        took.append(time.perf_counter() - t0)
    return statistics.median(took)


def main(batches: int = 5) -> None:
    for keys in (100, 10_000):
        for quantiles in ((), (0.5, 0.99)):
            kinds = {
                "tumbling 60 s": lambda q=quantiles: WindowOperator(WindowSpec(
                    size=60_000, time="ts", key="k", value="v", lateness=10_000, quantiles=q)),
                "session gap 5 s": lambda q=quantiles: SessionWindowOperator(SessionSpec(
                    gap=5_000, time="ts", key="k", value="v", lateness=10_000, quantiles=q)),
            }
            for name, make in kinds.items():
                t = run(make, keys, batches)
                print(f"{name}, {keys:,} keys, {len(quantiles)} quantiles: "
                      f"{t * 1e3:.0f} ms per 64k batch ({ROWS / t / 1e6:.2f} M rows/s)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
