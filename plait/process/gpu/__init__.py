"""The GPU engine (optional extra ``gpu``: CuPy and numba-cuda), imported only when asked for.

:func:`load_gpu_engine` returns the engine or raises :class:`GpuUnavailableError` saying
why (CuPy or numba-cuda not installed, no CUDA device, driver error); it never crashes the
caller. :func:`sim_engine` gives the same engine on numba's CUDA simulator, for tests on
machines without a GPU.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from plait.process.errors import GpuUnavailableError

if TYPE_CHECKING:
    from plait.process.gpu.engine import GpuEngine

_cached: GpuEngine | None = None


def load_gpu_engine() -> GpuEngine:
    """The process-wide GPU engine; raises GpuUnavailableError with the reason."""
    global _cached
    if _cached is not None:
        return _cached
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise GpuUnavailableError(
            "NUMBA_ENABLE_CUDASIM=1: numba runs kernels on its CPU simulator, not a GPU"
        )
    try:
        import cupy
    except ImportError as exc:
        raise GpuUnavailableError(
            f"CuPy is not installed (pip install 'plait[gpu]'): {exc}"
        ) from exc
    except Exception as exc:  # a broken CUDA install can fail at import with many types
        raise GpuUnavailableError(f"CuPy failed to import: {exc}") from exc
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # cupy raises CUDARuntimeError, which we do not import eagerly
        raise GpuUnavailableError(f"no usable CUDA driver/device: {exc}") from exc
    if count < 1:
        raise GpuUnavailableError("CuPy sees no CUDA device")
    try:
        from numba import cuda

        if not cuda.is_available():
            raise GpuUnavailableError("numba.cuda sees no CUDA device")
    except ImportError as exc:
        raise GpuUnavailableError(
            f"numba-cuda is not installed (pip install 'plait[gpu]'): {exc}"
        ) from exc
    from plait.process.gpu.device import CudaBackend
    from plait.process.gpu.engine import GpuEngine

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    raw = props.get("name", b"gpu")
    _cached = GpuEngine(CudaBackend(cupy), raw.decode() if isinstance(raw, bytes) else str(raw))
    return _cached


def sim_engine() -> GpuEngine:
    """The GPU engine on numba's CUDA simulator (needs NUMBA_ENABLE_CUDASIM=1 before numba
    is imported): same kernels and host code, NumPy arrays, slow. For tests."""
    from plait.process.gpu.device import SimBackend
    from plait.process.gpu.engine import GpuEngine

    return GpuEngine(SimBackend(), "numba CUDA simulator")


def gpu_status() -> tuple[bool, str]:
    """(available, reason or device name) without raising."""
    try:
        eng = load_gpu_engine()
    except GpuUnavailableError as exc:
        return False, exc.reason
    return True, eng.device_name
