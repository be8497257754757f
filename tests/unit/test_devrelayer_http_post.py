"""The webhook POST client against an in-process HTTP/1.1 server: keep-alive, chunked and empty bodies,
and a fresh connection when the server closed an idle one."""

from __future__ import annotations

import asyncio

from msq_devrelayer.http_post import HttpPoster

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
]


async def _scenario() -> tuple[list[int], list[bytes], int]:
    bodies: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            bodies.append(await reader.readexactly(length))
            reply = RESPONSES[(len(bodies) - 1) % len(RESPONSES)]
            writer.write(reply)
            await writer.drain()
            if b"Connection: close" in reply:
                writer.close()
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = HttpPoster(f"http://127.0.0.1:{port}/hook?x=1", timeout=5)
    statuses = [await poster.post(f"body-{i}".encode(), {"X-Signature": "s"}) for i in range(6)]
    await poster.aclose()
    server.close()
    await server.wait_closed()
    return statuses, bodies, connections


def test_keep_alive_chunked_empty_and_closed_connections() -> None:
    statuses, bodies, connections = asyncio.run(_scenario())
    assert statuses == [200, 202, 204, 500, 200, 202]
    assert bodies == [f"body-{i}".encode() for i in range(6)]
    # One connection for the first four (the server closes after the 500), a second for the rest.
    assert connections == 2
