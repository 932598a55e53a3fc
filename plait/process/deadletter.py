"""Dead letters: records an operator could not process, kept with the reason and where.

No operator drops a record silently: a record that does not decode, fails authentication,
or arrives after its window closed becomes a :class:`DeadLetter` handed to the pipeline's
dead-letter handler.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DeadLetterHandler = Callable[["DeadLetter"], None]


@dataclass(frozen=True)
class DeadLetter:
    """One rejected record.

    ``position`` is the record's index in the batch the operator received; ``offset`` is
    its input offset when the batch carries an ``_offset`` column (else None), and
    ``partition`` the input partition when the source is a topic; ``value`` is the raw
    input bytes where the stage had them, else the row as a dict.
    """

    stage: str
    position: int
    reason: str
    offset: int | None = None
    value: bytes | dict[str, Any] | None = None
    partition: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (bytes as UTF-8 text when valid, else base64 under ``value_b64``)."""
        out: dict[str, Any] = {
            "stage": self.stage,
            "position": self.position,
            "offset": self.offset,
            "reason": self.reason,
        }
        if self.partition is not None:
            out["partition"] = self.partition
        if isinstance(self.value, bytes):
            try:
                out["value"] = self.value.decode("utf-8")
            except UnicodeDecodeError:
                out["value_b64"] = base64.b64encode(self.value).decode("ascii")
        elif self.value is not None:
            out["value"] = {
                k: (base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v)
                for k, v in self.value.items()
            }
        return out
