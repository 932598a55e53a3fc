"""Errors of the metadata strand.

Every backend raises these and nothing else on purpose: SQLite's and urllib3's own
exceptions are wrapped at the backend boundary, so a caller can write one ``except``
whatever URL the store was opened with.
"""

from __future__ import annotations

from plait.errors import PlaitError


class MetaError(PlaitError):
    """Base class of every metadata-store failure."""


class MetaClosedError(MetaError):
    """The store (or watch) was used after ``close()``."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"{what} is closed; open a new one with plait.meta.open_meta()"
        )


class LeaseNotFoundError(MetaError):
    """The lease does not exist: it was never granted, it expired, or it was revoked."""

    def __init__(self, lease: int, where: str = "") -> None:
        self.lease = lease
        suffix = f" (in {where})" if where else ""
        super().__init__(
            f"lease {lease:#x} not found: expected a live lease, it expired or was revoked{suffix}"
        )


class MetaUnavailableError(MetaError):
    """The backend could not be reached, or stopped answering mid-request.

    ``outcome_unknown`` is true when a write was sent but no answer came back: it may
    or may not have been applied, so the caller must re-read before deciding to retry
    (a blind retry of a non-idempotent transaction could apply it twice).
    """

    def __init__(self, url: str, reason: str, *, outcome_unknown: bool = False) -> None:
        self.url = url
        self.reason = reason
        self.outcome_unknown = outcome_unknown
        detail = f"metadata store at {url} unavailable: {reason}"
        if outcome_unknown:
            detail += (
                " (the write may or may not have been applied; re-read before retrying)"
            )
        super().__init__(detail)


class MetaTLSError(MetaUnavailableError):
    """The TLS handshake failed on a certificate: the server's did not verify against
    ``cacert``, or the server refused ours (missing, or signed by a CA it does not trust).

    Not retried: once each member has refused the handshake it is raised, since the
    member refused before reading a request (nothing was applied, ``outcome_unknown``
    is false) and retrying cannot fix a certificate. The message names the URL and
    paths, never the contents of a key.
    """


class WatchCancelledError(MetaError):
    """The watch ended: cancelled by its owner, by the store closing, or by the backend.

    ``compact_revision`` is set when the backend dropped the history the watch still
    needed (its next revision was compacted away); the caller must re-read and
    start a new watch from the current revision.
    """

    def __init__(
        self, prefix: bytes, reason: str, *, compact_revision: int = 0
    ) -> None:
        self.prefix = prefix
        self.reason = reason
        self.compact_revision = compact_revision
        super().__init__(f"watch on prefix {prefix!r} cancelled: {reason}")


class CompactedError(MetaError):
    """A watch asked for history older than the oldest revision the store still keeps."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        self.requested = requested
        self.compact_revision = compact_revision
        super().__init__(
            f"revision {requested} was compacted: expected a start revision above "
            f"{compact_revision}, the oldest change the store still keeps"
        )


class TxnError(MetaError, ValueError):
    """A transaction was malformed (e.g. two writes to one key in one branch)."""


class BackendError(MetaError):
    """The backend rejected a request for a reason plait does not map to a finer class."""

    def __init__(self, url: str, code: int, message: str) -> None:
        self.url = url
        self.code = code
        super().__init__(
            f"metadata store at {url} rejected the request: code {code}: {message}"
        )
