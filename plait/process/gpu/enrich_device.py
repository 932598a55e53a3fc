"""Enrich's key lookup on the device for integer keys: the reference keys sorted once per
table snapshot, each probe found by binary search (``searchsorted``), one pass over the
batch with no hashing. The reference columns themselves are gathered on the host, from
the positions of the rows that survive the pipeline (:meth:`ReferenceTable.attach`), so
only surviving rows pay for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from plait.process.enrich import ReferenceTable
from plait.process.gpu.device import Backend
from plait.process.gpu.expr_device import DVal


class DeviceKeyIndex:
    """Sorted integer keys of one snapshot, on the device."""

    def __init__(self, backend: Backend, keys: pa.Array) -> None:
        host = keys.to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.argsort(host, kind="stable")
        self.backend = backend
        self.sorted = backend.to_device(host[order])
        self.order = backend.to_device(order.astype(np.int64))
        self.size = len(host)

    def positions(self, probe: DVal) -> Any:
        """Device int64: the reference row of each probe key, -1 for no match or null."""
        xp = self.backend.xp
        n = int(probe.data.shape[0])
        if self.size == 0:
            return xp.full(n, -1, dtype=np.int64)
        at = xp.searchsorted(self.sorted, probe.data)
        at = xp.minimum(at, self.size - 1)
        hit = self.sorted[at] == probe.data
        if probe.valid is not None:
            hit = hit & probe.valid
        return xp.where(hit, self.order[at], -1)


class DeviceEnricher:
    """Per reference table: the device index of its current snapshot, rebuilt on reload."""

    def __init__(self, backend: Backend, table: ReferenceTable) -> None:
        self.backend = backend
        self.table = table
        self._snap: object = None
        self._index: DeviceKeyIndex | None = None

    def index(self, snap: Any, probe_type: pa.DataType, on: str) -> DeviceKeyIndex:
        if snap is not self._snap or self._index is None:
            keys = self.table.keys_as(snap, probe_type, on)
            self._index = DeviceKeyIndex(self.backend, keys)
            self._snap = snap
        return self._index


def positions_array(pos: np.ndarray) -> pa.Array:
    """Host positions (-1: no match) as the int64 index array ``attach`` takes."""
    return pa.array(pos, type=pa.int64(), mask=pos < 0)
