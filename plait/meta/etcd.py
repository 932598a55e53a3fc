"""The distributed metadata store: etcd v3 through its JSON gateway.

See ``_etcd_http`` for why HTTP/JSON rather than gRPC, and for the retry rule that
keeps a write with an unknown outcome from being applied twice. This module maps
MetaStore calls onto etcd RPCs one to one, so the semantics (revisions, compare
rules, duplicate-key rejection, lease expiry) are etcd's own; the SQLite reference
copies them and the shared conformance suite holds both to it.

Watches survive a member's death: the stream reconnects to another member from the
revision after the last one delivered, so no event is lost or repeated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any, Self

from urllib3.exceptions import HTTPError

from plait.errors import ConfigError
from plait.meta._common import QueueWatch, check_branch, check_compares, prefix_end
from plait.meta._etcd_http import NOT_FOUND, GatewayError, Transport, b64, unb64
from plait.meta.errors import (
    BackendError,
    CompactedError,
    LeaseNotFoundError,
    MetaClosedError,
    MetaError,
    MetaTLSError,
    MetaUnavailableError,
    TxnError,
)
from plait.meta.interface import (
    Compare,
    CompareTarget,
    Delete,
    EventType,
    Get,
    KeyValue,
    Op,
    Put,
    TxnResult,
    WatchEvent,
)
from plait.meta.url import EtcdTLS

log = logging.getLogger(__name__)

_TARGET = {
    CompareTarget.VALUE: ("VALUE", "value"),
    CompareTarget.VERSION: ("VERSION", "version"),
    CompareTarget.CREATE_REVISION: ("CREATE", "create_revision"),
    CompareTarget.MOD_REVISION: ("MOD", "mod_revision"),
}
# what a broken or shut-down stream can raise while we read or reopen it
_STREAM_ERRORS = (HTTPError, OSError, ValueError, MetaError)
_RESULT = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


def _range(key: bytes, prefix: bool) -> dict[str, str]:
    """etcd range fields; an empty key or unbounded prefix uses etcd's "\\0" idiom."""
    if not prefix:
        return {"key": b64(key)}
    end = prefix_end(key)
    return {
        "key": b64(key or b"\0"),
        "range_end": b64(end if end is not None else b"\0"),
    }


def _kv(d: dict[str, Any]) -> KeyValue:
    return KeyValue(
        unb64(d.get("key")),
        unb64(d.get("value")),
        int(d.get("create_revision", 0)),
        int(d.get("mod_revision", 0)),
        int(d.get("version", 0)),
        int(d.get("lease", 0)),
    )


def _revision(resp: dict[str, Any]) -> int:
    return int(resp.get("header", {}).get("revision", 0))


def _op(op: Op) -> dict[str, Any]:
    if isinstance(op, Put):
        put: dict[str, Any] = {"key": b64(op.key), "value": b64(op.value)}
        if op.lease:
            put["lease"] = str(op.lease)
        return {"request_put": put}
    if isinstance(op, Delete):
        return {"request_delete_range": _range(op.key, op.prefix)}
    if isinstance(op, Get):
        return {"request_range": _range(op.key, op.prefix)}
    raise TypeError(f"txn op must be Put, Delete or Get, got {type(op).__name__}")


def _compare(c: Compare) -> dict[str, Any]:
    target, field = _TARGET[c.target]
    operand = b64(c.operand) if isinstance(c.operand, bytes) else str(c.operand)
    return {
        "key": b64(c.key),
        "target": target,
        "result": _RESULT[c.op],
        field: operand,
    }


