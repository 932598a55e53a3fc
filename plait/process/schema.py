"""Declared event schemas: field name -> type, as written in specs and the pipeline API.

Types: ``int`` (int64), ``float`` (float64), ``string``, ``bool``, ``binary`` (msgpack only).
Every field is nullable: a missing field or a JSON null decodes to null. Unknown fields in
a record are ignored. Integers must fit in int64.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import pyarrow as pa

from plait.process.errors import SchemaError

_ALIASES = {
    "int": "int",
    "int64": "int",
    "integer": "int",
    "long": "int",
    "float": "float",
    "float64": "float",
    "double": "float",
    "string": "string",
    "str": "string",
    "utf8": "string",
    "bool": "bool",
    "boolean": "bool",
    "binary": "binary",
    "bytes": "binary",
}
_ARROW = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "binary": pa.binary(),
}
# Integers are range-checked so a value past int64 is a dead letter, not an overflow.
_PY: dict[str, Any] = {
    "int": Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)],
    "float": float,
    "string": str,
    "bool": bool,
    "binary": bytes,
}


@dataclass(frozen=True)
class Schema:
    """An ordered, validated field list. Build with :func:`Schema.of`."""

    fields: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, spec: Schema | Mapping[str, str] | pa.Schema) -> Schema:
        """Accept a mapping ``{"amount": "float", ...}``, a pyarrow schema or a Schema."""
        if isinstance(spec, Schema):
            return spec
        if isinstance(spec, pa.Schema):
            out = []
            for f in spec:
                kind = next((k for k, t in _ARROW.items() if t == f.type), None)
                if kind is None:
                    raise SchemaError(
                        f"field {f.name!r}: expected one of {sorted(_ARROW)}, got arrow type {f.type}"
                    )
                out.append((f.name, kind))
            return cls(tuple(out))
        if not isinstance(spec, Mapping) or not spec:
            raise SchemaError(
                f"schema: expected a non-empty mapping of field -> type, got {spec!r}"
            )
        fields = []
        for name, typ in spec.items():
            if not isinstance(name, str) or not name:
                raise SchemaError(f"schema: expected a field name, got {name!r}")
            kind = _ALIASES.get(str(typ).lower())
            if kind is None:
                raise SchemaError(
                    f"schema field {name!r}: expected one of {sorted(set(_ALIASES))}, got {typ!r}"
                )
            fields.append((name, kind))
        return cls(tuple(fields))

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.fields]

    def arrow(self) -> pa.Schema:
        return pa.schema([pa.field(n, _ARROW[k]) for n, k in self.fields])

    def struct_type(self) -> type:
        """A msgspec Struct type mirroring the schema (all fields optional, default null).

        Attributes are positional stand-ins (``f0``, ``f1``...) renamed to the real
        field names on the wire, so names that are not Python identifiers
        (``user-id``) work; callers read values with ``msgspec.structs.astuple``.
        """
        return msgspec.defstruct(
            "Record",
            [(f"f{i}", _PY[k] | None, None) for i, (_, k) in enumerate(self.fields)],
            rename={f"f{i}": n for i, (n, _) in enumerate(self.fields)},
            forbid_unknown_fields=False,
        )
