"""The byte stream of a pull (ringrift_agent.adapters.file_stream) over real sockets and
real files: tokens are one-use and expire, the bytes are those the sha256 describes even
when the file is replaced after the token was issued, a source that dies mid-stream
leaves a prefix to resume from, and an unreachable port is told apart from a refusal."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from contextlib import aclosing
from pathlib import Path

import pytest

from ringrift_agent.adapters.file_stream import (
    FileStreamServer,
    OpenedStream,
    StreamReader,
    StreamUnreachable,
    split_host,
)
from ringrift_agent.adapters.files import DataDir
from ringrift_runtime.errors import DependencyUnavailable, InvalidArgument, NotFound

PATH = "models/square8_2p/m.npz"


@pytest.fixture
async def server(tmp_path: Path):
    data = DataDir(tmp_path / "source")
    (tmp_path / "source/models/square8_2p").mkdir(parents=True)
    streams = FileStreamServer(data, "127.0.0.1", 0)
    await streams.start()
    try:
        yield streams
    finally:
        await streams.stop()


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "source" / PATH
    path.write_bytes(content)
    return path


async def receive(opened: OpenedStream, offset: int = 0, chunk: int = 1 << 16) -> bytes:
    reader = StreamReader("127.0.0.1", opened, chunk)
    await reader.connect()
    parts, expected = [], offset
    async with aclosing(reader.chunks(offset)) as chunks:
        async for at, data in chunks:
            assert at == expected
            parts.append(data)
            expected += len(data)
    return b"".join(parts)


def raw_exchange(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(line)
        received = b""
        try:
            while piece := connection.recv(65536):
                received += piece
        except ConnectionResetError:  # closed with our bytes unread: nothing more to read
            pass
        return received


async def test_a_stream_carries_the_file_from_its_offset_and_the_hash_describes_it(server, tmp_path):
    content = os.urandom(3 * (1 << 20) + 123)
    write(tmp_path, content)
    opened = await server.open(PATH, 0)
    assert (opened.size, opened.count, opened.sha256) == (
        len(content),
        len(content),
        hashlib.sha256(content).hexdigest(),
    )
    assert await receive(opened) == content
    tail = await server.open(PATH, 1_000_000)
    assert tail.count == len(content) - 1_000_000
    assert await receive(tail, 1_000_000, chunk=1 << 20) == content[1_000_000:]
    end = await server.open(PATH, len(content))
    assert end.count == 0 and await receive(end, len(content)) == b""


async def test_a_token_is_used_once_and_a_wrong_one_opens_nothing(server, tmp_path):
    write(tmp_path, b"weights" * 1000)
    opened = await server.open(PATH, 0)
    first = await asyncio.to_thread(raw_exchange, opened.port, opened.token.encode() + b"\n")
    assert first == b"OK 7000\n" + b"weights" * 1000
    again = await asyncio.to_thread(raw_exchange, opened.port, opened.token.encode() + b"\n")
    assert again.startswith(b"ERR ") and b"weights" not in again
    other = await server.open(PATH, 0)
    wrong = await asyncio.to_thread(raw_exchange, opened.port, b"0" * 32 + b"\n")
    assert wrong.startswith(b"ERR ") and server.open_tokens == 1  # the guess did not use up the real token
    overlong = await asyncio.to_thread(raw_exchange, opened.port, b"x" * 500)
    assert not overlong.startswith(b"OK")
    not_ascii = await asyncio.to_thread(raw_exchange, opened.port, "\u00e9t\u00e9".encode() + b"\xff\n")
    assert not_ascii.startswith(b"ERR ")
    with pytest.raises(DependencyUnavailable, match="refused"):
        await receive(opened)  # used already
    assert await receive(other) == b"weights" * 1000


async def test_an_unused_token_expires_and_closes_its_file(tmp_path):
    data = DataDir(tmp_path / "source")
    (tmp_path / "source/models/square8_2p").mkdir(parents=True)
    write(tmp_path, b"x" * 100)
    streams = FileStreamServer(data, "127.0.0.1", 0, ttl_seconds=0)
    await streams.start()
    try:
        opened = await streams.open(PATH, 0)
        with pytest.raises(DependencyUnavailable, match="expired"):
            await receive(opened)
        assert streams.open_tokens == 0
    finally:
        await streams.stop()


async def test_the_bytes_are_those_of_the_file_as_opened_even_when_it_is_replaced(server, tmp_path):
    old = os.urandom(1 << 20)
    path = write(tmp_path, old)
    opened = await server.open(PATH, 0)
    replacement = path.with_name("m.npz.new")
    replacement.write_bytes(os.urandom(1 << 19))
    os.replace(replacement, path)  # how models and training files are published
    received = await receive(opened)
    assert received == old and hashlib.sha256(received).hexdigest() == opened.sha256


@pytest.mark.parametrize("path", ["../secret", "/etc/passwd", "models/../../secret", ""])
async def test_paths_outside_the_data_directory_get_no_token(server, tmp_path, path):
    (tmp_path / "secret").write_text("not yours")
    with pytest.raises(InvalidArgument):
        await server.open(path, 0)
    assert server.open_tokens == 0


async def test_an_offset_past_the_end_or_a_missing_file_gets_no_token(server, tmp_path):
    write(tmp_path, b"abc")
    with pytest.raises(InvalidArgument, match="offset"):
        await server.open(PATH, 4)
    with pytest.raises(NotFound):
        await server.open("models/square8_2p/absent.npz", 0)
    assert server.open_tokens == 0


async def test_a_source_that_stops_mid_stream_is_an_error_after_the_bytes_it_sent(tmp_path):
    content = os.urandom(8 << 20)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def half_then_close():
        connection, _ = listener.accept()
        with connection:
            connection.recv(64)
            connection.sendall(f"OK {len(content)}\n".encode() + content[: len(content) // 2])

    sender = asyncio.create_task(asyncio.to_thread(half_then_close))
    opened = OpenedStream(port, "t" * 32, len(content), "", len(content), 30)
    reader = StreamReader("127.0.0.1", opened, 1 << 20)
    await reader.connect()
    received = b""
    with pytest.raises(DependencyUnavailable, match=f"after {len(content) // 2} of {len(content)} bytes"):
        async with aclosing(reader.chunks(0)) as chunks:
            async for _, data in chunks:
                received += data
    await sender
    listener.close()
    assert received == content[: len(content) // 2]


async def test_an_unreachable_port_is_not_a_refusal(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nobody listens here once it is closed
    reader = StreamReader("127.0.0.1", OpenedStream(closed_port, "t", 1, "", 1, 30), 1024)
    with pytest.raises(StreamUnreachable):
        await reader.connect()


def test_the_host_of_an_address():
    assert split_host("10.0.0.5:50060") == "10.0.0.5"
    assert split_host("agent-2:50060") == "agent-2"
    assert split_host("[::1]:50060") == "::1"


class _Source:
    """The source agent as the puller's stub sees it."""

    def __init__(self, answer=None, error=None) -> None:
        self._answer, self._error = answer, error

    async def OpenFileStream(self, request):
        if self._error is not None:
            raise self._error
        return self._answer


