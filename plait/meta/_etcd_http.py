"""HTTP/JSON transport to etcd's gRPC gateway, with endpoint failover.

Why the gateway and urllib3 rather than gRPC: python-etcd3 is unmaintained and breaks
on current protobuf, and we found no maintained gRPC client for etcd v3 that works with
protobuf 7. etcd serves every v3 RPC as JSON over HTTP/1.1 on its client port (int64
fields as strings, bytes as base64), so a pooled urllib3 client (already a dependency
of the stack) needs no generated code. urllib3 also lets another thread shut a
streaming response down (``HTTPResponse.shutdown``), which is how watches are cancelled.

Retry rule. A request that never reached a member (connection refused, connect
timeout) is retried on the next endpoint whatever it is. A request that reached a
member but got no answer (reset mid-flight, read timeout, "request timed out",
"leader changed") may have been applied: it is retried only when the caller says it is
idempotent (reads, keepalive); for a write we raise MetaUnavailableError with
``outcome_unknown=True``, because a blind retry of a transaction such as
"if version == 3 then put" could apply a second time after another writer moved on.
A certificate problem in the TLS handshake (MetaTLSError) is neither: the member
refused the connection before reading a request, and no retry can fix a certificate.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, SSLError

from plait.errors import ConfigError
from plait.meta.errors import BackendError, MetaTLSError, MetaUnavailableError
from plait.meta.url import EtcdTLS

# gRPC status codes etcd returns through the gateway
UNAVAILABLE, DEADLINE_EXCEEDED, NOT_FOUND = 14, 4, 5
# etcd rejects these before proposing anything, so a write may safely go elsewhere
_NOT_PROPOSED = ("no leader", "not capable", "too many requests", "not a member")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _no_password() -> str:
    # without a callback OpenSSL would prompt on the terminal for an encrypted key
    raise ValueError("the key is encrypted")


def _check_tls_files(tls: EtcdTLS, url: str) -> None:
    """Load the CA bundle and client certificate once, when the store is opened.

    urllib3 loads them only at the first connect, and there a missing file or a key
    that does not match its certificate surfaced as a lost connection: a read retried
    it for failover_s and a write reported an unknown outcome. Now it is a ConfigError
    naming the file (paths only, never contents) before any connection is made.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.cacert:
        try:
            ctx.load_verify_locations(cafile=tls.cacert)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(
                f"metadata store {url}: cannot load cacert={tls.cacert!r}: "
                f"{_os_reason(exc)}; expected a PEM CA bundle"
            ) from exc
    if tls.cert:
        try:
            ctx.load_cert_chain(tls.cert, tls.key, password=_no_password)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"metadata store {url}: cannot load the client certificate "
                f"cert={tls.cert!r} with key={tls.key!r}: {_os_reason(exc)}; expected "
                "a PEM certificate and its matching unencrypted private key"
            ) from exc


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or exc.__class__.__name__


def _tls_refusal(exc: BaseException) -> str | None:
    """Why the TLS handshake failed, when ``exc`` (a urllib3 error wrapping ssl's) is a
    certificate problem; None for anything else. An EOF or a reset at the TLS layer is
    not one: a member dying mid-request looks the same, so it keeps the retry rule."""
    todo, seen = [exc], 0
    while todo and seen < 16:
        e = todo.pop()
        seen += 1
        if isinstance(e, ssl.SSLCertVerificationError):  # also urllib3's hostname check
            why = getattr(e, "verify_message", None) or str(e)
            return (
                f"TLS: the server's certificate did not verify ({why}); expected one "
                "signed by the CA in cacert=, naming the host in the URL"
            )
        if isinstance(e, ssl.SSLError) and "ALERT" in (e.reason or ""):
            alert = (e.reason or "").lower().replace("_", " ")
            return (
                f"TLS: the server refused the handshake ({alert}); if it requires "
                "client certificates, expected cert= and key= signed by a CA it trusts"
            )
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        if e.__cause__ is not None:
            todo.append(e.__cause__)
    return None


