"""The GPU engine (optional extra ``gpu``: CuPy). CuPy is imported only when asked for.

:func:`load_gpu_engine` returns the engine or raises :class:`GpuUnavailableError` saying
why (CuPy not installed, no CUDA device, driver error); it never crashes the caller.
"""

from __future__ import annotations

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
    except (
        Exception
    ) as exc:  # cupy raises CUDARuntimeError, which we do not import eagerly
        raise GpuUnavailableError(f"no usable CUDA driver/device: {exc}") from exc
    if count < 1:
        raise GpuUnavailableError("CuPy sees no CUDA device")
    from plait.process.gpu.engine import GpuEngine

    _cached = GpuEngine(cupy)
    return _cached


def gpu_status() -> tuple[bool, str]:
    """(available, reason or device name) without raising."""
    try:
        eng = load_gpu_engine()
    except GpuUnavailableError as exc:
        return False, exc.reason
    return True, eng.device_name
