"""A tiny asyncio HTTP/1.0 endpoint for /healthz and /metrics.

Hand-written because aiohttp is not a dependency and prometheus_client's own server
runs in a thread, where scraping would read the log and group state concurrently with
the event loop; here the scrape runs on the loop, between requests. It serves GET only,
one request per connection, with the request head capped at 8 KiB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

MAX_HEAD = 8192


class HttpEndpoint:
    def __init__(self, render_metrics: Callable[[], bytes], healthy: Callable[[], bool]) -> None:
        self._render = render_metrics
        self._healthy = healthy
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status, ctype, body = self._route(head)
        except (TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError,
                ConnectionError, ValueError):
            status, ctype, body = "400 Bad Request", "text/plain", b"bad request\n"
        try:
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _route(self, head: bytes) -> tuple[str, str, bytes]:
        if len(head) > MAX_HEAD:
            return "431 Request Header Fields Too Large", "text/plain", b"too large\n"
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) < 2 or parts[0] != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split("?", 1)[0]
        if path == "/healthz":
            if self._healthy():
                return "200 OK", "text/plain", b"ok\n"
            return "503 Service Unavailable", "text/plain", b"stopping\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, self._render()
        return "404 Not Found", "text/plain", b"not found\n"
