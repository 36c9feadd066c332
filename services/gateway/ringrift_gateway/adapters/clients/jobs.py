"""The gateway's client of JobService: the leader's dispatch and reap rounds, the
facade's job calls, and what the loops submit and read back."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator

import grpc

from ringrift.common.v1 import common_pb2 as C
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift_contracts.jobs import UNFINISHED
from ringrift_contracts.limits import MAX_BATCH, MAX_PAGE_SIZE
from ringrift_contracts.paging import read_all
from ringrift_contracts.tables import JOB_STATES
from ringrift_runtime.errors import NotFound, WrongState
from ringrift_runtime.grpc.calls import call, stream
from ringrift_runtime.skipped import MalformedRecord

UNFINISHED_STATES = sorted(int(s) for s in UNFINISHED)


class JobsClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = jobs_pb2_grpc.JobServiceStub(channel)

    # -- the leader's rounds ---------------------------------------------------------
    async def dispatch(self, epoch: int) -> jobs_pb2.DispatchPendingJobsResponse:
        request = jobs_pb2.DispatchPendingJobsRequest(limit=MAX_BATCH, epoch=epoch)
        return await call(self._stub.DispatchPendingJobs(request))

    async def reap(self, epoch: int) -> jobs_pb2.ReapJobsResponse:
        return await call(self._stub.ReapJobs(jobs_pb2.ReapJobsRequest(epoch=epoch)))

    async def cleanup(self, epoch: int) -> jobs_pb2.CleanupOldCompletedJobsResponse:
        """Terminal jobs to history and old history deleted, by JobService's windows."""
        return await call(self._stub.CleanupOldCompletedJobs(jobs_pb2.CleanupOldCompletedJobsRequest(epoch=epoch)))

    # -- the facade --------------------------------------------------------------------
    async def submit(self, spec: C.JobSpec, key: str) -> jobs_pb2.SubmitJobResponse:
        return await call(self._stub.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec, idempotency_key=key)))

    async def submit_many(self, requests: list[tuple[C.JobSpec, str]]) -> jobs_pb2.SubmitJobsResponse:
        items = [jobs_pb2.SubmitJobRequest(spec=spec, idempotency_key=key) for spec, key in requests]
        return await call(self._stub.SubmitJobs(jobs_pb2.SubmitJobsRequest(jobs=items)))

    async def cancel(self, job_id: str, reason: str) -> C.Job:
        return (await call(self._stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id, reason=reason)))).job

    async def get(self, job_id: str) -> C.Job:
        return (await call(self._stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id)))).job

    async def list_jobs(self, request) -> jobs_pb2.ListJobsResponse:
        return await call(
            self._stub.ListJobs(
                jobs_pb2.ListJobsRequest(
                    states=request.states,
                    kind=request.kind,
                    config_key=request.config_key,
                    node_id=request.node_id,
                    page=request.page,
                )
            )
        )

    def logs(self, job_id: str, attempt: int, follow: bool) -> AsyncIterator[jobs_pb2.StreamJobLogsResponse]:
        request = jobs_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow)
        return stream(self._stub.StreamJobLogs(request))

    # -- what the loops need -------------------------------------------------------------
    async def unfinished(self, kind: str = "", node_id: str = "") -> list[C.Job]:
        """Every job not ended yet (pending or on a node), of one kind or node, or all."""

        async def fetch(token: str) -> tuple[list[C.Job], str]:
            page = C.PageRequest(page_size=MAX_PAGE_SIZE, page_token=token)
            request = jobs_pb2.ListJobsRequest(states=UNFINISHED_STATES, kind=kind, node_id=node_id, page=page)
            reply = await call(self._stub.ListJobs(request))
            return list(reply.jobs), reply.next_page_token

        return await read_all(fetch)

    async def active_jobs_by_node(self, kind: str = "") -> dict[str, int]:
        """Unfinished jobs (of one kind, or all) per node: where their attempt runs, or the
        node they are pinned to."""
        counts: dict[str, int] = {}
        for job in await self.unfinished(kind):
            node = job.attempts[-1].node_id if job.attempts else ""
            pinned = job.spec.requirements.required_node_ids
            node = node or (pinned[0] if pinned else "")
            counts[node] = counts.get(node, 0) + 1
        return counts

    async def active_job_ids(self, node_id: str, kind: str) -> list[str]:
        return [job.job_id for job in await self.unfinished(kind, node_id)]

    async def cancel_many(self, job_ids: list[str], reason: str) -> int:
        stopped = 0
        for job_id in job_ids:
            try:
                await self.cancel(job_id, reason)
                stopped += 1
            except (NotFound, WrongState):
                pass  # finished meanwhile
        return stopped

    async def submit_selfplay(self, orders: list[tuple[str, str, dict]]) -> int:
        """(node, config, params) each, pinned to its node as a bulk top-up."""
        requests = [
            jobs_pb2.SubmitJobRequest(
                spec=C.JobSpec(
                    kind="selfplay",
                    config_key=config,
                    params={k: str(v) for k, v in params.items()},
                    top_up=True,
                    requirements=C.ResourceRequirements(required_node_ids=[node], min_free_ram_mb=256),
                )
            )
            for node, config, params in orders
        ]
        if not requests:
            return 0
        reply = await call(self._stub.SubmitJobs(jobs_pb2.SubmitJobsRequest(jobs=requests)))
        return len(reply.jobs)

    async def submit_validation(self, model: C.Model, baselines: list[str], games: int, key: str) -> str:
        spec = C.JobSpec(
            kind="gauntlet",
            config_key=model.config_key,
            params={
                "candidate": model.path,
                "baselines": ",".join(baselines),
                "games": str(games),
                "seed": str(zlib.crc32(model.model_id.encode())),
            },
        )
        reply = await call(self._stub.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec, idempotency_key=key)))
        return reply.job.job_id

    async def job_outcome(self, job_id: str) -> tuple[str, dict]:
        """(STATE name, the result object, {} when there is none or it is not JSON)."""
        job = await self.get(job_id)
        try:
            result = json.loads(job.result_json or "{}")
        except ValueError:
            result = {}
        return JOB_STATES.name(job.state).upper(), result if isinstance(result, dict) else {}

    async def selfplay_games(self, job_id: str) -> tuple[str, int, float]:
        """(config, games, CPU seconds) a finished self-play job reported: the CPU time of
        the attempt that succeeded, 0 when its agent did not measure it."""
        job = await self.get(job_id)
        try:
            result = json.loads(job.result_json or "{}")
        except ValueError:
            raise MalformedRecord("its result is not JSON") from None
        games = result.get("games", 0) if isinstance(result, dict) else None
        if not isinstance(games, int) or isinstance(games, bool) or games < 0:
            raise MalformedRecord(f"its result's games is not a count of games: {str(games)[:40]!r}")
        cpu = next((a.cpu_seconds for a in job.attempts if a.attempt == job.attempt), 0.0)
        return job.spec.config_key, games, cpu
