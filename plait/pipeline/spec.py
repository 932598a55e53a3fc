"""Declarative pipeline specs (YAML), as run by ``plait process SPEC.yaml``.

    format: json                 # or msgpack
    schema: {user_id: int, amount: float, country: string, note: string}
    filter: "amount > 100 and country in ('DE', 'FR')"
    enrich: {file: users.csv, key: user_id}      # path relative to the spec file
    # or a table that follows a topic (last record per key wins, null value deletes it):
    # enrich: {topic: users, key: user_id, schema: {user_id: int, segment: string}}
    match: {field: note, patterns: [fraud, chargeback], output: match, caseless: false}
    output: [user_id, amount, segment, match_ids, match_any, {double: "amount * 2"}]
    batch_size: 4096

Only ``schema`` is required. Unknown keys are rejected with the key's path. An enrich
from a topic takes ``schema`` (the topic's values), ``format`` (json or msgpack, default
json) and ``refresh_s`` (how often a running pipeline looks for new records, default 0.2),
and needs a client: ``plait process`` opens the ``--data`` dir, or ``--bootstrap``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec
import yaml

from plait.errors import ConfigError
from plait.pipeline.builder import Pipeline, SourceItem, pipeline
from plait.pipeline.steps import Enrich
from plait.process.deadletter import DeadLetterHandler
from plait.process.enrich import ReferenceTable
from plait.process.enrich_topic import TopicClient, TopicReferenceTable


class EnrichSpec(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    file: str | None = None
    topic: str | None = None
    on: str | None = None
    columns: list[str] | None = None
    schema: dict[str, str] | None = None  # topic only: its values' fields
    format: str = "json"  # topic only
    refresh_s: float = 0.2  # topic only

    def check(self) -> str | None:
        """What is wrong with this enrich, or None."""
        if (self.file is None) == (self.topic is None):
            return "enrich: expected exactly one of 'file' or 'topic'"
        if self.topic is None:
            extra = [k for k, d in (("schema", None), ("format", "json"), ("refresh_s", 0.2))
                     if getattr(self, k) != d]
            return f"enrich: {extra} only go with 'topic'" if extra else None
        if self.schema is None:
            return "enrich: expected 'schema' (the topic's value fields) with 'topic'"
        if self.format not in ("json", "msgpack"):
            return f"enrich: format: expected 'json' or 'msgpack', got {self.format!r}"
        if not self.refresh_s >= 0:
            return f"enrich: refresh_s: expected >= 0, got {self.refresh_s}"
        return None


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
    wrong = spec.enrich.check() if spec.enrich else None
    if wrong:
        raise ConfigError(f"spec {p}: {wrong}")
    return spec, p.parent


def build(
    spec: Spec,
    base: Path,
    source: Iterable[SourceItem] | None = None,
    *,
    engine: str = "auto",
    dead_letters: DeadLetterHandler | None = None,
    client: TopicClient | None = None,
) -> Pipeline:
    """The Pipeline a spec describes (sinks not attached). An enrich from a topic reads it
    through ``client`` and reports its bad records to ``dead_letters`` too; the caller
    closes the table (:func:`reference_tables`) before the client."""
    p = pipeline(source, engine=engine, dead_letters=dead_letters).decode(
        spec.schema, format=spec.format
    )
    if spec.filter:
        p.filter(spec.filter)
    e = spec.enrich
    table = _reference(e, base, client, dead_letters or p.dead_letters.append) if e else None
    try:
        if e is not None and table is not None:
            p.enrich(table, on=e.on or e.key, key=e.key, columns=e.columns)
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
    except BaseException:
        if isinstance(table, ReferenceTable):
            table.close()  # a topic's consumer is not left behind by a spec that fails
        raise
    return p


def _reference(
    e: EnrichSpec, base: Path, client: TopicClient | None, on_dead: DeadLetterHandler
) -> ReferenceTable | Path:
    """The enrich's table: a file (loaded by Pipeline.enrich) or one that follows a topic."""
    if e.topic is None:
        assert e.file is not None  # load_spec checked it
        return base / e.file
    if client is None:
        raise ConfigError(f"spec enrich: topic {e.topic!r} needs a client (a data dir or a broker) to read it")
    assert e.schema is not None  # load_spec checked it
    return TopicReferenceTable(
        client, e.topic, e.key, e.schema, format=e.format, columns=e.columns,
        refresh_s=e.refresh_s, on_dead=on_dead,
    )


def reference_tables(p: Pipeline) -> list[ReferenceTable]:
    """The reference tables of ``p``'s enrich steps (to close them when it is done)."""
    return [s.table for s in p.steps if isinstance(s, Enrich)]
