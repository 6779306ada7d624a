"""A response's head and body leave in one write (graph/http/serving.CoalescedWrites),
and nothing is held past the event loop's pass that wrote it, lost on close, or sent
after an abort. Over a real socket pair, on a real event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

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


@dataclass
class Connection:
    wrapped: CoalescedWrites  # what the protocol writes to
    transport: asyncio.Transport  # the real one, over one end of a socket pair
    peer: socket.socket  # the other end
    writes: list[bytes]  # the data of every write the real transport was asked for


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[Connection]:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(Silent, sock=ours)
    recording = Recording(transport)
    theirs.setblocking(False)
    try:
        yield Connection(CoalescedWrites(recording, loop), transport, theirs, recording.writes)  # type: ignore[arg-type]
    finally:
        transport.close()
        theirs.close()


async def received(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await loop.sock_recv(peer, size - len(data))
    return data


async def test_a_head_and_its_body_are_one_write() -> None:
    async with connected() as c:
        c.wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        c.wrapped.write(b"{}")
        assert c.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        assert await received(c.peer, 40) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"


async def test_a_lone_write_leaves_when_the_loop_pass_ends() -> None:
    async with connected() as c:
        c.wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert c.writes == [] and c.wrapped.get_write_buffer_size() == 25
        await asyncio.sleep(0)
        assert c.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        assert await received(c.peer, 25) == b"HTTP/1.1 100 Continue\r\n\r\n"


async def test_closing_sends_what_is_held_and_aborting_does_not() -> None:
    async with connected() as c:
        c.wrapped.write(b"last words")
        c.wrapped.close()
        assert c.writes == [b"last words"] and c.wrapped.is_closing()
        assert await received(c.peer, 10) == b"last words"
    async with connected() as c:
        c.wrapped.write(b"never sent")
        c.wrapped.abort()
        await asyncio.sleep(0)
        assert c.writes == [] and c.transport.is_closing()


async def test_everything_else_is_the_transports() -> None:
    async with connected() as c:
        assert c.wrapped.get_extra_info("socket") is c.transport.get_extra_info("socket")
        c.wrapped.pause_reading()
        assert not c.wrapped.is_reading()
        c.wrapped.resume_reading()
        assert c.wrapped.is_reading()


def test_a_write_held_when_the_connection_is_lost_is_dropped_on_uvloop() -> None:
    """uvloop (what `phigate serve` runs) raises on a write to a transport whose handle
    has closed, where asyncio drops it: a head held when the connection is lost in the
    same pass must not become an error in the loop's callback."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> list[dict[str, object]]:
        errors: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        async with connected() as c:
            c.wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
            c.transport.abort()  # the connection is lost before the pass ends
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert c.writes == []
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
    async with connected() as c:
        protocol.connection_made(c.transport)
        assert isinstance(protocol.transport, CoalescedWrites)
        protocol.connection_lost(None)
