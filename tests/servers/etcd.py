"""Start real etcd servers for tests: one member, or a 3-member cluster with faults.

Each member listens on free loopback ports with its own temp data dir, is declared
ready when ``/health`` answers ``"true"`` (a leader exists), and is stopped by its pid.
With ``tls`` (see ``tests.servers.tls``) a member serves clients over https only and
requires a client certificate its CA signed (``--client-cert-auth``); peers stay http.
Without an etcd binary the helpers skip, except under ``CI=true`` where a missing
server is a failure: a green CI run must mean the etcd backend was exercised.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import free_port, missing_server, signal_and_reap
from .tls import TlsFiles

# Short Raft timers: elections after a SIGKILL finish in about a second, and etcd's
# minimum lease TTL (1.5 election timeouts) drops to 1s, which keeps lease tests fast.
HEARTBEAT_MS = 50
ELECTION_MS = 500


def etcd_binary() -> str:
    """Path of etcd, or skip (fail under CI=true) when it is not installed."""
    found = shutil.which("etcd") or (
        "/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None
    )
    if found is None:
        msg = "etcd not installed (Debian package etcd-server); the etcd backend was not tested"
        missing_server(msg)
    return found


def _client_context(tls: TlsFiles | None) -> ssl.SSLContext | None:
    """What the helpers' own requests present to a TLS member: its CA and the client cert."""
    if tls is None:
        return None
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    ctx.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    return ctx


def _post(
    url: str,
    body: dict[str, object],
    timeout: float = 2.0,
    context: ssl.SSLContext | None = None,
) -> dict[str, object]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
        out: dict[str, object] = json.loads(resp.read())
        return out


@dataclass
class EtcdMember:
    name: str
    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    cluster: str = ""  # --initial-cluster value
    tls: TlsFiles | None = None  # https clients with --client-cert-auth; peers stay http

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    @property
    def meta_url(self) -> str:
        """The URL open_meta takes for this member (with the client cert under TLS)."""
        if self.tls is None:
            return f"etcd://{self.endpoint}"
        t = self.tls
        return (
            f"etcds://{self.endpoint}?cacert={t.ca}&cert={t.client_cert}&key={t.client_key}"
        )

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self) -> None:
        client = self.client_url
        args = [
            etcd_binary(),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.cluster or f'{self.name}={self.peer_url}'}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=plait-test",
            f"--heartbeat-interval={HEARTBEAT_MS}",
            f"--election-timeout={ELECTION_MS}",
            "--logger=zap",
            "--log-level=warn",
        ]
        if self.tls is not None:
            args += [
                f"--cert-file={self.tls.server_cert}",
                f"--key-file={self.tls.server_key}",
                f"--trusted-ca-file={self.tls.ca}",
                "--client-cert-auth",
            ]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.parent / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by proc
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the member by its pid and reap it."""
        signal_and_reap(self.proc, sig)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.client_url}/health", timeout=1, context=_client_context(self.tls)
            ) as r:
                return bool(json.loads(r.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def status(self) -> dict[str, object]:
        """The maintenance status: this member's id (header.member_id) and the leader's."""
        return _post(
            f"{self.client_url}/v3/maintenance/status",
            {},
            context=_client_context(self.tls),
        )

    def log_tail(self) -> str:
        path = self.data_dir.parent / f"{self.name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def wait_healthy(members: list[EtcdMember], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            if m.proc is not None and m.proc.poll() is not None:
                raise RuntimeError(
                    f"etcd {m.name} exited with {m.proc.returncode}:\n{m.log_tail()}"
                )
        if all(m.healthy() for m in members):
            return
        time.sleep(0.05)
    raise TimeoutError(
        f"etcd not healthy after {timeout}s:\n"
        + "\n".join(m.log_tail() for m in members)
    )


class EtcdCluster:
    """``size`` members on loopback; can SIGKILL the leader and restart a member."""

    def __init__(self, base: Path, size: int = 3) -> None:
        self.members = [EtcdMember(f"m{i}", base / f"m{i}") for i in range(size)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.cluster = initial

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(self.endpoints)

    def start(self) -> None:
        for m in self.members:
            m.start()
        wait_healthy(self.members)

    def leader(self, timeout: float = 15.0) -> EtcdMember:
        """The member the live members agree leads, found via /v3/maintenance/status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.members:
                if not m.alive:
                    continue
                try:
                    st = m.status()
                except (OSError, ValueError):
                    continue
                header = st.get("header")
                me = header.get("member_id") if isinstance(header, dict) else None
                if me is not None and st.get("leader") == me:
                    return m
            time.sleep(0.05)
        raise TimeoutError("no etcd leader found")

    def kill_leader(self) -> EtcdMember:
        leader = self.leader()
        leader.kill(signal.SIGKILL)
        return leader

    def restart(self, member: EtcdMember) -> None:
        """Start a killed member again on its data dir and wait until it serves."""
        member.start()
        wait_healthy([member])

    def stop(self) -> None:
        for m in self.members:
            m.kill(signal.SIGTERM)


@contextmanager
def etcd_server(base: Path, tls: TlsFiles | None = None) -> Iterator[EtcdMember]:
    """One etcd member, started and stopped around the block (https with ``tls``)."""
    member = EtcdMember("solo", base / "solo", tls=tls)
    member.start()
    try:
        wait_healthy([member])
        yield member
    finally:
        member.kill(signal.SIGTERM)


@contextmanager
def etcd_cluster(base: Path, size: int = 3) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(base, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
