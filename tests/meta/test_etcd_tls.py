"""etcd over TLS with client certificates (``etcds://``), against a real etcd server.

The server runs with ``--client-cert-auth`` on https, with a CA, server and client
certificate made for this module (tests/servers/tls.py). The shared conformance suite
runs over that connection; the tests below it check the ways TLS goes wrong: each must
be a typed plait error, raised within seconds, that names paths but never a key.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import plait
from plait.errors import ConfigError
from plait.meta.errors import MetaTLSError, MetaUnavailableError
from plait.meta.interface import MetaStore
from plait.meta.url import open_meta

from .conformance import *  # the shared suite, here over mTLS

try:
    from tests.servers.etcd import EtcdMember, etcd_server
    from tests.servers.tls import TlsFiles, make_ca, make_tls_files
except ImportError:
    from servers.etcd import EtcdMember, etcd_server
    from servers.tls import TlsFiles, make_ca, make_tls_files

PROMPT_S = 5.0  # "promptly": well under the transport's 20 s failover window


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def etcd_tls(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[EtcdMember]:
    with etcd_server(tmp_path_factory.mktemp("etcd-tls"), tls_files) as member:
        yield member


@pytest.fixture
def meta_url(etcd_tls: EtcdMember) -> str:
    url = etcd_tls.meta_url
    assert url.startswith("etcds://") and "&cert=" in url and "&key=" in url
    return url


@pytest.fixture
def store(meta_url: str) -> Iterator[MetaStore]:
    s = open_meta(meta_url)
    yield s
    s.close()


def assert_no_key_material(text: str, tls: TlsFiles) -> None:
    """No line of any private key's PEM body shows up in ``text``."""
    assert "PRIVATE KEY" not in text
    for key in (tls.client_key, tls.server_key):
        for line in key.read_text().splitlines():
            if line and not line.startswith("-----"):
                assert line not in text


def _timed(fn: object) -> tuple[BaseException, float]:
    start = time.monotonic()
    try:
        fn()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the caller checks the type
        return exc, time.monotonic() - start
    raise AssertionError(f"expected an error from {fn}, got none")


# -- the connection is really TLS --------------------------------------------------


def test_the_server_speaks_only_tls_with_client_certs(
    etcd_tls: EtcdMember, tls_files: TlsFiles
) -> None:
    assert etcd_tls.healthy()  # over https, presenting the client certificate
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://{etcd_tls.endpoint}/health", timeout=2)
    no_cert = ssl.create_default_context(cafile=str(tls_files.ca))
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"{etcd_tls.client_url}/health", timeout=2, context=no_cert)


def test_dns_name_in_the_server_certificate_verifies(
    etcd_tls: EtcdMember, tls_files: TlsFiles, ns: bytes
) -> None:
    t = tls_files
    url = (
        f"etcds://localhost:{etcd_tls.client_port}"
        f"?cacert={t.ca}&cert={t.client_cert}&key={t.client_key}"
    )
    s = open_meta(url)
    try:
        rev = s.put(ns + b"k", b"v")
        kv = s.get(ns + b"k")
        assert kv is not None and kv.value == b"v" and kv.mod_revision == rev
    finally:
        s.close()


# -- certificate problems: typed, prompt, no key material ---------------------------


def test_missing_client_certificate_is_a_prompt_tls_error(
    etcd_tls: EtcdMember, tls_files: TlsFiles, ns: bytes
) -> None:
    s = open_meta(f"etcds://{etcd_tls.endpoint}?cacert={tls_files.ca}")
    try:
        exc, took = _timed(lambda: s.get(ns + b"k"))
        assert isinstance(exc, MetaTLSError), repr(exc)
        assert took < PROMPT_S
        msg = str(exc)
        assert etcd_tls.endpoint in msg and "cert=" in msg and "key=" in msg
        assert "refused the handshake" in msg and not exc.outcome_unknown
        assert_no_key_material(msg, tls_files)

        # Go's server races its "certificate required" alert with closing the
        # socket; a write that only saw the close cannot know it was refused, so it
        # may say "outcome unknown", but it says so at once and names the fix.
        exc, took = _timed(lambda: s.put(ns + b"k", b"v"))
        assert isinstance(exc, MetaUnavailableError), repr(exc)
        assert took < PROMPT_S and "cert=" in str(exc)

        exc, took = _timed(lambda: s.watch(ns))
        assert isinstance(exc, MetaTLSError), repr(exc)
        assert took < PROMPT_S
    finally:
        s.close()
    good = open_meta(etcd_tls.meta_url)
    try:
        assert good.get(ns + b"k") is None  # the refused write was not applied
    finally:
        good.close()


