"""Engine interfaces (one Protocol per operator family), the CPU reference engine, and the
per-batch choice between CPU and GPU.

Contract for every engine: on the same input it returns exactly what the CPU engine
returns (same rows, order, values, dead-letter positions and reasons). The GPU conformance
tests in tests/gpu/ check this operator by operator.

Choice: ``engine="cpu"`` always uses the CPU; ``"gpu"`` uses the GPU or raises
:class:`GpuUnavailableError` up front; ``"auto"`` uses the GPU for an operator only when
one is present and the batch has at least that operator's measured crossover size (see
:func:`calibrate`), and silently uses the CPU otherwise.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import pyarrow as pa

from plait.errors import ConfigError
from plait.process.cpu.decode import DecodeResult, decode_records, decode_records_where
from plait.process.cpu.decrypt import DecryptResult, decrypt_cpu
from plait.process.cpu.expr_compile import CompiledExpr
from plait.process.cpu.match import match_cpu
from plait.process.decrypt import KeyRing
from plait.process.errors import GpuUnavailableError
from plait.process.match import MatchResult, PatternSet
from plait.process.schema import Schema

EngineName = Literal["auto", "cpu", "gpu"]
OPS = ("decode", "filter", "match", "decrypt")


@runtime_checkable
class DecodeEngine(Protocol):
    def decode(self, values: Sequence[bytes], schema: Schema, fmt: str) -> DecodeResult:
        """Decode raw records; rows in input order, failures as (position, reason)."""
        ...


@runtime_checkable
class FilterEngine(Protocol):
    def evaluate(self, expr: CompiledExpr, batch: pa.RecordBatch) -> pa.Array:
        """Evaluate a checked expression over a batch, one value per row."""
        ...


@runtime_checkable
class MatchEngine(Protocol):
    def match(self, values: pa.Array, patterns: PatternSet) -> MatchResult:
        """Pattern ids found in each record (sorted, unique) and an any-hit flag."""
        ...


@runtime_checkable
class DecryptEngine(Protocol):
    def decrypt(
        self, values: pa.Array, key_ids: pa.Array, ring: KeyRing, aad: pa.Array | None
    ) -> DecryptResult:
        """AES-GCM per record; failures as (position, reason), their plaintext null."""
        ...


class Engine(DecodeEngine, FilterEngine, MatchEngine, DecryptEngine, Protocol):
    name: str


class CpuEngine:
    """The reference engine: pyarrow / msgspec decode, pyarrow.compute, Hyperscan, OpenSSL."""

    name = "cpu"

    def decode(self, values: Sequence[bytes], schema: Schema, fmt: str) -> DecodeResult:
        return decode_records(values, schema, fmt)

    def decode_where(
        self, values: Sequence[bytes], schema: Schema, fmt: str, where: str
    ) -> tuple[DecodeResult, bool]:
        """Decode and, where it can, filter in the same pass: (result, whether ``where``
        was applied). Only the CPU engine has it; a pipeline's decode + filter use it."""
        return decode_records_where(values, schema, fmt, where)

    def evaluate(self, expr: CompiledExpr, batch: pa.RecordBatch) -> pa.Array:
        return expr(batch)

    def match(self, values: pa.Array, patterns: PatternSet) -> MatchResult:
        return match_cpu(values, patterns)

    def decrypt(
        self, values: pa.Array, key_ids: pa.Array, ring: KeyRing, aad: pa.Array | None
    ) -> DecryptResult:
        return decrypt_cpu(values, key_ids, ring, aad)


CPU = CpuEngine()


def default_cache_path() -> Path:
    """Where measured crossovers are cached (the one place this module reads the env)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "plait" / "crossover.json"


@dataclass
class Crossover:
    """Smallest batch size from which the GPU beat the CPU, per operator (None: never)."""

    device: str
    thresholds: dict[str, int | None] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"device": self.device, "thresholds": self.thresholds})
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Crossover | None:
        try:
            raw = json.loads(path.read_text())
            return cls(
                str(raw["device"]),
                {
                    str(k): (None if v is None else int(v))
                    for k, v in raw["thresholds"].items()
                },
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def calibrate(
    gpu: Engine,
    cpu: Engine = CPU,
    sizes: Sequence[int] = (1024, 8192, 65536, 262144),
    repeat: int = 3,
) -> Crossover:
    """Time both engines on synthetic batches; the crossover of an operator is the smallest
    size from which the GPU is faster at every larger size measured."""
    from plait.process import bench_data  # local: only calibration needs it

    thresholds: dict[str, int | None] = {}
    for op in ("decode", "filter", "match", "decrypt"):
        faster: list[bool] = []
        for n in sizes:
            task_cpu, task_gpu = bench_data.op_tasks(op, n, cpu, gpu)
            faster.append(_best(task_gpu, repeat) < _best(task_cpu, repeat))
        thresholds[op] = None
        for i in range(len(sizes) - 1, -1, -1):
            if not faster[i]:
                break
            thresholds[op] = sizes[i]
    return Crossover(getattr(gpu, "device_name", "gpu"), thresholds)


def _best(task: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        task()
        best = min(best, time.perf_counter() - t)
    return best


class EngineSelector:
    """Picks the engine for each (operator, batch size); see the module docstring."""

    def __init__(
        self,
        engine: str = "auto",
        *,
        cache_path: Path | None = None,
        crossover: Crossover | None = None,
        gpu: Engine | None = None,
    ) -> None:
        """``gpu``: use this GPU engine instead of loading the device's (tests pass the
        simulator's, :func:`plait.process.gpu.sim_engine`)."""
        if engine not in ("auto", "cpu", "gpu"):
            raise ConfigError(
                f"engine: expected 'auto', 'cpu' or 'gpu', got {engine!r}"
            )
        self.mode = engine
        self.gpu: Engine | None = None
        self.gpu_reason: str | None = None
        self.crossover = crossover
        if engine == "cpu":
            return
        from plait.process.gpu import load_gpu_engine

        try:
            self.gpu = gpu if gpu is not None else load_gpu_engine()
        except GpuUnavailableError as exc:
            if engine == "gpu":
                raise
            self.gpu_reason = exc.reason
            return
        if engine == "auto" and self.crossover is None:
            path = cache_path or default_cache_path()
            self.crossover = Crossover.load(path)
            if self.crossover is None or self.crossover.device != getattr(
                self.gpu, "device_name", "gpu"
            ):
                self.crossover = calibrate(self.gpu)
                self.crossover.save(path)

    def pick(self, op: str, n_rows: int) -> Engine:
        if self.mode == "cpu" or self.gpu is None:
            return CPU
        if self.mode == "gpu":
            return self.gpu
        assert self.crossover is not None
        threshold = self.crossover.thresholds.get(op)
        return self.gpu if threshold is not None and n_rows >= threshold else CPU
