"""Transport credentials from certificate files that may change under a running process:
servers re-read them on the next handshake after a change, client channels rebuild their
connection, and the agents' byte stream takes a fresh SSL context. Mutual TLS: a server
requires a certificate from the cluster's CA of every caller (the gateway's token port is
the one exception: server-authenticated TLS, callers present a bearer or join token)."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


@dataclass(frozen=True)
class CertFiles:
    """The CA that signs the cluster, and this process's certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def stamp(self) -> tuple[tuple[int, int], ...]:
        """Changes whenever one of the files is replaced or rewritten."""
        stamps = []
        for path in (self.ca, self.cert, self.key):
            try:
                stat = os.stat(path)
                stamps.append((stat.st_mtime_ns, stat.st_size))
            except FileNotFoundError:
                stamps.append((0, 0))
        return tuple(stamps)

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(ca, cert, key); a clear error naming the file that is missing."""
        found = []
        for what, path in (("CA certificate", self.ca), ("certificate", self.cert), ("key", self.key)):
            try:
                found.append(path.read_bytes())
            except FileNotFoundError:
                raise FileNotFoundError(f"the {what} {path} does not exist") from None
        return found[0], found[1], found[2]


class _Watched:
    """Re-reads the files when their stamp changed, at most once per ``every`` seconds."""

    def __init__(self, files: CertFiles, every: float) -> None:
        self.files = files
        self._every = every
        self._checked = time.monotonic()
        self.stamp = files.stamp()

    def changed(self) -> bool:
        now = time.monotonic()
        if now - self._checked < self._every:
            return False
        self._checked = now
        stamp = self.files.stamp()
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        return True


def server_credentials(
    files: CertFiles, reload_seconds: float, require_client_cert: bool = True
) -> grpc.ServerCredentials:
    """Credentials of a gRPC server port; the files are read again on the first handshake
    after they changed. A port that does not require client certificates (the gateway's
    token port) sends the CA with its chain: a node joining reads it there and pins it by
    its fingerprint before it trusts anything (``ringrift_runtime.security.join``)."""
    watched = _Watched(files, reload_seconds)

    def configuration() -> Any:
        ca, cert, key = files.read()
        chain = cert if require_client_cert else cert.rstrip(b"\n") + b"\n" + ca
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=ca)

    def fetch() -> Any:
        return configuration() if watched.changed() else None

    return grpc.dynamic_ssl_server_credentials(
        configuration(), fetch, require_client_authentication=require_client_cert
    )


def channel_credentials(files: CertFiles) -> grpc.ChannelCredentials:
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


class ReloadingChannel:
    """A grpc.aio channel that rebuilds itself with fresh credentials when the files
    changed. Stubs made on it resolve the current channel at every call, so a renewed
    certificate is used from the next call on; the old channel is closed a little later
    (calls under way finish)."""

    def __init__(self, build: Callable[[], grpc.aio.Channel], files: CertFiles, reload_seconds: float) -> None:
        self._build = build
        self._watched = _Watched(files, reload_seconds)
        self._channel = build()
        self._retired: list[tuple[float, grpc.aio.Channel]] = []

    def current(self) -> grpc.aio.Channel:
        if self._watched.changed():
            self._retired.append((time.monotonic(), self._channel))
            self._channel = self._build()
        return self._channel

    def _multi(
        self, kind: str, method: str, request_serializer: Any = None, response_deserializer: Any = None, **kwargs: Any
    ) -> Any:
        return _MultiCallable(self, kind, method, request_serializer, response_deserializer, kwargs)

    def unary_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **kwargs: Any
    ) -> Any:
        return self._multi("unary_unary", method, request_serializer, response_deserializer, **kwargs)

    def unary_stream(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **kwargs: Any
    ) -> Any:
        return self._multi("unary_stream", method, request_serializer, response_deserializer, **kwargs)

    def stream_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **kwargs: Any
    ) -> Any:
        return self._multi("stream_unary", method, request_serializer, response_deserializer, **kwargs)

    def stream_stream(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **kwargs: Any
    ) -> Any:
        return self._multi("stream_stream", method, request_serializer, response_deserializer, **kwargs)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def close(self, grace: float | None = None) -> None:
        for _, channel in self._retired:
            await channel.close(grace)
        self._retired.clear()
        await self._channel.close(grace)

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _MultiCallable:
    def __init__(
        self,
        owner: ReloadingChannel,
        kind: str,
        method: str,
        serializer: Any,
        deserializer: Any,
        kwargs: dict[str, Any],
    ) -> None:
        self._owner, self._kind, self._method = owner, kind, method
        self._serializer, self._deserializer, self._kwargs = serializer, deserializer, kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel = self._owner.current()
        factory = getattr(channel, self._kind)
        return factory(self._method, self._serializer, self._deserializer, **self._kwargs)(*args, **kwargs)


def secure_channel(
    target: str,
    files: CertFiles,
    server_name: str,
    options: Sequence[tuple[str, Any]],
    interceptors: Sequence[Any],
    reload_seconds: float,
) -> ReloadingChannel:
    """A mutual-TLS channel to ``target`` that accepts only a server whose certificate
    carries ``server_name`` (the identity's DNS name: ``state.service.demo.ringrift``)."""

    def build() -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            target,
            channel_credentials(files),
            options=[*options, ("grpc.ssl_target_name_override", server_name)],
            interceptors=list(interceptors),
        )

    return ReloadingChannel(build, files, reload_seconds)


class ContextSource:
    """SSL contexts for the agents' byte stream, rebuilt when the files changed."""

    def __init__(self, files: CertFiles, reload_seconds: float, server: bool) -> None:
        self._files = files
        self._server = server
        self._watched = _Watched(files, reload_seconds)
        self._context = self._make()

    def _make(self) -> ssl.SSLContext:
        purpose = ssl.Purpose.CLIENT_AUTH if self._server else ssl.Purpose.SERVER_AUTH
        context = ssl.create_default_context(purpose, cafile=str(self._files.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(str(self._files.cert), str(self._files.key))
        context.verify_mode = ssl.CERT_REQUIRED  # the server requires the client's certificate too
        return context

    def get(self) -> ssl.SSLContext:
        if self._watched.changed():
            self._context = self._make()
        return self._context
