"""Choose a fast lane by URL, the one place a fast-lane URL is parsed.

Accepted forms::

    inproc                  the process-wide in-process hub
    inproc:NAME             a named in-process hub (separate subjects per name)
    nats://host:port[,host:port...]
    nats://host:port?cacert=CA.pem[&cert=CLIENT.pem&key=CLIENT.key]   (TLS, mTLS)
    tls://host:port?...     same as nats:// with TLS required

Anything else is a FastLaneUrlError naming the URL, raised before any connection.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs

from plait.fastlane.errors import FastLaneUrlError
from plait.fastlane.interface import FastLane

NATS_DEFAULT_PORT = 4222


@dataclass(frozen=True, slots=True)
class NatsTLS:
    """Paths of TLS material; the key's contents are never read here or printed."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cacert)
        if self.cert is not None:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


@dataclass(frozen=True, slots=True)
class InProcTarget:
    hub: str  # "" for the default hub


@dataclass(frozen=True, slots=True)
class NatsTarget:
    servers: tuple[str, ...]  # "nats://host:port" or "tls://host:port"
    tls: NatsTLS | None


def _endpoint(url: str, item: str) -> str:
    host, _, port_s = item.rpartition(":") if item.count(":") == 1 or item.startswith("[") \
        else (item, "", "")
    if not host:
        raise FastLaneUrlError(url, f"expected host[:port], got {item!r}")
    if not port_s:
        return f"{host}:{NATS_DEFAULT_PORT}"
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise FastLaneUrlError(url, f"expected a port 1-65535 in {item!r}, got {port_s!r}")
    return f"{host}:{int(port_s)}"


def parse_fastlane_url(url: str) -> InProcTarget | NatsTarget:
    """Validate ``url`` and say which backend it names; connects to nothing."""
    if not isinstance(url, str) or not url.strip():
        raise FastLaneUrlError(str(url), "expected 'inproc', 'inproc:NAME' or 'nats://host:port'")
    scheme, sep, rest = url.partition(":")
    if scheme == "inproc":
        if sep and (not rest or "/" in rest):
            raise FastLaneUrlError(url, "expected 'inproc' or 'inproc:NAME' (a name, no slashes)")
        return InProcTarget(rest)
    if scheme not in ("nats", "tls") or not rest.startswith("//"):
        raise FastLaneUrlError(
            url, f"unknown scheme {scheme!r}; expected inproc, nats://host:port or tls://host:port"
        )
    netloc, _, query = rest[2:].partition("?")
    netloc = netloc.rstrip("/")
    if "/" in netloc or "@" in netloc:
        raise FastLaneUrlError(url, "expected only a host:port list, no path or user info")
    items = [i.strip() for i in netloc.split(",")]
    if not netloc or any(not i for i in items):
        raise FastLaneUrlError(url, "expected at least one host:port, comma-separated, none empty")
    params = parse_qs(query, keep_blank_values=True)
    unknown = set(params) - {"cacert", "cert", "key"}
    if unknown:
        raise FastLaneUrlError(url, f"unknown parameter(s) {sorted(unknown)}; expected cacert, cert, key")
    one: dict[str, str] = {}
    for name, values in params.items():
        if len(values) != 1 or not values[0]:
            raise FastLaneUrlError(url, f"parameter {name!r} must be given once, non-empty")
        one[name] = values[0]
    if ("cert" in one) != ("key" in one):
        raise FastLaneUrlError(url, "a client certificate needs both cert= and key=")
    use_tls = scheme == "tls" or bool(one)
    tls = NatsTLS(one.get("cacert"), one.get("cert"), one.get("key")) if use_tls else None
    prefix = "tls" if use_tls else "nats"
    return NatsTarget(tuple(f"{prefix}://{_endpoint(url, i)}" for i in items), tls)


def open_fastlane(url: str) -> FastLane:
    """Open the fast lane ``url`` names (see the module docstring for forms).

    A NATS lane returns at once and connects in the background (forever, see
    :mod:`plait.fastlane.nats`); use ``wait_connected`` on it to wait for the first link.
    """
    target = parse_fastlane_url(url)
    if isinstance(target, InProcTarget):
        from plait.fastlane.inproc import InProcFastLane, shared_hub

        return InProcFastLane(shared_hub(target.hub))
    from plait.fastlane.nats import NatsFastLane

    return NatsFastLane(list(target.servers), tls=target.tls.context() if target.tls else None)
