"""A TCP proxy on loopback that a test can cut and heal: a network partition between one
process and a server (etcd, a service) without touching either. Bytes pass through
unchanged, so TLS is end to end. Cutting closes every open connection and refuses new
ones (the client sees a reset, as after a partition its keep-alives time out); healing
accepts again. Silencing leaves the open connections open and drops what they carry (a NAT
or firewall that forgot them: nobody is told), while new connections pass."""

from __future__ import annotations

import asyncio
import contextlib

from ringrift_runtime.local.ports import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._cut = False
        self._connections: set[asyncio.StreamWriter] = set()
        self._silenced: set[asyncio.StreamWriter] = set()  # what is written to these is dropped
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def cut(self) -> None:
        """Drop every connection and refuse new ones until heal()."""
        self._cut = True
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def silence(self) -> None:
        """From now on drop what every open connection carries, both ways, and keep it open;
        connections made later pass."""
        self._silenced |= self._connections

    def heal(self) -> None:
        self._cut = False

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.transport.abort()
            return
        self._connections |= {client_writer, server_writer}
        for reader, writer in ((client_reader, server_writer), (server_reader, client_writer)):
            pipe = asyncio.ensure_future(self._pipe(reader, writer))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if writer in self._silenced:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(writer)
            self._silenced.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
