"""Latency percentiles and machine facts for benchmark reports."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np


def percentiles_ms(latencies_ns: np.ndarray) -> dict[str, float]:
    """p50/p99/p999 in milliseconds; NaN-free zeros when nothing was measured."""
    if len(latencies_ns) == 0:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "p999_ms": 0.0}
    p50, p99, p999 = np.percentile(latencies_ns, [50, 99, 99.9]) / 1e6
    return {"p50_ms": round(float(p50), 4), "p99_ms": round(float(p99), 4), "p999_ms": round(float(p999), 4)}


def machine() -> dict[str, object]:
    """Facts BENCHMARKS.md needs next to each figure."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "commit": _commit(),
    }


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False, capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
