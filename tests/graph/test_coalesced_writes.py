"""A response's head and body leave in one write (graph/http/serving.CoalescedWrites),
and nothing is held past the event loop's pass that wrote it, lost on close, or sent
after an abort. Over a real socket pair, on a real event loop."""

from __future__ import annotations

import asyncio
import socket

from graph.http.serving import CoalescedWrites


class Silent(asyncio.Protocol):
    pass


async def connected() -> tuple[CoalescedWrites, asyncio.Transport, socket.socket, list[bytes]]:
    """A transport over one end of a socket pair, wrapped; the other end; and the data
    of every write the transport itself was asked for."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(Silent, sock=ours)
    writes: list[bytes] = []
    real_write = transport.write

    def write(data: bytes) -> None:
        writes.append(bytes(data))
        real_write(data)

    transport.write = write  # type: ignore[method-assign]
    theirs.setblocking(False)
    return CoalescedWrites(transport, loop), transport, theirs, writes


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
