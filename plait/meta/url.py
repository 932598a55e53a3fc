"""Choose a metadata backend by URL, the one place a metadata URL is parsed.

Accepted forms::

    sqlite:PATH            (also sqlite:///abs/path, or a bare PATH)
    etcd://host:port[,host:port...]
    etcds://host:port[,...]?cacert=CA.pem[&cert=CLIENT.pem&key=CLIENT.key]

Anything else is a ConfigError naming the URL, raised before any connection is made,
so a typo in a setting fails at startup instead of at the first commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from plait.errors import ConfigError
from plait.meta.interface import MetaStore

ETCD_DEFAULT_PORT = 2379


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """TLS material for etcd: a CA bundle to verify the server and, for mTLS, a client
    certificate and key. Paths only; the key's contents are never held or printed."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    path: str


@dataclass(frozen=True, slots=True)
class EtcdTarget:
    endpoints: tuple[str, ...]  # "host:port", in the order given
    tls: EtcdTLS | None


def _bad(url: str, why: str) -> ConfigError:
    return ConfigError(f"bad metadata URL {url!r}: {why}")


def _endpoint(url: str, item: str) -> str:
    if item.startswith("["):  # IPv6 literal: [::1]:2379
        host, sep, rest = item[1:].partition("]")
        if not sep or not host:
            raise _bad(url, f"expected [ipv6]:port, got {item!r}")
        port_s = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise _bad(url, f"expected ':' after ']' in {item!r}")
        host = f"[{host}]"
    else:
        host, _, port_s = item.partition(":")
    if not host:
        raise _bad(url, f"expected host[:port], got {item!r}")
    if not port_s:
        return f"{host}:{ETCD_DEFAULT_PORT}"
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise _bad(url, f"expected a port 1-65535 in {item!r}, got {port_s!r}")
    return f"{host}:{int(port_s)}"


def parse_meta_url(url: str) -> SqliteTarget | EtcdTarget:
    """Validate ``url`` and say which backend it names; connects to nothing."""
    if not isinstance(url, str) or not url.strip():
        raise _bad(str(url), "expected sqlite:PATH, a path, or etcd://host:port")
    scheme, sep, rest = url.partition(":")
    if sep and scheme in ("etcd", "etcds"):
        if not rest.startswith("//"):
            raise _bad(url, f"expected {scheme}://host:port after the scheme")
        netloc, _, query = rest[2:].partition("?")
        netloc = netloc.rstrip("/")
        if "/" in netloc or "@" in netloc:
            raise _bad(url, "expected only host:port list, no path or user info")
        items = [i.strip() for i in netloc.split(",")]
        if not netloc or any(not i for i in items):
            raise _bad(
                url, "expected at least one host:port, comma-separated, none empty"
            )
        endpoints = tuple(_endpoint(url, i) for i in items)
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False)
        unknown = set(params) - {"cacert", "cert", "key"}
        if unknown:
            raise _bad(
                url,
                f"unknown parameter(s) {sorted(unknown)}; expected cacert, cert, key",
            )
        one: dict[str, str] = {}
        for name, values in params.items():
            if len(values) != 1 or not values[0]:
                raise _bad(url, f"parameter {name!r} must be given once, non-empty")
            one[name] = values[0]
        if scheme == "etcd":
            if one:
                raise _bad(url, "TLS parameters need the etcds:// scheme")
            return EtcdTarget(endpoints, None)
        if ("cert" in one) != ("key" in one):
            raise _bad(url, "a client certificate needs both cert= and key=")
        return EtcdTarget(
            endpoints, EtcdTLS(one.get("cacert"), one.get("cert"), one.get("key"))
        )
    if sep and scheme == "sqlite":
        path = rest[2:] if rest.startswith("///") else rest
        if not path:
            raise _bad(url, "expected a file path after sqlite:")
        return SqliteTarget(path)
    if sep and len(scheme) > 1 and scheme.isalnum() and "/" not in scheme:
        raise _bad(url, f"unknown scheme {scheme!r}; expected sqlite, etcd or etcds")
    return SqliteTarget(url)  # a bare path


def open_meta(url: str) -> MetaStore:
    """Open the metadata store ``url`` names (see the module docstring for forms)."""
    target = parse_meta_url(url)
    if isinstance(target, SqliteTarget):
        from plait.meta.sqlite import SqliteMetaStore

        return SqliteMetaStore(target.path)
    from plait.meta.etcd import EtcdMetaStore

    return EtcdMetaStore(target.endpoints, tls=target.tls)
