"""The columnar twin: input forms, outputs, errors, and the interpreter fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from plait.errors import ConfigError
from plait.protocol import _records_numba
from plait.protocol.batch_header import parse_header, set_base_offset
from plait.protocol.records import (
    decode_batch,
    decode_columns,
    encode_batch,
    encode_columns,
    encode_columns_into,
    iter_records,
)

VALUES = [b"alpha", b"", None, b"\x00\xff" * 40]
KEYS = [b"k0", None, b"", b"k3"]
TS = [1_700_000_000_000, 1_700_000_000_003, 1_699_999_999_000, 1_700_000_000_001]
REFERENCE = encode_batch([(k, v, t, []) for k, v, t in zip(KEYS, VALUES, TS)])


@pytest.mark.parametrize(
    "form",
    [
        lambda xs: xs,
        lambda xs: pa.array(xs, type=pa.binary()),
        lambda xs: pa.array(xs, type=pa.large_binary()),
        lambda xs: pa.chunked_array([pa.array(xs[:2], pa.binary()), pa.array(xs[2:], pa.binary())]),
    ],
    ids=["list", "binary", "large_binary", "chunked"],
)
def test_encode_forms_are_byte_identical(form):
    out = encode_columns(form(VALUES), form(KEYS), np.array(TS))
    assert isinstance(out, bytearray)
    assert bytes(out) == REFERENCE


def test_numpy_buffer_and_offsets_form():
    values = [b"one", b"", b"three"]
    data = np.frombuffer(b"".join(values), dtype=np.uint8)
    offsets = np.array([0, 3, 3, 8], dtype=np.int64)
    out = encode_columns((data, offsets), timestamps=[7, 8, 9], base_offset=50)
    assert bytes(out) == encode_batch(
        [(None, v, t, []) for v, t in zip(values, [7, 8, 9])], base_offset=50
    )
    with pytest.raises(ConfigError, match="fall at record 1"):
        encode_columns((data, np.array([0, 5, 3, 8])))
    with pytest.raises(ConfigError, match="offsets must rise"):
        encode_columns((data, np.array([0, 3, 3, 9])))
    with pytest.raises(ConfigError, match="fall at record 2"):
        encode_columns([b"a", b"b", b"c"], (data, np.array([0, 3, 3, 2])))


def test_forged_arrow_offsets_are_rejected_not_read_out_of_bounds():
    # pyarrow itself refuses offsets past the data; falling ones it lets through.
    data = pa.py_buffer(b"abcdef")
    falling = pa.Array.from_buffers(
        pa.binary(), 2, [None, pa.py_buffer(np.array([0, 5, 2], np.int32)), data]
    )
    with pytest.raises(ConfigError, match="fall at record 1"):
        encode_columns(falling)
    with pytest.raises(ConfigError, match="fall at record 1"):
        encode_columns([b"a", b"b"], falling)
    del falling  # an invalid array: keep it out of any failure report's repr


def test_no_timestamps_uses_base_timestamp():
    out = encode_columns([b"a", b"b"], base_timestamp=123_456)
    header, records = decode_batch(bytes(out))
    assert [r.timestamp for r in records] == [123_456, 123_456]
    assert (header.base_timestamp, header.max_timestamp) == (123_456, 123_456)


def test_explicit_base_timestamp_with_timestamps_decodes_the_same():
    out = encode_columns([b"a", b"b"], timestamps=[500, 400], base_timestamp=0)
    assert parse_header(out).base_timestamp == 0
    assert [r.timestamp for r in decode_batch(bytes(out))[1]] == [500, 400]


def test_producer_fields_and_in_place_offset_rewrite():
    out = encode_columns([b"a"] * 3, producer_id=11, producer_epoch=2, base_sequence=30)
    set_base_offset(out, 0, 900)
    header = parse_header(out)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (
        11,
        2,
        30,
    )
    assert decode_columns(bytes(out)).offsets.tolist() == [900, 901, 902]


def test_encode_rejects_bad_columns():
    with pytest.raises(ConfigError, match="at least one record"):
        encode_columns([])
    with pytest.raises(ConfigError, match="keys has 1 entries, values has 2"):
        encode_columns([b"a", b"b"], [b"k"])
    with pytest.raises(ConfigError, match="timestamps has shape"):
        encode_columns([b"a", b"b"], timestamps=[1])
    with pytest.raises(ConfigError, match="binary array"):
        encode_columns(pa.array([1, 2]))
    with pytest.raises(ConfigError, match="timestamps must be 64-bit ints"):
        encode_columns([b"a"], timestamps=[2**64])
    with pytest.raises(ConfigError, match="producer_epoch must be a 16-bit"):
        encode_columns([b"a"], producer_epoch=40_000)
    with pytest.raises(ConfigError, match="base_timestamp must be a 64-bit"):
        encode_columns([b"a"], base_timestamp=2**64)
    with pytest.raises(ConfigError, match="base_offset must be a 64-bit"):
        encode_columns_into(bytearray(100), 0, [b"a"], base_offset=-(2**64))


def test_decode_outputs_are_typed_columns():
    cols = decode_columns(REFERENCE + encode_batch([(b"x", b"y", 5, [("h", b"")])], base_offset=4))
    assert len(cols) == 5
    assert cols.offsets.dtype == np.int64 and cols.timestamps.dtype == np.int64
    assert cols.keys.type == pa.binary() and cols.values.type == pa.binary()
    assert cols.keys.to_pylist() == KEYS + [b"x"]
    assert cols.values.to_pylist() == VALUES + [b"y"]
    assert cols.values.null_count == 1
    assert cols.timestamps.tolist() == TS + [5]
    assert cols.records_with_headers == 1


def test_decode_all_null_keys_and_empty_buffer():
    cols = decode_columns(bytes(encode_columns([b"a", b"b"], timestamps=[1, 2])))
    assert cols.keys.null_count == 2 and cols.keys.type == pa.binary()
    empty = decode_columns(b"")
    assert len(empty) == 0 and len(empty.values) == 0


def test_decode_compressed_mixed_with_plain():
    parts = [
        encode_batch([(b"k", b"v%d" % i, i, [])], base_offset=i, compression=i % 5)
        for i in range(10)
    ]
    cols = decode_columns(b"".join(parts))
    assert cols.offsets.tolist() == list(range(10))
    assert cols.values.to_pylist() == [b"v%d" % i for i in range(10)]


SCRIPT = """
import json, sys
{prelude}
from plait.protocol import _records_numba as k
from plait.protocol.records import encode_columns, decode_columns, encode_batch
rows = [(b"k%d" % i if i % 3 else None, b"v" * i if i % 4 else None, 10**12 + 7 * i - i * i, [])
        for i in range(40)]