@pytest.mark.parametrize("case", ["unreachable port", "port 0", "older agent"])
async def test_a_pull_falls_back_to_grpc_when_there_is_no_stream_to_use(server, case):
    from grpc import StatusCode
    from grpc.aio import AioRpcError, Metadata

    from ringrift.agent.v1 import agent_pb2
    from ringrift_agent.api.servicer import NodeAgentServicer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    answers = {
        "unreachable port": _Source(
            agent_pb2.OpenFileStreamResponse(port=closed_port, token="t", count=1, size_bytes=1)
        ),
        "port 0": _Source(agent_pb2.OpenFileStreamResponse(count=1, size_bytes=1)),
        "older agent": _Source(error=AioRpcError(StatusCode.UNIMPLEMENTED, Metadata(), Metadata(), "unknown method")),
    }
    puller = NodeAgentServicer(None, None, None, {}, None, None, None, None, streams=server)
    request = agent_pb2.PullFileRequest(source_address="127.0.0.1:1", path=PATH, sha256="0" * 64, size_bytes=1)
    assert await puller._stream_reader(answers[case], request, 0, lambda sha256: None) is None


async def test_a_refusing_source_is_an_error_not_a_fallback(server, tmp_path):
    from ringrift.agent.v1 import agent_pb2
    from ringrift_agent.api.servicer import NodeAgentServicer

    write(tmp_path, b"x")
    puller = NodeAgentServicer(None, None, None, {}, None, None, None, None, streams=server)
    request = agent_pb2.PullFileRequest(source_address="127.0.0.1:1", path=PATH, sha256="0" * 64, size_bytes=1)
    stale = agent_pb2.OpenFileStreamResponse(port=server.port, token="f" * 32, count=1, size_bytes=1)
    with pytest.raises(DependencyUnavailable, match="refused"):
        await puller._stream_reader(_Source(stale), request, 0, lambda sha256: None)


async def test_serving_a_game_database_first_does_not_hide_its_game_count_from_the_manifest(tmp_path):
    from ringrift_reference.data import write_games
    from ringrift_reference.players import RandomPlayer, play_game

    data = DataDir(tmp_path / "data")
    records = [play_game("square6_2p", [RandomPlayer(), RandomPlayer()], seed) for seed in range(3)]
    write_games(tmp_path / "data/games/square6_2p/job-1.db", records, "gen0", {})
    write_games(tmp_path / "data/games/square6_2p/job-2.db", records[:2], "gen0", {})
    await data.describe("games/square6_2p/job-1.db")  # a ReadFile, hashed and cached before any manifest
    handle, _, _ = await data.open_snapshot("games/square6_2p/job-2.db")  # an OpenFileStream
    handle.close()
    counts = {f.path: f.game_count for f in await data.manifest()}
    assert counts == {"games/square6_2p/job-1.db": 3, "games/square6_2p/job-2.db": 2}


async def test_stopping_the_server_ends_a_stream_whose_reader_stalls(tmp_path):
    data = DataDir(tmp_path / "source")
    (tmp_path / "source/models/square8_2p").mkdir(parents=True)
    await asyncio.to_thread(write, tmp_path, b"z" * (64 << 20))  # far more than the socket buffers hold
    streams = FileStreamServer(data, "127.0.0.1", 0)
    await streams.start()
    opened = await streams.open(PATH, 0)

    def stall() -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", opened.port), timeout=5)
        connection.sendall(opened.token.encode() + b"\n")
        assert connection.recv(3) == b"OK "  # then reads nothing more
        return connection

    stalled = await asyncio.to_thread(stall)
    try:
        await asyncio.wait_for(streams.stop(), timeout=5)  # not the 30 s stall timeout
    finally:
        stalled.close()
