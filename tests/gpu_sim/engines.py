"""The engine and backend these tests run on: numba's CUDA simulator where
NUMBA_ENABLE_CUDASIM=1 (CI, tests/conftest.py sets it), the real GPU where it is 0 and a
device is present (``NUMBA_ENABLE_CUDASIM=0 pytest tests/gpu_sim tests/gpu`` on a GPU
machine runs every comparison on the device)."""

from __future__ import annotations

import os
from typing import Any

import pytest


def on_simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def engine_under_test() -> Any:
    from plait.process.errors import GpuUnavailableError
    from plait.process.gpu import load_gpu_engine, sim_engine

    if on_simulator():
        return sim_engine()
    try:
        return load_gpu_engine()
    except GpuUnavailableError as exc:
        pytest.skip(f"no GPU and the simulator is off: {exc.reason}", allow_module_level=True)


def backend_under_test() -> Any:
    return engine_under_test().backend
