"""The fast byte path of a pull: a raw TCP stream of one file, sent with sendfile.

The source agent hands out a one-use token for (file, offset) over gRPC
(OpenFileStream); the target connects to the source's stream port, sends the token and a
newline, and reads ``OK <count>\\n`` followed by exactly ``count`` bytes, or
``ERR <reason>\\n``. The file is opened when the token is issued, so the bytes sent are
those the returned sha256 describes even if the path is replaced meanwhile. The target
still checks the sha256 of what it wrote before renaming (files.DataDir.pull).

Why not gRPC: a gRPC stream between two Python processes carries about as much as rsync
at best, and costs two more copies per byte (protobuf framing on each side). Here the
source's bytes go from the page cache to the socket in the kernel, and the target reads
whole chunks with one blocking ``recv(MSG_WAITALL)`` per chunk on its own thread.

Sockets block only on worker threads, never on the event loop. Tokens and the connection
protocol never appear in logs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from ringrift_agent.adapters.files import DataDir, check_offset
from ringrift_runtime.errors import DependencyUnavailable, InvalidArgument
from ringrift_runtime.security.tls import ContextSource

TTL_SECONDS = 30
HANDSHAKE_SECONDS = 10.0  # to send the token, and for the source to answer
STALL_SECONDS = 30.0  # no byte for this long ends a stream
MAX_OPEN = 256  # tokens issued and not yet used, each holding an open file
MAX_STREAMS = 16  # streams sent at once; more connections wait for a thread
SEND_BLOCK = 1024 * 1024  # bytes read and sent at once through TLS
MAX_LINE = 128

log = logging.getLogger("ringrift.agent.file_stream")


@dataclass(frozen=True)
class OpenedStream:
    port: int
    token: str
    size: int
    sha256: str
    count: int
    ttl_seconds: int


@dataclass
class _Ticket:
    handle: BinaryIO
    offset: int
    count: int
    expires: float


class FileStreamServer:
    """Serves the byte streams of one agent's data directory."""

    def __init__(
        self, data: DataDir, host: str, port: int, ttl_seconds: int = TTL_SECONDS, tls: ContextSource | None = None
    ) -> None:
        self._tls = tls  # mutual TLS on every stream; None: plaintext (a trusted network, integrity by sha256)
        self._data = data
        self._host = host
        self._requested_port = port
        self._ttl = ttl_seconds
        self._tickets: dict[str, _Ticket] = {}
        self._lock = threading.Lock()  # tickets are issued on the loop and taken on threads
        self._executor = ThreadPoolExecutor(max_workers=MAX_STREAMS, thread_name_prefix="file-stream")
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task | None = None
        self._streams: set[asyncio.Future] = set()
        self._connections: set[socket.socket] = set()  # being served, under the lock
        self.port = 0

    async def start(self) -> None:
        family = socket.getaddrinfo(self._host, self._requested_port, type=socket.SOCK_STREAM)[0][0]
        try:
            listener = socket.create_server((self._host, self._requested_port), family=family, backlog=128)
        except OSError as exc:
            raise OSError(f"cannot bind the file stream port {self._host}:{self._requested_port}: {exc}") from None
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accepting = asyncio.create_task(self._accept(), name="file-stream-accept")

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            tickets, self._tickets = list(self._tickets.values()), {}
            connections = list(self._connections)
        for ticket in tickets:
            ticket.handle.close()
        for connection in connections:  # a reader that stalls must not hold the agent's stop
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        await asyncio.gather(*self._streams, return_exceptions=True)
        self._executor.shutdown(wait=False)

    async def open(self, relative: str, offset: int) -> OpenedStream:
        """A token for the bytes of ``relative`` from ``offset`` to its end."""
        handle, size, sha256 = await self._data.open_snapshot(relative)
        try:
            check_offset(offset, size)
        except InvalidArgument:
            handle.close()
            raise
        now = time.monotonic()
        token = secrets.token_hex(16)
        with self._lock:
            expired = [t for t, ticket in self._tickets.items() if ticket.expires <= now]
            closing = [self._tickets.pop(t).handle for t in expired]
            full = len(self._tickets) >= MAX_OPEN
            if not full:
                self._tickets[token] = _Ticket(handle, offset, size - offset, now + self._ttl)
        for old in closing:
            old.close()
        if full:
            handle.close()
            raise DependencyUnavailable(f"{MAX_OPEN} file streams are open on this agent; retry shortly")
        return OpenedStream(self.port, token, size, sha256, size - offset, self._ttl)

    @property
    def open_tokens(self) -> int:
        with self._lock:
            return len(self._tickets)

    def _take(self, token: str) -> _Ticket | None:
        with self._lock:
            for known in list(self._tickets):
                if hmac.compare_digest(known.encode(), token.encode()):  # no timing hint about other tokens
                    ticket = self._tickets.pop(known)
                    break
            else:
                return None
        if ticket.expires <= time.monotonic():
            ticket.handle.close()
            return None
        return ticket

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            try:
                connection, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # e.g. out of descriptors: keep serving the others
                log.warning("file stream accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            future = loop.run_in_executor(self._executor, self._serve, connection)
            self._streams.add(future)
            future.add_done_callback(self._streams.discard)

    def _serve(self, raw: socket.socket) -> None:
        ticket = None
        connection = raw
        with self._lock:
            self._connections.add(raw)
        try:
            raw.settimeout(HANDSHAKE_SECONDS)
            if self._tls is not None:
                connection = self._tls.get().wrap_socket(raw, server_side=True)  # the client's certificate is required
            line = _read_line(connection)
            ticket = self._take(line) if line is not None else None
            if ticket is None:
                connection.sendall(b"ERR unknown, used or expired token\n")
                return
            connection.sendall(f"OK {ticket.count}\n".encode())
            connection.settimeout(STALL_SECONDS)  # a send waits at most this long for room
            if isinstance(connection, ssl.SSLSocket):
                sent = _send_encrypted(connection, ticket.handle, ticket.offset, ticket.count)
            else:
                sent = connection.sendfile(ticket.handle, ticket.offset, ticket.count) if ticket.count else 0
            if sent < ticket.count:
                log.warning("file stream ended after %d of %d bytes: the file shrank", sent, ticket.count)
            connection.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the reader went away or stalled: its pull resumes later
            log.info("file stream ended early: %s", exc)
        except Exception:  # never lost in an unawaited future
            log.exception("file stream failed")
        finally:
            if ticket is not None:
                ticket.handle.close()
            with self._lock:
                self._connections.discard(raw)
            connection.close()


def _send_encrypted(connection: ssl.SSLSocket, handle: BinaryIO, offset: int, count: int) -> int:
    """What sendfile does for plaintext, through TLS (no kernel TLS here): the file read in
    large blocks, each sent whole."""
    buffer = bytearray(SEND_BLOCK)
    view = memoryview(buffer)
    sent = 0
    while sent < count:
        size = os.preadv(handle.fileno(), [view[: min(SEND_BLOCK, count - sent)]], offset + sent)
        if size == 0:
            break  # the file shrank
        connection.sendall(view[:size])
        sent += size
    return sent


def _read_line(connection: socket.socket) -> str | None:
    """One short line, read a byte at a time: file bytes follow the source's answer on
    the same connection and must stay in the socket for the chunk reads."""
    data = bytearray()
    while len(data) < MAX_LINE:
        byte = connection.recv(1)
        if not byte:
            return None
        if byte == b"\n":
            return data.decode("ascii", "replace")
        data += byte
    return None


class StreamUnreachable(Exception):
    """The source's stream port cannot be reached from here: pull over gRPC instead."""


class StreamReader:
    """The target's side of one stream: connect, then read chunks on one worker thread."""

    def __init__(
        self, host: str, opened: OpenedStream, chunk_size: int, tls: ContextSource | None = None, server_name: str = ""
    ) -> None:
        self._tls = tls
        self._server_name = server_name  # the source agent's identity (DNS name) its certificate must carry
        self._host = host
        self._opened = opened
        self._chunk = chunk_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-recv")
        self._socket: socket.socket | None = None

    async def connect(self) -> None:
        """Connect and hand over the token. Raises StreamUnreachable when the port cannot
        be reached from here, DependencyUnavailable when the source refuses."""
        loop = asyncio.get_running_loop()
        try:
            self._socket = await loop.run_in_executor(self._executor, self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    async def chunks(self, offset: int) -> AsyncIterator[tuple[int, bytes]]:
        """(offset, bytes) chunks of the whole stream; the connection closes at the end."""
        loop = asyncio.get_running_loop()
        try:
            done, count = 0, self._opened.count
            while done < count:
                data = await loop.run_in_executor(self._executor, self._receive, min(self._chunk, count - done))
                if not data:
                    raise DependencyUnavailable(f"the source closed the file stream after {done} of {count} bytes")
                yield offset + done, data
                done += len(data)
        finally:
            await self._close()

    def _connect(self) -> socket.socket:
        try:
            connection = socket.create_connection((self._host, self._opened.port), timeout=HANDSHAKE_SECONDS)
        except OSError as exc:
            raise StreamUnreachable(f"{self._host}:{self._opened.port}: {exc}") from None
        try:
            if self._tls is not None:
                try:
                    connection = self._tls.get().wrap_socket(connection, server_hostname=self._server_name)
                except ssl.SSLError as exc:
                    raise DependencyUnavailable(f"the source's file stream failed TLS: {exc.reason}") from None
            connection.sendall(self._opened.token.encode() + b"\n")
            answer = _read_line(connection)
            if answer is None:
                raise DependencyUnavailable("the source closed the file stream before answering")
            if not answer.startswith("OK "):
                raise DependencyUnavailable(f"the source refused the file stream: {answer.removeprefix('ERR ')}")
            if isinstance(connection, ssl.SSLSocket):
                connection.settimeout(STALL_SECONDS)
                return connection
            connection.settimeout(None)  # blocking: one recv(MSG_WAITALL) fills a whole chunk
            seconds = int(STALL_SECONDS)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, 0))
            return connection
        except BaseException:
            connection.close()
            raise

    def _receive(self, size: int) -> bytes:
        assert self._socket is not None
        try:
            if isinstance(self._socket, ssl.SSLSocket):
                return _receive_encrypted(self._socket, size)
            return self._socket.recv(size, socket.MSG_WAITALL)
        except BlockingIOError:  # SO_RCVTIMEO passed with no byte
            raise DependencyUnavailable(f"the source sent nothing for {STALL_SECONDS:.0f} s") from None
        except OSError as exc:
            raise DependencyUnavailable(f"the file stream broke: {exc}") from None

    async def _close(self) -> None:
        connection, self._socket = self._socket, None
        if connection is not None:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # wakes a recv still waiting on the thread
            except OSError:
                pass
            await asyncio.get_running_loop().run_in_executor(self._executor, connection.close)
        self._executor.shutdown(wait=False)


def _receive_encrypted(connection: ssl.SSLSocket, size: int) -> bytes:
    """``size`` bytes (fewer only at the end of the stream): TLS hands out one record at a
    time, so the chunk is filled record by record."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        try:
            got = connection.recv_into(view[filled:], size - filled)
        except TimeoutError:
            raise DependencyUnavailable(f"the source sent nothing for {STALL_SECONDS:.0f} s") from None
        if got == 0:
            break
        filled += got
    return bytes(view[:filled])


def split_host(address: str) -> str:
    """The host of ``host:port`` (``[v6]:port`` too)."""
    host = address.rpartition(":")[0] if ":" in address else address
    return host.strip("[]")
