"""NodeAgentService servicer. Mutating calls are validated, then fenced (an epoch below
the highest seen is refused with FAILED_PRECONDITION / STALE_EPOCH), then carried out.
Files are served from, and pulled into, the data directory only."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

import grpc

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2
from ringrift_agent.adapters.file_stream import (
    FileStreamServer,
    OpenedStream,
    StreamReader,
    StreamUnreachable,
    split_host,
)
from ringrift_agent.adapters.files import DEFAULT_CHUNK, MAX_CHUNK, DataDir, check_offset, read_ahead
from ringrift_agent.adapters.metrics import PullMetrics
from ringrift_agent.adapters.runner import JobRunner
from ringrift_agent.domain.attempts import Attempt
from ringrift_agent.domain.templates import JobTemplate, build_argv, resolve_params
from ringrift_contracts.check import Check
from ringrift_contracts.limits import MAX_ECHO
from ringrift_contracts.tables import FILE_KINDS, PARAM_TYPES, ROLES
from ringrift_runtime.errors import InvalidArgument, NotFound, WrongState
from ringrift_runtime.fencing import FileEpochFence
from ringrift_runtime.grpc.status import domain_error
from ringrift_runtime.grpc.times import to_timestamp
from ringrift_runtime.security.tls import ContextSource
from ringrift_runtime.tracing import current_traceparent
from ringrift_settings import JobSettings

MAX_RUN_REQUEST_BYTES = 64 * 1024
PROGRESS_SECONDS = 0.25
LOG_CHUNK = 64 * 1024
STREAM_CHUNK = 4 * 1024 * 1024
log = logging.getLogger("ringrift.agent")


def status_message(attempt: Attempt) -> agent_pb2.AgentJobStatus:
    return agent_pb2.AgentJobStatus(
        job_id=attempt.job_id,
        attempt=attempt.attempt,
        kind=attempt.kind,
        state=int(attempt.state),
        pid=attempt.pid if attempt.live else 0,
        exit_code=attempt.exit_code,
        error=attempt.error,
        result_json=attempt.result_json,
        started_at=to_timestamp(attempt.started_at),
        finished_at=to_timestamp(attempt.finished_at),
    )


def _job_ref(check: Check, job_id: str, attempt: int, attempt_required: bool) -> None:
    check.job_id("job_id", job_id)
    check.attempt("attempt", attempt, required=attempt_required)


class NodeAgentServicer(agent_pb2_grpc.NodeAgentServiceServicer):
    def __init__(
        self,
        fence: FileEpochFence,
        node_info,
        runner: JobRunner,
        catalog: dict[str, JobTemplate],
        jobs: JobSettings,
        gpu_count,
        data: DataDir,
        channels,
        streams: FileStreamServer | None = None,
        stream_tls: ContextSource | None = None,
        member_address: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self._stream_tls = stream_tls  # TLS of the byte streams this agent pulls over
        self._member_address = member_address  # where a node is registered (None: no check, tests only)
        self._fence = fence
        self._node_info = node_info
        self._runner = runner
        self._catalog = catalog
        self._jobs = jobs
        self._gpu_count = gpu_count  # callable: GPUs this node has
        self._data = data
        self._channels = channels  # ChannelFactory: channels to other agents for pulls
        self._streams = streams  # None: this agent neither serves nor uses byte streams
        self.pull_metrics: PullMetrics | None = None  # set once the host's registry exists

    async def GetNodeInfo(self, request, context):
        return agent_pb2.GetNodeInfoResponse(node=await self._node_info(), max_epoch_seen=self._fence.highest)

    async def ListJobTemplates(self, request, context):
        return agent_pb2.ListJobTemplatesResponse(templates=[self._template_message(t) for t in self._catalog.values()])

    @staticmethod
    def _template_message(template: JobTemplate) -> agent_pb2.JobTemplate:
        return agent_pb2.JobTemplate(
            kind=template.kind,
            description=template.description,
            timeout_seconds=template.timeout_seconds,
            role=ROLES.value(template.role) or common_pb2.NODE_ROLE_UNSPECIFIED,
            params=[
                agent_pb2.ParamSpec(
                    name=p.name,
                    type=PARAM_TYPES.values[p.type],
                    required=p.required,
                    default_value=p.default or "",
                    min=p.min or 0,
                    max=p.max or 0,
                    pattern=p.pattern or "",
                    description=p.description,
                    under=list(p.under) if p.type == "data_path" else [],
                    allow_leading_dash=p.allow_leading_dash,
                )
                for p in template.params.values()
            ],
        )

    def _decode_run(self, request) -> tuple[JobTemplate, dict[str, str]]:
        check = Check()
        check.check(
            "request", request.ByteSize() <= MAX_RUN_REQUEST_BYTES, f"must be at most {MAX_RUN_REQUEST_BYTES} bytes"
        )
        _job_ref(check, request.job_id, request.attempt, attempt_required=True)
        check.leader_epoch("epoch", request.epoch)
        template = self._catalog.get(request.spec.kind)
        values: dict[str, str] = {}
        if template is None:
            kinds = ", ".join(sorted(self._catalog))
            check.fail("spec.kind", f"unknown job kind {request.spec.kind!r}; this agent runs: {kinds}")
        else:
            values = resolve_params(template.kind, template.params, request.spec.params, check, "spec.params")
        check.config_key("spec.config_key", request.spec.config_key, required=False)
        gpus = self._gpu_count()
        for index, gpu in enumerate(request.gpu_indices):
            check.check(f"gpu_indices[{index}]", gpu < gpus, f"this node has {gpus} GPUs")
        check.raise_if_invalid()
        return template, values

    def _confine_paths(self, template: JobTemplate, values: dict[str, str]) -> None:
        """Each data_path value on its real path, its folders created first: a symlink in
        the data directory cannot lead a job's file out of the subtree it names."""
        for name, spec in template.params.items():
            value = values.get(name, "")
            if spec.type != "data_path" or not value:
                continue
            path, kind, field = self._runner.data_dir / value, value.split("/", 1)[0], f"spec.params[{name}]"
            self._data.confined(path, kind, field)  # before creating anything
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data.confined(path, kind, field)  # and on what now exists

    async def RunJob(self, request, context):
        template, values = self._decode_run(request)
        if any(spec.type == "data_path" and values.get(name) for name, spec in template.params.items()):
            await asyncio.to_thread(self._confine_paths, template, values)  # no thread hop without a path
        await self._fence.admit(request.epoch)
        work_dir = self._runner.jobs_dir / request.job_id / str(request.attempt)
        builtins = {
            "python": sys.executable,
            "job_id": request.job_id,
            "attempt": str(request.attempt),
            "work_dir": str(work_dir),
            "data_dir": str(self._runner.data_dir),
            "config_key": request.spec.config_key,
        }
        # A job may ask for less time than its template allows, never more.
        allowed = template.timeout_seconds or self._jobs.timeout_for(template.kind)
        timeout = min(request.spec.timeout_seconds, allowed) if request.spec.timeout_seconds else allowed
        attempt = Attempt(
            job_id=request.job_id,
            attempt=request.attempt,
            kind=template.kind,
            config_key=request.spec.config_key,
            work_dir=str(work_dir),
            argv=build_argv(template, values, builtins),
            timeout_seconds=timeout,
            epoch=request.epoch,
            traceparent=current_traceparent(),
            memory_mb=template.limits.memory_mb,
            cpu_limit_seconds=template.limits.cpu_seconds,
            open_files=template.limits.open_files,
        )
        attempt, started = await self._runner.run(attempt, list(request.gpu_indices))
        return agent_pb2.RunJobResponse(status=status_message(attempt), started=started)

    async def _attempt(self, job_id: str, attempt: int) -> Attempt:
        found = await self._runner.get(job_id, attempt)
        if found is None:
            raise NotFound(f"job {job_id} attempt {attempt or 'latest'} is unknown to this agent")
        return found

    async def GetJobStatus(self, request, context):
        check = Check()
        _job_ref(check, request.job_id, request.attempt, attempt_required=False)
        check.raise_if_invalid()
        return agent_pb2.GetJobStatusResponse(
            status=status_message(await self._attempt(request.job_id, request.attempt))
        )

    async def CancelJob(self, request, context):
        check = Check()
        _job_ref(check, request.job_id, request.attempt, attempt_required=False)
        check.leader_epoch("epoch", request.epoch)
        check.raise_if_invalid()
        await self._fence.admit(request.epoch)
        await self._attempt(request.job_id, request.attempt)
        attempt = await self._runner.cancel(request.job_id, request.attempt)
        return agent_pb2.CancelJobResponse(status=status_message(attempt))

    async def ListJobs(self, request, context):
        attempts = sorted(self._runner.attempts.values(), key=lambda a: a.started_at)
        if request.running_only:
            attempts = [a for a in attempts if a.live]
        return agent_pb2.ListJobsResponse(jobs=[status_message(a) for a in attempts])

    async def StreamJobLogs(self, request, context):
        check = Check()
        _job_ref(check, request.job_id, request.attempt, attempt_required=False)
        check.raise_if_invalid()
        attempt = await self._attempt(request.job_id, request.attempt)
        streams = {
            agent_pb2.OUTPUT_STREAM_STDOUT: ["stdout.log"],
            agent_pb2.OUTPUT_STREAM_STDERR: ["stderr.log"],
        }.get(request.stream, ["stdout.log", "stderr.log"])
        offsets = {name: 0 for name in streams}
        while True:
            for name in streams:
                chunk = await asyncio.to_thread(_read_chunk, Path(attempt.work_dir) / name, offsets[name])
                if chunk:
                    offsets[name] += len(chunk)
                    kind = agent_pb2.OUTPUT_STREAM_STDOUT if name == "stdout.log" else agent_pb2.OUTPUT_STREAM_STDERR
                    yield agent_pb2.StreamJobLogsResponse(stream=kind, data=chunk)
            if not request.follow or not attempt.live:
                if not any(
                    [await asyncio.to_thread(_read_chunk, Path(attempt.work_dir) / n, offsets[n]) for n in streams]
                ):
                    return
            else:
                await asyncio.sleep(0.2)

    async def GetManifest(self, request, context):
        check = Check()
        check.check("kind", not request.kind or FILE_KINDS.known(request.kind), "unknown file kind")
        check.config_key("config_key", request.config_key, required=False)
        check.raise_if_invalid()
        files = await self._data.manifest(FILE_KINDS.name(request.kind, ""), request.config_key)
        percent, free = await asyncio.to_thread(self._data.disk_usage)
        return agent_pb2.GetManifestResponse(
            files=[file_entry(f) for f in files], disk_percent=percent, disk_free_bytes=free
        )

    async def ReadFile(self, request, context):
        check = Check()
        check.check("chunk_size", request.chunk_size <= MAX_CHUNK, f"must be at most {MAX_CHUNK}")
        check.raise_if_invalid()
        path, size, sha256 = await self._data.describe(request.path)
        check_offset(request.offset, size)
        chunk_size = request.chunk_size or DEFAULT_CHUNK
        first = True
        async for offset, data in read_ahead(path, request.offset, size, chunk_size):
            yield agent_pb2.ReadFileResponse(
                offset=offset, data=data, size_bytes=size if first else 0, sha256=sha256 if first else ""
            )
            first = False
        if first:  # an empty file, or a read from its end: one message with the metadata
            yield agent_pb2.ReadFileResponse(offset=request.offset, size_bytes=size, sha256=sha256)

    async def OpenFileStream(self, request, context):
        self._data.resolve(request.path)
        if self._streams is None:
            _, size, sha256 = await self._data.describe(request.path)
            check_offset(request.offset, size)
            return agent_pb2.OpenFileStreamResponse(size_bytes=size, sha256=sha256, count=size - request.offset)
        opened = await self._streams.open(request.path, request.offset)
        return agent_pb2.OpenFileStreamResponse(
            port=opened.port,
            token=opened.token,
            size_bytes=opened.size,
            sha256=opened.sha256,
            count=opened.count,
            ttl_seconds=opened.ttl_seconds,
        )

    async def PullFile(self, request, context):
        check = Check()
        check.leader_epoch("epoch", request.epoch)
        check.check("source_address", bool(request.source_address), "is required (host:port of the source agent)")
        check.node_id("source_node_id", request.source_node_id)
        check.sha256("sha256", request.sha256)
        check.record_id("transfer_id", request.transfer_id)
        check.raise_if_invalid()
        self._data.resolve(request.path)
        await self._fence.admit(request.epoch)
        if self._member_address is not None:
            registered = await self._member_address(request.source_node_id)
            if registered != request.source_address:
                where = f"is registered at {registered[:MAX_ECHO]}" if registered else "is not a member"
                raise InvalidArgument.field(
                    "source_address",
                    f"a pull reads only from a current member's address; {request.source_node_id} {where}",
                )
        source = request.source_node_id or "the source"

        def unchanged(sha256: str) -> None:
            if sha256 and sha256 != request.sha256:
                raise WrongState(f"{request.path} on {source} has changed")

        via, received = "", 0  # the byte path taken, for the metrics

        async def chunks(offset: int):
            nonlocal via, received
            channel = self._channels.agent(request.source_address, request.source_node_id)
            try:
                stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
                reader = await self._stream_reader(stub, request, offset, unchanged)
                if reader is not None:
                    via = "stream"
                    async with aclosing(reader.chunks(offset)) as streamed:
                        async for chunk in streamed:
                            received += len(chunk[1])
                            yield chunk
                    return
                via = "grpc"
                async for chunk in stub.ReadFile(agent_pb2.ReadFileRequest(path=request.path, offset=offset)):
                    unchanged(chunk.sha256)
                    if chunk.data:
                        received += len(chunk.data)
                        yield chunk.offset, chunk.data
            except grpc.aio.AioRpcError as exc:
                raise domain_error(exc) from None  # the source's verdict, in the taxonomy
            finally:
                await channel.close()

        reported, outcome = 0.0, "failed"
        try:
            async for done, resumed, completed in self._data.pull(
                request.path, request.sha256, request.size_bytes, chunks, request.max_bytes_per_second
            ):
                now = time.monotonic()
                if completed:
                    outcome = "completed"
                if completed or now - reported >= PROGRESS_SECONDS:  # progress a few times a second, not per chunk
                    reported = now
                    yield agent_pb2.PullFileResponse(
                        transfer_id=request.transfer_id,
                        bytes_done=done,
                        bytes_total=request.size_bytes,
                        completed=completed,
                        resumed=resumed,
                    )
        finally:
            if self.pull_metrics is not None:
                self.pull_metrics.observe(via or "none", outcome, received)  # none: already held, nothing read

    async def _stream_reader(self, stub, request, offset: int, unchanged) -> StreamReader | None:
        """A connected byte stream from the source, or None to read over gRPC: this agent
        does not use streams, the source does not offer one (port 0, or an agent from
        before OpenFileStream), or its port cannot be reached from here."""
        if self._streams is None:
            return None
        try:
            answer = await stub.OpenFileStream(agent_pb2.OpenFileStreamRequest(path=request.path, offset=offset))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise
        unchanged(answer.sha256)
        if not answer.port:
            return None
        opened = OpenedStream(
            answer.port, answer.token, answer.size_bytes, answer.sha256, answer.count, answer.ttl_seconds
        )
        rate = request.max_bytes_per_second
        chunk = STREAM_CHUNK if not rate else max(64 * 1024, min(STREAM_CHUNK, rate // 4))  # smooth under a limit
        reader = StreamReader(
            split_host(request.source_address),
            opened,
            chunk,
            self._stream_tls,
            self._channels.security.agent_name(request.source_node_id) if self._stream_tls is not None else "",
        )
        try:
            await reader.connect()
        except StreamUnreachable as exc:
            log.warning("pulling %s over gRPC: the file stream port is unreachable (%s)", request.path, exc)
            return None
        return reader


def file_entry(info) -> common_pb2.FileEntry:
    return common_pb2.FileEntry(
        path=info.path,
        kind=FILE_KINDS.value(info.kind) or common_pb2.FILE_KIND_OTHER,
        config_key=info.config_key,
        size_bytes=info.size,
        mtime=to_timestamp(info.mtime),
        sha256=info.sha256,
        game_count=info.game_count,
    )


def _read_chunk(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(LOG_CHUNK)
    except FileNotFoundError:
        return b""
