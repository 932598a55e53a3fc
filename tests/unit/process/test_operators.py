"""Decode dead letters, match edge cases, decrypt with a key ring, engine selection."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import msgpack
import pyarrow as pa
import pytest

from plait.errors import ConfigError
from plait.process.cpu.decode import decode_records
from plait.process.cpu.decrypt import decrypt_cpu
from plait.process.cpu.match import match_cpu
from plait.process.decrypt import KeyRing, encrypt_value
from plait.process.engine import CPU, Crossover, EngineSelector
from plait.process.errors import (
    GpuUnavailableError,
    KeyRingError,
    ProcessError,
    SchemaError,
)
from plait.process.gpu import gpu_status
from plait.process.match import PatternSet
from plait.process.schema import Schema

S = Schema.of({"id": "int", "amount": "float", "name": "string", "ok": "bool"})


def test_decode_reports_each_misfit_with_position_and_reason() -> None:
    values = [
        b'{"id": 1, "amount": 2, "name": "\\u00e9", "ok": true}',
        b'{"id": "1"}',
        b"[]",
        b'{"id": 99999999999999999999}',
        b'{"amount": 1.5, "extra": {"x": [1]}}',
        b"{",
        b"",
    ]
    res = decode_records(values, S)
    assert res.good.tolist() == [0, 4]
    assert res.batch.to_pylist() == [
        {"id": 1, "amount": 2.0, "name": "é", "ok": True},
        {"id": None, "amount": 1.5, "name": None, "ok": None},
    ]
    reasons = dict(res.errors)
    assert sorted(reasons) == [1, 2, 3, 5, 6]
    assert "`$.id`" in reasons[1] and "str" in reasons[1]
    assert "object" in reasons[2]
    assert "$.id" in reasons[3]


def test_decode_turns_records_of_other_types_into_dead_letters() -> None:
    """A record that is not bytes (an int, a dict) is a dead letter with its reason, not
    a crash; text is JSON too, but not msgpack."""
    values = [b'{"id": 1}', 5, '{"id": 2}', None, {"id": 3}, bytearray(b'{"id": 4}')]
    res = decode_records(values, S)  # type: ignore[arg-type]
    assert res.good.tolist() == [0, 2, 5]
    assert [r["id"] for r in res.batch.to_pylist()] == [1, 2, 4]
    assert res.errors == [
        (1, "record is not bytes or text: got int"),
        (3, "record has no value (null)"),
        (4, "record is not bytes or text: got dict"),
    ]
    res = decode_records([msgpack.packb({"id": 1}), "x", 7], S, "msgpack")  # type: ignore[list-item]
    assert res.good.tolist() == [0]
    assert res.errors == [(1, "record is not bytes: got str"), (2, "record is not bytes: got int")]


def test_decode_msgpack() -> None:
    values = [
        msgpack.packb({"id": 5, "name": "x", "ok": False}),
        msgpack.packb({"id": 1.5}),
        b"\xc1",
    ]
    res = decode_records(values, S, "msgpack")
    assert res.batch.to_pylist() == [
        {"id": 5, "amount": None, "name": "x", "ok": False}
    ]
    assert [p for p, _ in res.errors] == [1, 2]


def test_schema_rejects_unknown_types() -> None:
    with pytest.raises(SchemaError, match="'when'.*got 'datetime'"):
        Schema.of({"when": "datetime"})
    assert Schema.of(S.arrow()) == S


def test_match_rejects_spanning_hits_and_non_strings() -> None:
    # "ab" + "cd" are adjacent in Arrow's buffer: "bc" must not match across records.
    res = match_cpu(pa.array(["ab", "cd", "xbcx"]), PatternSet.of(["bc", "d"]))
    assert res.ids.to_pylist() == [[], [1], [0]]
    with pytest.raises(
        ProcessError, match="expected a string or binary field, got int64"
    ):
        match_cpu(pa.array([1, 2]), PatternSet.of(["a"]))
    with pytest.raises(ProcessError, match="pattern 1 is empty"):
        PatternSet.of(["a", ""])


KEY_A = bytes(range(32))
KEY_B = bytes(range(16))


def test_decrypt_key_ring_and_dead_letter_reasons(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            {
                "a": base64.b64encode(KEY_A).decode(),
                "b": base64.b64encode(KEY_B).decode(),
            }
        )
    )
    ring = KeyRing.of(path)
    assert "KEY" not in repr(ring) and str(KEY_A) not in repr(ring)
    good_a = encrypt_value(KEY_A, b"hello")
    good_b = encrypt_value(KEY_B, "wörld".encode(), aad=b"k1")
    tampered = bytearray(encrypt_value(KEY_A, b"secret"))
    tampered[14] ^= 1
    values = pa.array(
        [good_a, good_b, bytes(tampered), good_a, b"short", None, good_b], pa.binary()
    )
    kids = pa.array(["a", "b", "a", "zz", "a", "a", "b"])
    aad = pa.array([None, "k1", None, None, None, None, "k2"])
    res = decrypt_cpu(values, kids, ring, aad)
    assert res.plaintext.to_pylist() == [
        b"hello",
        "wörld".encode(),
        None,
        None,
        None,
        None,
        None,
    ]
    reasons = dict(res.errors)
    assert sorted(reasons) == [2, 3, 4, 6]
    assert (
        "authentication failed" in reasons[2] and "authentication failed" in reasons[6]
    )
    assert "unknown key id 'zz'" in reasons[3]
    assert "too short" in reasons[4]


def test_key_ring_validation(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError, match="expected 16, 24 or 32 bytes, got 5"):
        KeyRing.of({"k": b"12345"})
    with pytest.raises(KeyRingError, match="base64"):
        KeyRing.of({"k": "not base64!"})
    bad = tmp_path / "k.json"
    bad.write_text("[1]")
    with pytest.raises(KeyRingError, match="expected a JSON object"):
        KeyRing.of(bad)


def test_engine_selection_without_gpu(tmp_path: Path) -> None:
    available, reason = gpu_status()
    if available:
        pytest.skip("a GPU is present; this checks the no-GPU behaviour")
    assert reason  # says why
    assert (
        EngineSelector("auto", cache_path=tmp_path / "c.json").pick("match", 10**7)
        is CPU
    )
    assert EngineSelector("cpu").pick("decode", 10**7) is CPU
    with pytest.raises(GpuUnavailableError, match="GPU engine unavailable: .+"):
        EngineSelector("gpu")
    with pytest.raises(ConfigError, match="expected 'auto', 'cpu' or 'gpu', got 'tpu'"):
        EngineSelector("tpu")


def test_crossover_cache_roundtrip_and_choice(tmp_path: Path) -> None:
    path = tmp_path / "x" / "crossover.json"
    Crossover("Fake GPU", {"match": 4096, "decode": None}).save(path)
    loaded = Crossover.load(path)
    assert loaded == Crossover("Fake GPU", {"match": 4096, "decode": None})
    sel = EngineSelector("cpu", crossover=loaded)
    fake_gpu = object()
    sel.mode, sel.gpu = "auto", fake_gpu  # type: ignore[assignment]
    assert sel.pick("match", 4095) is CPU
    assert sel.pick("match", 4096) is fake_gpu
    assert sel.pick("decode", 10**9) is CPU
    path.write_text("{not json")
    assert Crossover.load(path) is None
    assert not os.path.exists(path.with_suffix(".tmp"))


def test_imports_are_lazy_and_one_way() -> None:
    import subprocess
    import sys

    code = (
        "import sys, plait.process, plait.process.engine, plait.process.gpu\n"
        "assert 'cupy' not in sys.modules, 'cupy imported eagerly'\n"
        "bad = [m for m in sys.modules if m.startswith(('plait.pipeline', 'plait.cli'))]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_decode_field_names_that_are_not_identifiers() -> None:
    from plait.process.cpu.decode import _per_record, decode_records
    from plait.process.schema import Schema

    schema = Schema((("user-id", "int"), ("class", "string")))
    records = [b'{"user-id": 7, "class": "a"}', b'{"class": "b"}', b'{"user-id": "x"}']
    for decode in (decode_records, lambda v, s: _per_record(v, s, "json")):
        result = decode(records, schema)
        assert result.batch.column("user-id").to_pylist() == [7, None]
        assert result.batch.column("class").to_pylist() == ["a", "b"]
        assert [i for i, _ in result.errors] == [2]
