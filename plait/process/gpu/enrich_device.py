"""Enrich's key lookup on the device for integer keys: the snapshot's keys sorted once
(:meth:`ReferenceTable.sorted_index`, shared with the CPU engine), uploaded once, and each
probe found by binary search, one pass over the batch with no hashing. The reference
columns themselves are gathered on the host, from the positions of the rows that survive
the pipeline (:meth:`ReferenceTable.attach`), so only surviving rows pay for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from plait.process.enrich import ReferenceTable, SortedIntIndex, search_sorted_keys
from plait.process.gpu.device import Backend
from plait.process.gpu.expr_device import DVal


class DeviceEnricher:
    """One reference table's sorted keys on the device, uploaded again only when the
    table's snapshot (and so its sorted index) changes."""

    def __init__(self, backend: Backend, table: ReferenceTable) -> None:
        self.backend = backend
        self.table = table
        self._source: SortedIntIndex | None = None
        self._sorted: Any = None
        self._order: Any = None

    def positions(self, snap: Any, probe: DVal, on: str) -> Any:
        """Device int64: the row of ``snap``'s table for each probe key, -1 for no match
        or a null key."""
        index = self.table.sorted_index(snap, pa.int64(), on)
        if index is not self._source:
            self._sorted = self.backend.to_device(index.sorted)
            self._order = self.backend.to_device(index.order)
            self._source = index
        return search_sorted_keys(self.backend.xp, self._sorted, self._order, probe.data,
                                  probe.valid)


def positions_array(pos: np.ndarray) -> pa.Array:
    """Host positions (-1: no match) as the int64 index array ``attach`` takes."""
    return pa.array(pos, type=pa.int64(), mask=pos < 0)