ref = encode_batch(rows, base_offset=2**40)
out = encode_columns([r[1] for r in rows], [r[0] for r in rows], [r[2] for r in rows],
                     base_offset=2**40)
cols = decode_columns(ref + bytes(out))
print(json.dumps({{"backend": k.BACKEND, "active": k.NUMBA_ACTIVE, "same": bytes(out) == ref,
    "values": [v.hex() if v is not None else None for v in cols.values.to_pylist()],
    "offsets": cols.offsets.tolist(), "ts": cols.timestamps.tolist()}}))
"""


def _run(prelude: str, env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(prelude=prelude)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_interpreter_fallback_gives_identical_results():
    without_numba = _run("sys.modules['numba'] = None", {})
    jit_disabled = _run("", {"NUMBA_DISABLE_JIT": "1"})
    compiled = _run("", {})
    assert without_numba["backend"] == "python" and not without_numba["active"]
    assert jit_disabled["backend"] == "python"
    assert compiled["backend"] == "numba" and compiled["active"]
    for result in (without_numba, jit_disabled, compiled):
        assert result["same"]
        assert result["offsets"] == [2**40 + i for i in range(40)] * 2
    assert without_numba == {**compiled, "backend": "python", "active": False}


def test_numba_backend_active_here():
    """CI installs numba, so the fast path must be the one in use."""
    assert _records_numba.BACKEND == "numba"


def test_second_process_loads_kernels_from_cache():
    """cache=True: after one process compiled the kernels, the next one loads them."""
    script = (
        "from plait.protocol import _records_numba as k;"
        "from plait.protocol.records import encode_columns, decode_columns;"
        "decode_columns(bytes(encode_columns([b'a', None], [None, b'k'], [1, 2])));"
        "print(sum(len(f.stats.cache_hits) for f in (k.encode_into, k.decode_sections)),"
        " sum(len(f.stats.cache_misses) for f in (k.encode_into, k.decode_sections)))"
    )

    def run() -> list[int]:
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return [int(x) for x in proc.stdout.split()]

    run()  # compiles and writes the cache, unless an earlier run did
    hits, misses = run()
    assert (hits, misses) == (2, 0)


def test_decoders_take_any_buffer():
    two = REFERENCE + encode_batch([(None, b"z", 9, [])], base_offset=4, compression=2)
    for buf in (bytearray(two), memoryview(two), memoryview(b"xx" + two)[2:]):
        cols = decode_columns(buf)
        assert cols.values.to_pylist() == VALUES + [b"z"]
        assert [r.value for r in decode_batch(buf)[1]] == VALUES


def test_encode_into_reused_buffers():
    single = encode_batch([(None, v, 7, []) for v in VALUES])
    for out in (bytearray(1000), np.zeros(1000, np.uint8), memoryview(bytearray(1000))):
        end = encode_columns_into(out, 10, VALUES, timestamps=[7] * 4)
        assert end == 10 + len(single)
        second = encode_columns_into(out, end, VALUES, timestamps=[7] * 4, base_offset=4)
        assert bytes(out[10:end]) == single
        assert [r.offset for r in iter_records(bytes(out[10:second]))] == list(range(8))


def test_encode_into_refuses_before_writing():
    out = bytearray(50)
    with pytest.raises(ConfigError, match="does not fit a 50-byte buffer"):
        encode_columns_into(out, 0, [b"x" * 10])
    assert out == bytearray(50)
    with pytest.raises(ConfigError, match="does not fit"):
        encode_columns_into(bytearray(200), -1, [b"x"])
    with pytest.raises(ConfigError, match="read-only"):
        encode_columns_into(memoryview(bytes(200)), 0, [b"x"])
    with pytest.raises(ConfigError, match="uint8"):
        encode_columns_into(np.zeros(200, np.int64), 0, [b"x"])


def test_gather_writes_int64_offsets_for_large_binary():
    """The >2 GiB path (large_binary offsets) of the gather kernel, on a small input."""
    data = np.frombuffer(b"..abc.de", dtype=np.uint8)
    pos = np.array([2, 0, 6], np.int64)
    lens = np.array([3, -1, 2], np.int64)
    offsets = np.empty(4, np.int64)
    out = np.empty(5, np.uint8)
    _records_numba.gather(data, pos, lens, offsets, out)
    assert offsets.tolist() == [0, 3, 3, 5]
    assert out.tobytes() == b"abcde"
    assert _records_numba.field_totals(lens) == (5, 1)
