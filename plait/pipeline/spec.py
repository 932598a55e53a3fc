"""Declarative pipeline specs (YAML), as run by ``plait process SPEC.yaml``.

    format: json                 # or msgpack
    schema: {user_id: int, amount: float, country: string, note: string}
    filter: "amount > 100 and country in ('DE', 'FR')"
    enrich: {file: users.csv, key: user_id}      # path relative to the spec file
    match: {field: note, patterns: [fraud, chargeback], output: match, caseless: false}
    output: [user_id, amount, segment, match_ids, match_any, {double: "amount * 2"}]
    batch_size: 4096

Only ``schema`` is required. Unknown keys are rejected with the key's path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec
import yaml

from plait.errors import ConfigError
from plait.pipeline.builder import Pipeline, SourceItem, pipeline
from plait.process.deadletter import DeadLetterHandler


class EnrichSpec(msgspec.Struct, forbid_unknown_fields=True):
    file: str
    key: str
    on: str | None = None
    columns: list[str] | None = None


class MatchSpec(msgspec.Struct, forbid_unknown_fields=True):
    field: str
    patterns: list[str]
    output: str = "match"
    caseless: bool = False
    names: bool = False


class Spec(msgspec.Struct, forbid_unknown_fields=True):
    schema: dict[str, str]
    format: str = "json"
    filter: str | None = None
    enrich: EnrichSpec | None = None
    match: MatchSpec | None = None
    output: list[str | dict[str, str]] | None = None
    batch_size: int = 4096


def load_spec(path: str | Path) -> tuple[Spec, Path]:
    """Read and validate a spec file; ConfigError says which key is wrong."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"spec {p}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"spec {p}: expected YAML: {str(exc).splitlines()[0]}"
        ) from exc
    try:
        spec = msgspec.convert(raw, Spec)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"spec {p}: {exc}") from exc
    if spec.format not in ("json", "msgpack"):
        raise ConfigError(
            f"spec {p}: format: expected 'json' or 'msgpack', got {spec.format!r}"
        )
    if spec.batch_size < 1:
        raise ConfigError(f"spec {p}: batch_size: expected >= 1, got {spec.batch_size}")
    return spec, p.parent


def build(
    spec: Spec,
    base: Path,
    source: Iterable[SourceItem] | None = None,
    *,
    engine: str = "auto",
    dead_letters: DeadLetterHandler | None = None,
) -> Pipeline:
    """The Pipeline a spec describes (sinks not attached)."""
    p = pipeline(source, engine=engine, dead_letters=dead_letters).decode(
        spec.schema, format=spec.format
    )
    if spec.filter:
        p.filter(spec.filter)
    if spec.enrich:
        e = spec.enrich
        p.enrich(base / e.file, on=e.on or e.key, key=e.key, columns=e.columns)
    if spec.match:
        m = spec.match
        p.match(
            m.patterns, m.field, output=m.output, caseless=m.caseless, names=m.names
        )
    if spec.output:
        plain: list[str] = []
        computed: dict[str, str] = {}
        for item in spec.output:
            if isinstance(item, str):
                if computed:
                    raise ConfigError(
                        "spec output: list plain field names before computed ones"
                    )
                plain.append(item)
            else:
                computed.update(item)
        p.project(*plain, **computed)
    return p
