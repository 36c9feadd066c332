"""Client (blocking) and AsyncClient (asyncio) of a RingRift gateway: every RPC as a typed
method (methods.py), helpers for what integrations do most (submit_many, wait, watch,
logs), and failures as typed exceptions (errors.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc

from ringrift.common.v1 import common_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from ringrift_client.config import ConfigError, Context, load_context
from ringrift_client.errors import DeadlineExceeded, RingriftError, error_from
from ringrift_client.methods import AsyncMethods, Methods

DEFAULT_TIMEOUT = 30.0
BATCH = 1000  # SubmitJobs takes at most this many jobs a call
TERMINAL = frozenset({common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED})
# A job whose attempt was lost or failed may be retried: only these events end it for good.
ENDING_EVENTS = [
    common_pb2.EVENT_TYPE_JOB_SUCCEEDED,
    common_pb2.EVENT_TYPE_JOB_FAILED,
    common_pb2.EVENT_TYPE_JOB_CANCELLED,
    common_pb2.EVENT_TYPE_JOB_LOST,
]

C = TypeVar("C", bound="_Connection")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc}") from None


def _credentials(context: Context) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    """Channel credentials and options for a context (None: plaintext)."""
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    if context.insecure:
        return None, options
    assert context.ca is not None
    if context.token:
        credentials = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(_read(context.ca, "CA certificate")),
            grpc.access_token_call_credentials(context.token),
        )
    else:
        assert context.cert is not None and context.key is not None
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(context.ca, "CA certificate"),
            private_key=_read(context.key, "private key"),
            certificate_chain=_read(context.cert, "certificate"),
        )
    if context.server_name:
        options.append(("grpc.ssl_target_name_override", context.server_name))
    return credentials, options


def _context(
    address: str | None,
    ca: str | Path | None,
    cert: str | Path | None,
    key: str | Path | None,
    token: str | None,
    server_name: str | None,
    insecure: bool,
    context: str | None,
    config: str | Path | None,
) -> Context:
    """The named context of a config file, with any explicit argument in place of its
    value; without a context or config file, the explicit arguments alone (an address
    given), else the default config file's current context."""
    if context is not None or config is not None or address is None:
        base = load_context(context or "", config)
    else:
        base = Context(address)

    def path(value: str | Path | None, default: Path | None) -> Path | None:
        return Path(value).expanduser() if value else default

    return Context(
        address=address or base.address,
        ca=path(ca, base.ca),
        cert=path(cert, base.cert),
        key=path(key, base.key),
        token=token if token is not None else base.token,
        server_name=server_name if server_name is not None else base.server_name,
        insecure=insecure or base.insecure,
    ).check()


