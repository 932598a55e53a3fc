"""The nats-server test helper: JetStream on request, SIGKILL and restart on one port."""

from __future__ import annotations

import socket
from pathlib import Path

from .lanes import nats_server


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_jetstream_server_restarts_on_the_same_port(tmp_path: Path) -> None:
    with nats_server(tmp_path, jetstream=True) as server:
        assert server.alive and accepts(server.port)
        assert "JetStream" in server.log_tail()
        assert (tmp_path / "jetstream").is_dir()
        pid, port = server.proc.pid if server.proc else None, server.port
        server.kill()
        assert not server.alive and not accepts(port)
        server.restart()
        assert server.alive and server.port == port and accepts(port)
        assert server.proc is not None and server.proc.pid != pid
    assert not server.alive