class GatewayError(Exception):
    """An etcd error answer (gRPC code and message), before mapping to MetaError."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"code {code}: {message}")
        self.code = code
        self.message = message


class Transport:
    """POSTs JSON to one member at a time, moving to the next one on failure."""

    def __init__(
        self,
        endpoints: tuple[str, ...],
        tls: EtcdTLS | None,
        *,
        timeout_s: float = 10.0,
        failover_s: float = 20.0,
    ) -> None:
        self.endpoints = endpoints
        self.scheme = "https" if tls is not None else "http"
        self.url = ("etcds://" if tls else "etcd://") + ",".join(endpoints)
        self._failover_s = failover_s
        self._lock = threading.Lock()
        self._current = 0
        # A server that requires a client certificate often just drops a connection
        # without one (an EOF, racing its alert), which we must treat as a lost
        # connection; say what it may mean.
        self._eof_hint = (
            "; a server that requires client certificates also drops connections "
            "without one: expected cert= and key="
            if tls is not None and not tls.cert
            else ""
        )
        kwargs: dict[str, Any] = {}
        if tls is not None:
            _check_tls_files(tls, self.url)
            kwargs = {
                "cert_reqs": "CERT_REQUIRED",
                "ca_certs": tls.cacert,
                "cert_file": tls.cert,
                "key_file": tls.key,
            }
        self._pool = urllib3.PoolManager(
            num_pools=len(endpoints) * 2,
            maxsize=8,
            retries=False,
            timeout=urllib3.Timeout(connect=2.0, read=timeout_s),
            **kwargs,
        )
        self._stream_pool = urllib3.PoolManager(
            num_pools=len(endpoints) * 2,
            retries=False,
            timeout=urllib3.Timeout(connect=2.0, read=None),
            **kwargs,
        )

    def _endpoint(self, attempt_from: int, i: int) -> tuple[int, str]:
        idx = (attempt_from + i) % len(self.endpoints)
        return idx, f"{self.scheme}://{self.endpoints[idx]}"

    def _demote(self, idx: int) -> None:
        with self._lock:
            if self._current == idx:
                self._current = (idx + 1) % len(self.endpoints)

    def call(
        self, path: str, body: dict[str, Any], *, idempotent: bool
    ) -> dict[str, Any]:
        """One unary RPC. Raises GatewayError for etcd's answers that are not
        availability problems, MetaUnavailableError when no member could serve it."""
        payload = json.dumps(body).encode()
        deadline = time.monotonic() + self._failover_s
        reason = "no endpoint tried"
        attempt = 0
        tls_refused: set[int] = set()
        while True:
            with self._lock:
                start = self._current
            idx, base = self._endpoint(start, 0)
            try:
                resp = self._pool.request(
                    "POST",
                    base + path,
                    body=payload,
                    headers={"Content-Type": "application/json"},
                )
            except (
                ConnectTimeoutError
            ) as exc:  # includes refused: the request never left
                reason = f"{base}: cannot connect ({exc.__class__.__name__})"
            except HTTPError as exc:  # sent, no answer: it may have been applied
                lost = f"connection lost mid-request ({exc.__class__.__name__})"
                reason, refused = self._tls_check(exc, idx, base, lost, tls_refused)
                if not refused and not idempotent:
                    self._demote(idx)
                    raise MetaUnavailableError(
                        self.url, reason, outcome_unknown=True
                    ) from exc
            else:
                data = _decode(resp.data, base, path)
                if resp.status == 200:
                    return data
                code, message = (
                    int(data.get("code", 0)),
                    str(data.get("message") or data.get("error")),
                )
                if code not in (UNAVAILABLE, DEADLINE_EXCEEDED):
                    raise GatewayError(code, message)
                reason = f"{base}: {message}"
                if not idempotent and not any(s in message for s in _NOT_PROPOSED):
                    self._demote(idx)
                    raise MetaUnavailableError(self.url, reason, outcome_unknown=True)
            self._demote(idx)
            attempt += 1
            if time.monotonic() >= deadline:
                raise MetaUnavailableError(
                    self.url, f"gave up after {attempt} attempts; last: {reason}"
                )
            if attempt % len(self.endpoints) == 0:
                time.sleep(
                    min(0.05 * attempt, 0.5)
                )  # every member failed once: let an election finish

    def _tls_check(self, exc: HTTPError, idx: int, base: str, what: str,
                   refused: set[int]) -> tuple[str, bool]:
        """(reason, whether the TLS handshake refused a certificate) for a failed request
        to member ``idx``. A refusal is not "lost mid-request": etcd never read the
        request, and no retry fixes a certificate (before, a read retried it for
        failover_s and a write reported an unknown outcome). Each member is tried once,
        as one may differ; when all have refused, MetaTLSError."""
        why = _tls_refusal(exc) if self.scheme == "https" else None
        if why is None:
            return f"{base}: {what}" + (self._eof_hint if isinstance(exc, SSLError) else ""), False
        reason = f"{base}: {why}"
        refused.add(idx)
        if len(refused) == len(self.endpoints):
            raise MetaTLSError(self.url, reason) from exc
        return reason, True

    def open_stream(
        self, path: str, body: dict[str, Any]
    ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """Start a server-streaming RPC on the first member that accepts it."""
        payload = json.dumps(body).encode()
        deadline = time.monotonic() + self._failover_s
        attempt, reason = 0, ""
        tls_refused: set[int] = set()
        while True:
            with self._lock:
                start = self._current
            idx, base = self._endpoint(start, 0)
            try:
                resp = self._stream_pool.request(
                    "POST",
                    base + path,
                    body=payload,
                    preload_content=False,
                    headers={"Content-Type": "application/json"},
                )
                if resp.status == 200:
                    return resp, base
                reason = f"{base}: HTTP {resp.status}"
                resp.release_conn()
            except HTTPError as exc:
                reason, _ = self._tls_check(exc, idx, base, exc.__class__.__name__,
                                            tls_refused)
            self._demote(idx)
            attempt += 1
            if time.monotonic() >= deadline:
                raise MetaUnavailableError(self.url, f"cannot open {path}: {reason}")
            if attempt % len(self.endpoints) == 0:
                time.sleep(min(0.05 * attempt, 0.5))

    def close(self) -> None:
        self._pool.clear()
        self._stream_pool.clear()


def _decode(raw: bytes, base: str, path: str) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise BackendError(
            base, -1, f"{path}: expected JSON, got {raw[:80]!r}"
        ) from exc
    if not isinstance(data, dict):
        raise BackendError(
            base, -1, f"{path}: expected a JSON object, got {type(data).__name__}"
        )
    # streaming RPCs answer {"result": {...}} (or {"error": {...}}) per message
    if "result" in data and isinstance(data["result"], dict):
        return data["result"]
    if isinstance(data.get("error"), dict):
        return data["error"]
    return data
