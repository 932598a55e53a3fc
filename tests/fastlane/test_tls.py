"""The NATS lane over mutual TLS, configured only through the URL's query parameters."""

from __future__ import annotations

import datetime
import ipaddress
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from plait.fastlane.url import open_fastlane

from .lanes import NatsServer, nats_server, wait_until


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def make_pki(d: Path) -> None:
    """ca.pem, server.pem/.key (for 127.0.0.1) and client.pem/.key signed by the CA."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("plait test CA"))
          .issuer_name(_name("plait test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write(d / "ca", ca, ca_key)
    for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                       ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(f"plait {who}"))
                   .issuer_name(ca.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if who == "server":
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        _write(d / who, builder.sign(ca_key, hashes.SHA256()), key)


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, Path]]:
    pki = tmp_path_factory.mktemp("pki")
    make_pki(pki)
    args = ("--tlsverify", "--tlscert", str(pki / "server.pem"), "--tlskey",
            str(pki / "server.key"), "--tlscacert", str(pki / "ca.pem"))
    with nats_server(tmp_path_factory.mktemp("nats-tls"), extra_args=args) as server:
        yield server, pki


def test_mtls_lane_carries_batches(tls_nats: tuple[NatsServer, Path]) -> None:
    server, pki = tls_nats
    url = (f"nats://127.0.0.1:{server.port}?cacert={pki / 'ca.pem'}"
           f"&cert={pki / 'client.pem'}&key={pki / 'client.key'}")
    pub, sub = open_fastlane(url), open_fastlane(url)
    try:
        wait_until(lambda: pub.connected and sub.connected, 10, "mTLS connections")
        got: list[tuple[int, int, bytes]] = []
        lock = threading.Lock()

        def on_batch(base: int, last: int, data: bytes) -> None:
            with lock:
                got.append((base, last, data))

        sub.subscribe("secure", 0, on_batch)
        pub.publish("secure", 0, 5, 9, b"batch-bytes")
        wait_until(lambda: len(got) == 1, 10, "the message over TLS")
        assert got == [(5, 9, b"batch-bytes")]
    finally:
        pub.close()
        sub.close()


def test_without_a_client_certificate_the_lane_stays_down(
    tls_nats: tuple[NatsServer, Path],
) -> None:
    server, pki = tls_nats
    lane = open_fastlane(f"nats://127.0.0.1:{server.port}?cacert={pki / 'ca.pem'}")
    try:
        time.sleep(1.0)
        # The server demands a client certificate: never connected, and publishing
        # still returns at once (dropped) instead of raising or blocking.
        assert not lane.connected
        started = time.monotonic()
        lane.publish("secure", 0, 0, 0, b"x")
        assert time.monotonic() - started < 0.1
    finally:
        lane.close()