class EtcdMetaStore:
    """:class:`~plait.meta.interface.MetaStore` on an etcd v3 cluster.

    ``endpoints`` are ``host:port`` client addresses of the members; requests go to
    one member and fail over to the next when it cannot be reached. Reads are
    linearizable (etcd's default). ``tls`` enables HTTPS, verifying the server with
    ``cacert`` and presenting ``cert``/``key`` when the cluster requires mTLS.
    Lease TTLs are rounded up to whole seconds and raised to the cluster's minimum
    (1.5 election timeouts), as etcd does.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: EtcdTLS | None = None,
        timeout_s: float = 10.0,
        failover_s: float = 20.0,
    ) -> None:
        if not endpoints:
            raise ConfigError(
                "EtcdMetaStore needs at least one host:port endpoint, got none"
            )
        self._http = Transport(
            tuple(endpoints), tls, timeout_s=timeout_s, failover_s=failover_s
        )
        self.url = self._http.url
        self._closed = False
        self._watches: set[_EtcdWatch] = set()
        self._lock = threading.Lock()

    def _call(
        self, path: str, body: dict[str, Any], *, idempotent: bool, lease: int = 0
    ) -> dict[str, Any]:
        if self._closed:
            raise MetaClosedError(f"EtcdMetaStore({self.url!r})")
        try:
            return self._http.call(path, body, idempotent=idempotent)
        except GatewayError as exc:
            if exc.code == NOT_FOUND and "lease not found" in exc.message:
                raise LeaseNotFoundError(lease, path) from exc
            if "duplicate key" in exc.message:
                raise TxnError(
                    f"etcd rejected the txn: {exc.message}; expected one write per key"
                ) from exc
            raise BackendError(self.url, exc.code, f"{path}: {exc.message}") from exc

    # MetaStore ----------------------------------------------------------------
    def get(self, key: bytes) -> KeyValue | None:
        kvs = self._call("/v3/kv/range", _range(key, False), idempotent=True).get(
            "kvs", []
        )
        return _kv(kvs[0]) if kvs else None

    def range(self, prefix: bytes) -> list[KeyValue]:
        resp = self._call("/v3/kv/range", _range(prefix, True), idempotent=True)
        return [_kv(d) for d in resp.get("kvs", [])]

    def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return _revision(self._call("/v3/kv/put", body, idempotent=False, lease=lease))

    def delete(self, key: bytes, *, prefix: bool = False) -> int:
        resp = self._call("/v3/kv/deleterange", _range(key, prefix), idempotent=False)
        return int(resp.get("deleted", 0))

    def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        check_compares(compares)
        check_branch(success, "success")
        check_branch(failure, "failure")
        body = {
            "compare": [_compare(c) for c in compares],
            "success": [_op(o) for o in success],
            "failure": [_op(o) for o in failure],
        }
        read_only = all(isinstance(o, Get) for o in (*success, *failure))
        leases = [
            o.lease for o in (*success, *failure) if isinstance(o, Put) and o.lease
        ]
        resp = self._call(
            "/v3/kv/txn", body, idempotent=read_only, lease=leases[0] if leases else 0
        )
        succeeded = bool(resp.get("succeeded", False))
        responses: list[list[KeyValue] | int | None] = []
        for item in resp.get("responses", []):
            if "response_range" in item:
                responses.append(
                    [_kv(d) for d in item["response_range"].get("kvs", [])]
                )
            elif "response_delete_range" in item:
                responses.append(int(item["response_delete_range"].get("deleted", 0)))
            else:
                responses.append(None)
        return TxnResult(succeeded, _revision(resp), responses)

    def watch(self, prefix: bytes, *, start_revision: int | None = None) -> QueueWatch:
        if self._closed:
            raise MetaClosedError(f"EtcdMetaStore({self.url!r})")
        w = _EtcdWatch(self, prefix, start_revision)
        with self._lock:
            self._watches.add(w)
        return w.queue

    def lease_grant(self, ttl: float) -> int:
        if not ttl > 0:
            raise ConfigError(
                f"lease ttl must be > 0 seconds, got {ttl} (store {self.url})"
            )
        # A grant that timed out may have created an orphan lease; it expires on its
        # own with no keys attached, so retrying is harmless (hence idempotent=True).
        resp = self._call(
            "/v3/lease/grant", {"TTL": str(math.ceil(ttl))}, idempotent=True
        )
        return int(resp["ID"])

    def lease_keepalive(self, lease: int) -> None:
        # one request on the streaming RPC: the gateway closes it after one answer
        resp = self._call(
            "/v3/lease/keepalive", {"ID": str(lease)}, idempotent=True, lease=lease
        )
        if int(resp.get("TTL", 0)) <= 0:
            raise LeaseNotFoundError(lease, "keepalive")

    def lease_revoke(self, lease: int) -> None:
        self._call(
            "/v3/lease/revoke", {"ID": str(lease)}, idempotent=False, lease=lease
        )

    @property
    def revision(self) -> int:
        return _revision(
            self._call(
                "/v3/kv/range", {"key": b64(b"\0"), "count_only": True}, idempotent=True
            )
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            watches, self._watches = list(self._watches), set()
        for w in watches:
            w.stop("the store was closed")
        self._http.close()

    def _forget(self, w: _EtcdWatch) -> None:
        with self._lock:
            self._watches.discard(w)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _EtcdWatch:
    """One /v3/watch stream plus the thread that reads it and reconnects it.

    The stream is opened before ``watch()`` returns, so a watch without
    ``start_revision`` sees every change committed after the call. ``_next`` is the
    first revision not yet delivered; a reconnect asks for exactly that revision.
    """

    def __init__(
        self, store: EtcdMetaStore, prefix: bytes, start_revision: int | None
    ) -> None:
        self._store = store
        self._body = _range(prefix, True)
        self.queue = QueueWatch(prefix, lambda _q: self.stop(None))
        self._next = start_revision if start_revision and start_revision > 0 else 0
        self._stopped = False
        self._resp_lock = threading.Lock()
        self._resp: Any = None
        lines = self._connect()
        self._thread = threading.Thread(
            target=self._run, args=(lines,), name="plait-etcd-watch", daemon=True
        )
        self._thread.start()

    def _connect(self) -> Any:
        """Open the stream and consume the "created" answer; returns the line iterator."""
        req: dict[str, Any] = dict(self._body)
        if self._next:
            req["start_revision"] = str(self._next)
        resp, _base = self._store._http.open_stream(
            "/v3/watch", {"create_request": req}
        )
        with self._resp_lock:
            self._resp = resp
        lines = _lines(resp)
        first = next(lines, None)
        if first is None:
            raise MetaUnavailableError(
                self._store.url, "watch stream closed before it was created"
            )
        if first.get("canceled") or first.get("compact_revision"):
            compact = int(first.get("compact_revision", 0))
            resp.shutdown()
            raise CompactedError(self._next, compact)
        if not self._next:
            self._next = _revision(first) + 1
        return lines

    def _run(self, lines: Any) -> None:
        while not self._stopped:
            try:
                for msg in lines:
                    if msg.get("canceled") or msg.get("compact_revision"):
                        self.queue.fail(
                            f"etcd cancelled the watch at revision {self._next}",
                            compact_revision=int(msg.get("compact_revision", 0)),
                        )
                        return
                    events = [self._event(e) for e in msg.get("events", [])]
                    if events:
                        self._next = events[-1].kv.mod_revision + 1
                        self.queue.push(events)
            except (
                _STREAM_ERRORS
            ) as exc:  # the member died or the stream broke: reconnect
                log.debug("watch stream on %s broke: %r", self._store.url, exc)
            if self._stopped:
                return
            try:
                time.sleep(0.05)
                lines = self._connect()
            except CompactedError as exc:
                self.queue.fail(str(exc), compact_revision=exc.compact_revision)
                return
            except MetaTLSError as exc:  # raised at once now: end, don't spin on it
                self.queue.fail(str(exc))
                return
            except _STREAM_ERRORS as exc:
                log.debug("watch reconnect on %s failed: %r", self._store.url, exc)
                lines = iter(())

    @staticmethod
    def _event(e: dict[str, Any]) -> WatchEvent:
        kv = _kv(e.get("kv", {}))
        if e.get("type") == "DELETE":
            return WatchEvent(
                EventType.DELETE, KeyValue(kv.key, b"", 0, kv.mod_revision, 0, 0)
            )
        return WatchEvent(EventType.PUT, kv)

    def stop(self, reason: str | None) -> None:
        """End the stream; ``reason`` None means the owner cancelled it."""
        self._stopped = True
        if reason is not None:
            self.queue.fail(reason)
        with self._resp_lock:
            resp = self._resp
        if resp is not None:
            with contextlib.suppress(
                *_STREAM_ERRORS
            ):  # already closed: nothing to unblock
                resp.shutdown()  # unblocks the reader thread's recv
        self._store._forget(self)


def _lines(resp: Any) -> Any:
    """Yield each JSON message of a gateway stream ("\\n"-delimited {"result": ...})."""
    buf = b""
    for chunk in resp.stream(8192):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                msg = json.loads(line)
                if "error" in msg:
                    raise MetaUnavailableError(
                        str(resp.geturl()), f"watch stream error: {msg['error']}"
                    )
                yield msg.get("result", {})