def test_server_certificate_from_another_ca_is_a_prompt_tls_error(
    etcd_tls: EtcdMember, tls_files: TlsFiles, tmp_path: Path, ns: bytes
) -> None:
    stranger, _key, _cert = make_ca(tmp_path, "stranger")
    t = tls_files
    url = (
        f"etcds://{etcd_tls.endpoint}"
        f"?cacert={stranger}&cert={t.client_cert}&key={t.client_key}"
    )
    s = open_meta(url)
    try:
        for op in (lambda: s.get(ns + b"k"), lambda: s.put(ns + b"k", b"v"), lambda: s.watch(ns)):
            exc, took = _timed(op)
            assert isinstance(exc, MetaTLSError), repr(exc)
            assert took < PROMPT_S and not exc.outcome_unknown
            msg = str(exc)
            assert "did not verify" in msg and "cacert=" in msg
            assert etcd_tls.endpoint in msg
            assert_no_key_material(msg, tls_files)
    finally:
        s.close()


@pytest.mark.parametrize(
    "broken", ["missing_cacert", "garbage_cacert", "missing_key", "wrong_key", "encrypted_key"]
)
def test_unusable_tls_files_fail_at_open_naming_the_file(
    broken: str, tls_files: TlsFiles, tmp_path: Path
) -> None:
    t = tls_files
    ca, cert, key = str(t.ca), str(t.client_cert), str(t.client_key)
    named = {"missing_cacert": "ca", "garbage_cacert": "ca"}.get(broken, "key")
    if broken == "missing_cacert":
        ca = str(tmp_path / "nope" / "ca.pem")
    elif broken == "garbage_cacert":
        (tmp_path / "ca.pem").write_text("not a certificate\n")
        ca = str(tmp_path / "ca.pem")
    elif broken == "missing_key":
        key = str(tmp_path / "nope.key")
    elif broken == "encrypted_key":  # must not prompt for a passphrase on the terminal
        plain = serialization.load_pem_private_key(t.client_key.read_bytes(), None)
        (tmp_path / "enc.key").write_bytes(
            plain.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        key = str(tmp_path / "enc.key")
    else:  # a real key, but not the one the client certificate was issued for
        key = str(t.server_key)
    # port 9 (discard): nothing listens there; the error must come before connecting
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        open_meta(f"etcds://127.0.0.1:9?cacert={ca}&cert={cert}&key={key}")
    assert time.monotonic() - start < 1.0
    msg = str(err.value)
    assert (ca if named == "ca" else key) in msg
    if broken == "encrypted_key":
        assert "encrypted" in msg
    assert_no_key_material(msg, tls_files)


# -- the CLI ---------------------------------------------------------------------


def _plait(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait.cli.main", "--data", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_status_over_mtls(etcd_tls: EtcdMember, tmp_path: Path) -> None:
    data, url = tmp_path / "data", etcd_tls.meta_url
    with plait.connect(f"embedded:{data}", meta=url) as client:
        client.create_topic("tls-orders", 1)
        with client.producer() as producer:
            producer.send_batch("tls-orders", [b"%d" % i for i in range(10)], partition=0)
        consumer = client.consumer(["tls-orders"], group="tls-billing", from_beginning=True)
        got: list[object] = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            got += consumer.poll(timeout=0.5)
        assert len(got) == 10
        consumer.commit({("tls-orders", 0): 7})
        consumer.close()

    text = _plait(data, "status", "--meta", url)
    assert text.returncode == 0, text.stderr
    assert "tls-orders  partitions 1" in text.stdout
    assert "tls-billing  generation" in text.stdout and "lag 3" in text.stdout
    assert "tls-orders[0]  committed 7  lag 3" in text.stdout

    doc = _plait(data, "status", "--meta", url, "--json")
    assert doc.returncode == 0, doc.stderr
    groups = {g["name"]: g for g in json.loads(doc.stdout)["groups"]}
    assert groups["tls-billing"]["total_lag"] == 3


def _one_line_error(proc: subprocess.CompletedProcess[str], tls: TlsFiles) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("plait: error: ")
    assert_no_key_material(proc.stderr + proc.stdout, tls)
    return lines[0]


def test_cli_bad_cert_path_is_one_line(
    etcd_tls: EtcdMember, tls_files: TlsFiles, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-client.pem"
    url = (
        f"etcds://{etcd_tls.endpoint}"
        f"?cacert={tls_files.ca}&cert={missing}&key={tls_files.client_key}"
    )
    line = _one_line_error(_plait(tmp_path / "data", "status", "--meta", url), tls_files)
    assert str(missing) in line and "client certificate" in line


def test_cli_without_client_cert_is_one_line(
    etcd_tls: EtcdMember, tls_files: TlsFiles, tmp_path: Path
) -> None:
    url = f"etcds://{etcd_tls.endpoint}?cacert={tls_files.ca}"
    start = time.monotonic()
    proc = _plait(tmp_path / "data", "status", "--meta", url)
    took = time.monotonic() - start
    line = _one_line_error(proc, tls_files)
    assert "cert=" in line and etcd_tls.endpoint in line
    assert took < 15  # a Python start-up plus a prompt failure, not a 20 s retry
