"""Where the GPU engine's arrays live and how its kernels are launched.

The kernels are numba.cuda kernels (Python source compiled to PTX by numba), not CUDA C
strings: the same source runs on numba's CUDA simulator, so CI machines without a GPU
check every kernel's results against the CPU engine (tests/gpu_sim), and a GPU machine
runs them for real. Arrays are CuPy arrays on a device (numba launches kernels on them
through ``__cuda_array_interface__``) and plain NumPy arrays on the simulator.

Two backends with one interface:

- :class:`CudaBackend`: CuPy arrays on the current device; large host->device copies go
  in chunks through two reusable pinned (page-locked) buffers, the host filling one while
  the DMA engine copies the other.
- :class:`SimBackend`: NumPy arrays, kernels on the simulator. Only valid when numba was
  imported with ``NUMBA_ENABLE_CUDASIM=1`` (the test suite's conftest sets it).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any, Protocol

import numpy as np

THREADS = 256  # threads per block for the one-thread-per-record kernels


class Backend(Protocol):
    name: str
    xp: Any  # the array module: cupy or numpy

    def to_device(self, host: np.ndarray) -> Any:
        """Copy a host array to the device."""
        ...

    def to_host(self, dev: Any) -> np.ndarray:
        """Copy a device array back (waits for the work that writes it)."""
        ...

    def empty(self, shape: int | tuple[int, ...], dtype: Any) -> Any: ...

    def zeros(self, shape: int | tuple[int, ...], dtype: Any) -> Any: ...

    def synchronize(self) -> None:
        """Wait for every copy and kernel issued so far."""
        ...

    def copy_in(self, dst: Any, start: int, host: np.ndarray) -> Any:
        """Start copying ``host`` (uint8) into ``dst[start:]``; returns a token for
        :meth:`launch` to wait on (the copy may still be running)."""
        ...

    def launch(self, kernel: Any, n: int, after: Any, *args: Any) -> None:
        """Launch ``kernel`` over ``n`` items, one thread each, once ``after`` (a token of
        :meth:`copy_in`, or None) is done; it may run while later copies proceed."""
        ...


def grid(n: int, threads: int = THREADS) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` items, one thread each (at least one block of
    one warp; small launches get small blocks, which also keeps the simulator quick)."""
    threads = min(threads, max(32, (n + 31) // 32 * 32))
    return max(1, (n + threads - 1) // threads), threads


class SimBackend:
    """NumPy arrays; kernels run on numba's CUDA simulator (for tests without a GPU)."""

    name = "sim"
    xp: Any = np

    def __init__(self) -> None:
        if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
            raise RuntimeError(
                "SimBackend needs NUMBA_ENABLE_CUDASIM=1 set before numba is imported"
            )

    def to_device(self, host: np.ndarray) -> np.ndarray:
        return np.array(host, copy=True)

    def to_host(self, dev: np.ndarray) -> np.ndarray:
        return np.asarray(dev)

    def empty(self, shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def synchronize(self) -> None:
        return None

    def copy_in(self, dst: np.ndarray, start: int, host: np.ndarray) -> None:
        dst[start : start + len(host)] = host

    def launch(self, kernel: Any, n: int, after: Any, *args: Any) -> None:
        if n > 0:
            blocks, threads = grid(n)
            kernel[blocks, threads](*args)


class CudaBackend:
    """CuPy arrays on the current CUDA device, double-buffered pinned staging for uploads."""

    name = "cuda"

    CHUNK = 8 << 20  # bytes per staged copy: big enough for full DMA speed

    def __init__(self, cupy: Any) -> None:
        self.xp = cupy
        # Two pinned buffers: while the DMA engine copies one to the device, the host
        # fills the other, so the staging memcpy and the transfer overlap.
        self._stages: list[np.ndarray] = []
        self._done: list[Any] = [None, None]  # per stage: the event of its last copy
        self._turn = 0  # the stage the next copy starts with
        self._copy: Any = None
        self._compute: Any = None
        self._numba_compute: Any = None

    def _staging(self) -> list[np.ndarray]:
        if not self._stages:
            from numba import cuda

            for _ in range(2):
                mem = self.xp.cuda.alloc_pinned_memory(self.CHUNK)
                self._stages.append(np.frombuffer(mem, dtype=np.uint8, count=self.CHUNK))
            self._copy = self.xp.cuda.Stream(non_blocking=True)
            self._compute = self.xp.cuda.Stream(non_blocking=True)
            self._numba_compute = cuda.external_stream(self._compute.ptr)
        return self._stages

    def _stage_copy(self, dst_ptr: Any, src: np.ndarray) -> Any:
        """Copy host bytes to ``dst_ptr`` (a CuPy MemoryPointer) through the two pinned
        stages on the copy stream; returns the event of the last piece."""
        stages = self._staging()
        event = None
        for k, start in enumerate(range(0, len(src), self.CHUNK)):
            b = (self._turn + k) % 2
            if self._done[b] is not None:
                self._done[b].synchronize()  # the DMA out of this stage has finished
            size = min(self.CHUNK, len(src) - start)
            stages[b][:size] = src[start : start + size]
            # a ctypes pointer: every CuPy release takes it (plain ints only newer ones)
            src_ptr = ctypes.c_void_p(stages[b].ctypes.data)
            (dst_ptr + start).copy_from_host_async(src_ptr, size, self._copy)
            event = self._done[b] = self._copy.record()
        self._turn = (self._turn + max(1, -(-len(src) // self.CHUNK))) % 2
        return event

    def to_device(self, host: np.ndarray) -> Any:
        host = np.ascontiguousarray(host)
        if host.nbytes < (1 << 20):
            return self.xp.asarray(host)  # small: one pageable copy costs less than staging
        out = self.xp.empty(host.shape, dtype=host.dtype)
        self._stage_copy(out.data, host.reshape(-1).view(np.uint8))
        self._copy.synchronize()  # kernels on other streams may read it from now on
        return out

    def copy_in(self, dst: Any, start: int, host: np.ndarray) -> Any:
        if len(host) == 0:
            return None
        return self._stage_copy(dst.data + start, np.ascontiguousarray(host).view(np.uint8))

    def launch(self, kernel: Any, n: int, after: Any, *args: Any) -> None:
        if n <= 0:
            return
        self._staging()
        if after is not None:
            self._compute.wait_event(after)
        blocks, threads = grid(n)
        kernel[blocks, threads, self._numba_compute](*args)

    def to_host(self, dev: Any) -> np.ndarray:
        return self.xp.asnumpy(dev)

    def empty(self, shape: int | tuple[int, ...], dtype: Any) -> Any:
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape: int | tuple[int, ...], dtype: Any) -> Any:
        return self.xp.zeros(shape, dtype=dtype)

    def synchronize(self) -> None:
        if self._compute is not None:
            self._copy.synchronize()
            self._compute.synchronize()
        self.xp.cuda.get_current_stream().synchronize()


class DeviceStrings:
    """A string/binary column on the device: row i is ``data[offsets[i]:offsets[i + 1]]``
    (int64 offsets, n + 1 of them; they start at 0 after an upload or a take, but a
    decoded column points into the buffer all string columns share) and ``valid`` (uint8
    or bool, 0 for nulls)."""

    def __init__(self, data: Any, offsets: Any, valid: Any) -> None:
        self.data = data
        self.offsets = offsets
        self.valid = valid

    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1


def host_strings(values: Any, what: str = "match") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, offsets rebased to it, valid uint8) of a pa string/binary array (any offset
    width, sliced or chunked): only the bytes its rows use, at least one byte (an empty
    device buffer may have no address to pass to a kernel)."""
    from plait.process.match import string_buffers  # engine-neutral helper

    offsets, data, valid = string_buffers(values, what)
    base = int(offsets[0]) if len(offsets) else 0
    end = int(offsets[-1]) if len(offsets) else 0
    host = np.frombuffer(data, dtype=np.uint8)[base:end] if end > base else np.zeros(1, np.uint8)
    return host, offsets - base, valid.astype(np.uint8)


def upload_strings(backend: Backend, values: Any) -> DeviceStrings:
    """Copy a pa string/binary array to the device (see :func:`host_strings`)."""
    data, offsets, valid = host_strings(values)
    return DeviceStrings(
        backend.to_device(data), backend.to_device(offsets), backend.to_device(valid)
    )