class _Connection:
    """What both clients share: the context and default timeout."""

    def __init__(self, context: Context, timeout: float) -> None:
        self.context = context
        self.timeout = timeout

    @classmethod
    def connect(
        cls: type[C],
        address: str | None = None,
        *,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        token: str | None = None,
        server_name: str | None = None,
        insecure: bool = False,
        context: str | None = None,
        config: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> C:
        """A client of the gateway at ``address`` with a client certificate (``ca``,
        ``cert``, ``key``) or a bearer token (``ca``, ``token``; the gateway's token port),
        or of the context ``context`` in the config file ``config`` (default
        ~/.config/ringrift/config.toml; ``ringrift up`` writes ``<dir>/client.toml``).
        ``timeout``: seconds for each unary call. The channel connects lazily."""
        resolved = _context(address, ca, cert, key, token, server_name, insecure, context, config)
        return cls(resolved, timeout)


class Client(_Connection, Methods):
    """A blocking client of a RingRift gateway; use it as a context manager or close() it."""

    def __init__(self, context: Context, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(context, timeout)
        credentials, options = _credentials(context)
        if credentials is None:
            self._channel = grpc.insecure_channel(context.address, options=options)
        else:
            self._channel = grpc.secure_channel(context.address, credentials, options=options)
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=timeout if timeout is not None else self.timeout)
        except grpc.RpcError as exc:
            raise error_from(exc) from None

    def _stream(self, method: str, request: Any, timeout: float | None) -> Iterator[Any]:
        call = getattr(self._stub, method)(request, timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise error_from(exc) from None
        finally:
            call.cancel()  # a caller that stopped reading ends the stream on the server too

    # -- helpers ----------------------------------------------------------------------

    def submit_many(self, specs: Iterable[common_pb2.JobSpec], idempotency_prefix: str = "") -> list[common_pb2.Job]:
        """Submit every spec, a thousand a call (each call all or nothing); with a prefix,
        job n gets the idempotency key ``<prefix>-<n>``, so a retry submits nothing twice."""
        return [job for request in _batches(specs, idempotency_prefix) for job in self.submit_jobs(request).jobs]

    def watch(
        self,
        from_sequence: int = 0,
        types: Iterable[common_pb2.EventType.ValueType] = (),
        config_key: str = "",
        subject: str = "",
        timeout: float | None = None,
    ) -> Iterator[common_pb2.Event]:
        """The cluster's events after ``from_sequence`` (0: from the oldest kept), then new
        ones as they happen, optionally filtered; ``timeout`` ends the stream."""
        request = _watch_request(from_sequence, types, config_key, subject)
        for reply in self.watch_events(request, timeout=timeout):
            yield reply.event

    def wait(self, job_id: str, timeout: float | None = None) -> common_pb2.Job:
        """Block until the job has ended (succeeded, failed for good or cancelled) and
        return it; DeadlineExceeded after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        after = 0  # events up to this sequence have been looked at
        while True:
            job = self.get_job(job_id=job_id).job
            if job.state in TERMINAL:
                return job
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"job {job_id} has not ended within {timeout} s")
            try:
                for event in self.watch(after, ENDING_EVENTS, subject=job_id, timeout=remaining):
                    after = event.sequence
                    break  # an ending event: read the job again (a lost attempt may be retried)
            except DeadlineExceeded:
                pass

    def logs(self, job_id: str, follow: bool = False, attempt: int = 0, stderr: bool = True) -> Iterator[bytes]:
        """The job's output as it arrives (``follow``: until the job ends)."""
        request = orchestrator_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow)
        for chunk in self.stream_job_logs(request):
            if stderr or not chunk.stderr:
                yield chunk.data


class AsyncClient(_Connection, AsyncMethods):
    """An asyncio client of a RingRift gateway; ``async with`` it or ``await close()``.
    Create it inside the running event loop."""

    def __init__(self, context: Context, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(context, timeout)
        credentials, options = _credentials(context)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(context.address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(context.address, credentials, options=options)
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        try:
            return await getattr(self._stub, method)(request, timeout=timeout if timeout is not None else self.timeout)
        except grpc.RpcError as exc:
            raise error_from(exc) from None

    async def _stream(self, method: str, request: Any, timeout: float | None) -> AsyncIterator[Any]:
        call = getattr(self._stub, method)(request, timeout=timeout)
        try:
            async for reply in call:
                yield reply
        except grpc.RpcError as exc:
            raise error_from(exc) from None
        finally:
            call.cancel()

    # -- helpers ----------------------------------------------------------------------

    async def submit_many(
        self, specs: Iterable[common_pb2.JobSpec], idempotency_prefix: str = ""
    ) -> list[common_pb2.Job]:
        """Submit every spec, a thousand a call (see Client.submit_many)."""
        jobs: list[common_pb2.Job] = []
        for request in _batches(specs, idempotency_prefix):
            jobs.extend((await self.submit_jobs(request)).jobs)
        return jobs

    async def watch(
        self,
        from_sequence: int = 0,
        types: Iterable[common_pb2.EventType.ValueType] = (),
        config_key: str = "",
        subject: str = "",
        timeout: float | None = None,
    ) -> AsyncGenerator[common_pb2.Event, None]:
        """The cluster's events (see Client.watch)."""
        request = _watch_request(from_sequence, types, config_key, subject)
        async for reply in self.watch_events(request, timeout=timeout):
            yield reply.event

    async def wait(self, job_id: str, timeout: float | None = None) -> common_pb2.Job:
        """Until the job has ended (see Client.wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        after = 0
        while True:
            job = (await self.get_job(job_id=job_id)).job
            if job.state in TERMINAL:
                return job
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"job {job_id} has not ended within {timeout} s")
            events = self.watch(after, ENDING_EVENTS, subject=job_id, timeout=remaining)
            try:
                async for event in events:
                    after = event.sequence
                    break
            except DeadlineExceeded:
                pass
            finally:
                await events.aclose()

    async def logs(
        self, job_id: str, follow: bool = False, attempt: int = 0, stderr: bool = True
    ) -> AsyncIterator[bytes]:
        """The job's output as it arrives (see Client.logs)."""
        request = orchestrator_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow)
        async for chunk in self.stream_job_logs(request):
            if stderr or not chunk.stderr:
                yield chunk.data


def _batches(specs: Iterable[common_pb2.JobSpec], prefix: str) -> Iterator[orchestrator_pb2.SubmitJobsRequest]:
    request = orchestrator_pb2.SubmitJobsRequest()
    for number, spec in enumerate(specs, start=1):
        request.jobs.add(spec=spec, idempotency_key=f"{prefix}-{number}" if prefix else "")
        if len(request.jobs) == BATCH:
            yield request
            request = orchestrator_pb2.SubmitJobsRequest()
    if request.jobs:
        yield request


def _watch_request(
    from_sequence: int, types: Iterable[common_pb2.EventType.ValueType], config_key: str, subject: str
) -> orchestrator_pb2.WatchEventsRequest:
    return orchestrator_pb2.WatchEventsRequest(
        from_sequence=from_sequence,
        filter=common_pb2.EventFilter(types=list(types), config_key=config_key, subject=subject),
    )


__all__ = ["AsyncClient", "Client", "RingriftError"]
