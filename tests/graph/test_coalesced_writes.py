"""A response's head and body leave in one write (graph/http/serving.CoalescedWrites),
and nothing is held past the event loop's pass that wrote it, lost on close, or sent
after an abort. Over a real socket pair, on a real event loop."""

from __future__ import annotations

import asyncio
import socket

import pytest

from graph.http.serving import CoalescedWrites


class Silent(asyncio.Protocol):
    pass


class Recording:
    """A transport, recording the data of every write it is asked for (uvloop's
    transports cannot be patched)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.transport, name)

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)


async def connected() -> tuple[CoalescedWrites, asyncio.Transport, socket.socket, list[bytes]]:
    """A transport over one end of a socket pair, wrapped; the other end; and the data
    of every write the transport itself was asked for."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(Silent, sock=ours)
    recording = Recording(transport)
    theirs.setblocking(False)
    return CoalescedWrites(recording, loop), transport, theirs, recording.writes  # type: ignore[arg-type]


async def received(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await loop.sock_recv(peer, size - len(data))
    return data


async def test_a_head_and_its_body_are_one_write() -> None:
    wrapped, transport, peer, writes = await connected()
    try:
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wrapped.write(b"{}")
        assert writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        assert await received(peer, 40) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    finally:
        transport.close()
        peer.close()


async def test_a_lone_write_leaves_when_the_loop_pass_ends() -> None:
    wrapped, transport, peer, writes = await connected()
    try:
        wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert writes == [] and wrapped.get_write_buffer_size() == 25
        await asyncio.sleep(0)
        assert writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        assert await received(peer, 25) == b"HTTP/1.1 100 Continue\r\n\r\n"
    finally:
        transport.close()
        peer.close()


async def test_closing_sends_what_is_held_and_aborting_does_not() -> None:
    wrapped, transport, peer, writes = await connected()
    wrapped.write(b"last words")
    wrapped.close()
    assert writes == [b"last words"] and wrapped.is_closing()
    assert await received(peer, 10) == b"last words"
    peer.close()

    wrapped, transport, peer, writes = await connected()
    wrapped.write(b"never sent")
    wrapped.abort()
    await asyncio.sleep(0)
    assert writes == [] and transport.is_closing()
    peer.close()


async def test_everything_else_is_the_transports() -> None:
    wrapped, transport, peer, _ = await connected()
    try:
        assert wrapped.get_extra_info("socket") is transport.get_extra_info("socket")
        wrapped.pause_reading()
        assert not wrapped.is_reading()
        wrapped.resume_reading()
        assert wrapped.is_reading()
    finally:
        transport.close()
        peer.close()


def test_a_write_held_when_the_connection_is_lost_is_dropped_on_uvloop() -> None:
    """uvloop (what `phigate serve` runs) raises on a write to a transport whose handle
    has closed, where asyncio drops it: a head held when the connection is lost in the
    same pass must not become an error in the loop's callback."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> list[dict[str, object]]:
        errors: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        wrapped, transport, peer, writes = await connected()
        wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.abort()  # the connection is lost before the pass ends
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        peer.close()
        assert writes == []
        return errors

    assert uvloop.run(scenario()) == []


async def test_served_connections_coalesce() -> None:
    """`phigate serve`'s protocol wraps each connection's transport."""
    import uvicorn
    from uvicorn.server import ServerState

    from graph.http.serving import DeadlineProtocol

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    protocol = DeadlineProtocol(uvicorn.Config(app=app), ServerState(), {})
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(Silent, sock=ours)
    try:
        protocol.connection_made(transport)
        assert isinstance(protocol.transport, CoalescedWrites)
    finally:
        protocol.connection_lost(None)
        transport.close()
        theirs.close()
