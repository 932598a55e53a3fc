from __future__ import annotations

from plait.log.index import OffsetIndex, TimeIndex


def test_offset_index_lookup_and_round_trip() -> None:
    index = OffsetIndex()
    for rel, pos in [(3, 100), (7, 250), (12, 600)]:
        index.append(rel, pos)
    assert index.lookup(0) == (0, 0)
    assert index.lookup(3) == (3, 100)
    assert index.lookup(11) == (7, 250)
    assert index.lookup(99) == (12, 600)
    again = OffsetIndex.from_bytes(index.to_bytes())
    assert again is not None and again.offsets == [3, 7, 12] and again.positions == [100, 250, 600]
    index.truncate_to_position(250)
    assert index.offsets == [3]


def test_offset_index_rejects_torn_or_unsorted_bytes() -> None:
    index = OffsetIndex()
    index.append(5, 10)
    index.append(9, 50)
    data = index.to_bytes()
    assert OffsetIndex.from_bytes(data[:-3]) is None
    assert OffsetIndex.from_bytes(data[8:] + data[:8]) is None


def test_time_index_keeps_growing_maxima_only() -> None:
    index = TimeIndex()
    index.maybe_append(100, 0)
    index.maybe_append(90, 4)   # not a new maximum: ignored
    index.maybe_append(200, 9)
    assert index.timestamps == [100, 200] and index.offsets == [0, 9]
    assert index.lookup(50) == 0
    assert index.lookup(150) == 0   # last entry with max < 150 is (100, 0)
    assert index.lookup(201) == 9
    assert index.max_timestamp == 200
    assert TimeIndex.from_bytes(index.to_bytes()) is not None
    bad = TimeIndex()
    bad.timestamps, bad.offsets = [200, 100], [0, 1]
    assert TimeIndex.from_bytes(bad.to_bytes()) is None
