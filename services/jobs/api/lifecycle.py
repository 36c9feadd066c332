"""The job lifecycle at the protocol level: submission, agent reports, dispatch, reaping,
cancellation. Decisions come from ringrift_jobs.domain.policy; legality of every state
change is enforced by StateService's job state table."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import datetime, timezone

import grpc

from ringrift.agent.v1 import agent_pb2
from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2
from ringrift_jobs.adapters.clients import Agents, JobStore, Placement
from ringrift_jobs.domain.policy import after_failure, assign, cooling_nodes, overdue, unverified
from ringrift_runtime.errors import InvalidArgument, NotFound, RingriftError, StaleEpoch
from ringrift_runtime.grpc.calls import stream
from ringrift_runtime.grpc.status import domain_error, field_violations
from ringrift_runtime.grpc.times import from_timestamp, to_timestamp
from ringrift_runtime.jobparams import ParamSpec, resolve_params
from ringrift_runtime.settings import JobSettings
from ringrift_runtime.validation import Validator

log = logging.getLogger("ringrift.jobs")
J = common_pb2
ACTIVE = [J.JOB_STATE_SCHEDULED, J.JOB_STATE_STARTING, J.JOB_STATE_RUNNING]
TERMINAL = (J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED)
KIND_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_PARAMS, MAX_TIMEOUT = 64, 7 * 86400
PARAM_TYPE_NAMES = {v: k for k, v in {"string": 1, "int": 2, "float": 3, "bool": 4, "config_key": 5, "data_path": 6}.items()}
RUN_CONCURRENCY = 64


class Batcher:
    """Collects items submitted concurrently and hands them to ``flush`` as one list; each
    submitter gets its own result. A batch goes as soon as the previous one returned,
    so batches grow with load and cost nothing when idle."""

    def __init__(self, flush, max_size: int) -> None:
        self._flush = flush
        self._max = max_size
        self._queue: list[tuple[object, asyncio.Future]] = []
        self._running = False

    async def submit(self, item):
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if not self._running:
            self._running = True
            asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max:]
                try:
                    results = await self._flush([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every submitter of the batch gets it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running = False


class JobLifecycle:
    def __init__(self, store: JobStore, placement: Placement, agents: Agents, members, settings: JobSettings) -> None:
        self.store = store
        self._placement = placement
        self._agents = agents
        self._members = members  # PrefixCache[NodeInfo]
        self._settings = settings
        self._templates: dict[str, dict[str, ParamSpec]] = {}
        self._last_top_up: dict[str, float] = {}  # node -> monotonic time of its last top-up round
        # Concurrent agent reports share one TransitionJobs call (one transaction).
        self._reports = Batcher(lambda transitions: self.store.transition(transitions, with_jobs=False), max_size=500)

    # -- validation ---------------------------------------------------------------
    async def _param_specs(self, kind: str) -> dict[str, ParamSpec] | None:
        """The parameter schema of ``kind`` as an agent that runs it publishes it."""
        if kind in self._templates:
            return self._templates[kind]
        for node in self._members.values().values():
            if kind in node.job_kinds:
                try:
                    templates = await self._agents.templates(node.address)
                except RingriftError as exc:  # that agent cannot tell: ask another
                    log.warning("templates of %s unavailable: %s", node.node_id, exc)
                    continue
                for template in templates:
                    self._templates[template.kind] = {
                        p.name: ParamSpec(p.name, PARAM_TYPE_NAMES.get(p.type, "string"), p.required,
                                          p.default_value or None, p.min if p.type in (2, 3) else None,
                                          p.max if p.type in (2, 3) else None, p.pattern or None)
                        for p in template.params
                    }
                return self._templates.get(kind)
        return None

    async def check_spec(self, check: Validator, field: str, spec: common_pb2.JobSpec) -> None:
        kind = spec.kind
        if not kind or len(kind) > 64 or not set(kind) <= KIND_CHARS or not kind[0].isalpha():
            check.fail(f"{field}.kind", "is required: a job kind such as 'selfplay' (lower-case letters, digits, '-', '_')")
            return
        check.config_key(f"{field}.config_key", spec.config_key, required=False)
        check.check(f"{field}.params", len(spec.params) <= MAX_PARAMS, f"at most {MAX_PARAMS} parameters")
        check.check(f"{field}.timeout_seconds", spec.timeout_seconds <= MAX_TIMEOUT, f"at most {MAX_TIMEOUT}")
        check.check(f"{field}.max_attempts", spec.max_attempts <= 20, "at most 20")
        kinds = sorted({k for node in self._members.values().values() for k in node.job_kinds})
        if kinds and kind not in kinds:
            check.fail(f"{field}.kind", f"unknown job kind {kind!r}: no node runs it (kinds: {', '.join(kinds)})")
            return
        specs = await self._param_specs(kind)
        if specs is not None:
            resolve_params(kind, specs, spec.params, check, f"{field}.params")

    # -- submission ---------------------------------------------------------------
    async def submit(self, requests: list[tuple[common_pb2.JobSpec, str]], epoch: int = 0) -> list[tuple[common_pb2.Job, bool]]:
        check = Validator()
        for index, (spec, key) in enumerate(requests):
            field = "spec" if len(requests) == 1 else f"jobs[{index}].spec"
            await self.check_spec(check, field, spec)
            check.max_length(field.replace("spec", "idempotency_key"), key, 128)
        check.raise_if_invalid()
        return await self.store.create([state_pb2.NewJob(spec=s, idempotency_key=k) for s, k in requests], epoch)

    # -- agent reports --------------------------------------------------------------
    async def report(self, event) -> bool:
        transition = state_pb2.JobTransition(
            job_id=event.job_id, attempt=event.attempt, to_state=event.state, node_id=event.node_id,
            exit_code=event.exit_code, error=event.error, result_json=event.result_json,
        )
        if event.state in (J.JOB_STATE_FAILED, J.JOB_STATE_LOST):
            # Only a failure needs the job (its attempt limit) to decide on a retry.
            self._decide_retry(transition, await self.store.get(event.job_id), retriable=True)
        elif event.state not in (J.JOB_STATE_RUNNING, J.JOB_STATE_SUCCEEDED, J.JOB_STATE_CANCELLED):
            raise InvalidArgument.field("state", "must be RUNNING, SUCCEEDED, FAILED, CANCELLED or LOST")
        return (await self._reports.submit(transition)).applied

    def _decide_retry(self, transition: state_pb2.JobTransition, job: common_pb2.Job, retriable: bool) -> None:
        max_attempts = job.spec.max_attempts or self._settings.max_attempts
        decision = after_failure(transition.attempt, max_attempts, retriable, datetime.now(timezone.utc), self._settings)
        transition.retry, transition.permanent = decision.retry, decision.permanent
        if decision.not_before is not None:
            transition.not_before.CopyFrom(to_timestamp(decision.not_before))

    # -- dispatch -------------------------------------------------------------------
    def _free_slots(self, active: list[common_pb2.Job]) -> tuple[dict[str, int], dict[str, int]]:
        used: dict[str, int] = defaultdict(int)
        gpu_used: dict[str, int] = defaultdict(int)
        for job in active:
            used[job.node_id] += 1
            gpu_used[job.node_id] += job.spec.requirements.needs_gpu
        slots = {name: max(0, (node.job_slots or 1) - used[name]) for name, node in self._members.values().items()}
        return slots, gpu_used

    async def dispatch(self, limit: int, epoch: int, only: set[str] | None = None) -> tuple[int, int]:
        pending = (await self.store.list(state_pb2.JobFilter(dispatchable=True), page_size=max(1, min(limit, 1000)))).jobs
        if only is not None:
            pending = [job for job in pending if job.job_id in only]
        if not pending:
            return 0, 0
        free, gpu_used = self._free_slots(await self.store.all(state_pb2.JobFilter(states=ACTIVE)))
        groups: dict[bytes, list[common_pb2.Job]] = defaultdict(list)
        for job in pending:
            groups[job.spec.SerializeToString(deterministic=True)].append(job)
        chosen: list[tuple[common_pb2.Job, str]] = []
        cooling = cooling_nodes(self._last_top_up, time.monotonic(), self._settings.dispatch_cooldown_seconds)
        topped_up: set[str] = set()
        for jobs in groups.values():
            skip = {name for name, count in free.items() if count <= 0}
            if jobs[0].spec.top_up:
                skip |= cooling
            ranked = await self._placement.rank(jobs[0].spec, min(1000, max(1, len(free))), sorted(skip))
            order = [score.node_id for score in ranked if score.node_id not in skip]
            for job in jobs:
                node_id = assign(order, free)
                if node_id is not None:
                    chosen.append((job, node_id))
                    if job.spec.top_up:
                        topped_up.add(node_id)
        for node_id in topped_up:
            self._last_top_up[node_id] = time.monotonic()
        scheduled = await self.store.transition(
            [state_pb2.JobTransition(job_id=j.job_id, attempt=j.attempt, from_state=J.JOB_STATE_PENDING,
                                     to_state=J.JOB_STATE_SCHEDULED, node_id=n) for j, n in chosen],
            epoch,
            with_jobs=False,
        )
        applied = {o.job_id for o in scheduled if o.applied}
        semaphore = asyncio.Semaphore(RUN_CONCURRENCY)
        results = await asyncio.gather(
            *(self._start(job, node_id, epoch, gpu_used, semaphore) for job, node_id in chosen if job.job_id in applied)
        )
        if any(isinstance(r, StaleEpoch) for r in results):
            raise next(r for r in results if isinstance(r, StaleEpoch))
        await self.store.transition([t for t in results if isinstance(t, state_pb2.JobTransition)], epoch, with_jobs=False)
        return len(applied), len(pending) - len(applied)

    async def _start(self, job, node_id: str, epoch: int, gpu_used: dict[str, int], semaphore):
        node = self._members.values().get(node_id)
        if node is None:
            return None  # left meanwhile: the reaper handles it
        gpus = []
        gpu_count = node.detected.gpu.count or node.declared.gpu.count
        if job.spec.requirements.needs_gpu and gpu_count:
            gpus = [gpu_used[node_id] % gpu_count]
            gpu_used[node_id] += 1
        request = agent_pb2.RunJobRequest(job_id=job.job_id, attempt=job.attempt, spec=job.spec, epoch=epoch, gpu_indices=gpus)
        async with semaphore:
            try:
                await self._agents.run(node.address, request)
            except grpc.aio.AioRpcError as exc:
                error = domain_error(exc)
                if isinstance(error, StaleEpoch):
                    return error
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    detail = "; ".join(f"{f}: {d}" for f, d in field_violations(exc).items()) or exc.details()
                    return state_pb2.JobTransition(
                        job_id=job.job_id, attempt=job.attempt, from_state=J.JOB_STATE_SCHEDULED,
                        to_state=J.JOB_STATE_FAILED, error=f"refused by {node_id}: {detail}", permanent=True,
                    )
                log.warning("RunJob %s on %s failed (%s); spawn verification will decide", job.job_id, node_id, exc.code().name)
                return None
        return state_pb2.JobTransition(
            job_id=job.job_id, attempt=job.attempt, from_state=J.JOB_STATE_SCHEDULED, to_state=J.JOB_STATE_STARTING,
        )

    # -- reaping --------------------------------------------------------------------
    async def reap(self, epoch: int) -> tuple[int, int, int]:
        now = datetime.now(timezone.utc)
        members = self._members.values()
        per_node: dict[str, int] = defaultdict(int)
        transitions, cancels = [], []
        counts = {"lost": 0, "timed_out": 0, "unverified": 0}
        for job in await self.store.all(state_pb2.JobFilter(states=ACTIVE)):
            if per_node[job.node_id] >= self._settings.max_reaps_per_node:
                continue
            attempt = job.attempts[-1] if job.attempts else None
            transition = state_pb2.JobTransition(job_id=job.job_id, attempt=job.attempt, from_state=job.state)
            if job.node_id not in members:
                transition.to_state, transition.error = J.JOB_STATE_LOST, f"node {job.node_id} left the cluster"
                self._decide_retry(transition, job, retriable=True)
                counts["lost"] += 1
            elif job.state != J.JOB_STATE_RUNNING and unverified(from_timestamp(job.updated_at), now, self._settings):
                transition.to_state = J.JOB_STATE_FAILED
                transition.error = f"not confirmed running on {job.node_id} within {self._settings.spawn_verification_seconds:.0f}s"
                self._decide_retry(transition, job, retriable=True)
                cancels.append((members[job.node_id].address, job))
                counts["unverified"] += 1
            elif job.state == J.JOB_STATE_RUNNING and attempt is not None and overdue(
                from_timestamp(attempt.started_at), job.spec.timeout_seconds or self._settings.timeout_for(job.spec.kind), now
            ):
                transition.to_state, transition.error, transition.permanent = J.JOB_STATE_FAILED, "timed out", True
                cancels.append((members[job.node_id].address, job))
                counts["timed_out"] += 1
            else:
                continue
            per_node[job.node_id] += 1
            transitions.append(transition)
        for address, job in cancels:
            try:
                await self._agents.cancel(address, job.job_id, job.attempt, epoch)
            except grpc.aio.AioRpcError as exc:
                if isinstance(domain_error(exc), StaleEpoch):
                    raise domain_error(exc) from None
        await self.store.transition(transitions, epoch, with_jobs=False)
        return counts["lost"], counts["timed_out"], counts["unverified"]

    # -- cancellation ---------------------------------------------------------------------
    async def cancel(self, job_id: str, reason: str) -> common_pb2.Job:
        job = await self.store.get(job_id)
        if job.state in TERMINAL:
            return job
        node = self._members.values().get(job.node_id)
        (outcome,) = await self.store.transition([state_pb2.JobTransition(
            job_id=job.job_id, attempt=job.attempt, from_state=job.state, to_state=J.JOB_STATE_CANCELLED,
            error=reason or "cancelled",
        )])
        if outcome.applied and node is not None and job.state in ACTIVE:
            epoch = await self.store.epoch()
            if epoch:
                try:
                    await self._agents.cancel(node.address, job.job_id, job.attempt, epoch)
                except grpc.aio.AioRpcError as exc:
                    log.warning("cancel of %s on %s failed: %s", job_id, job.node_id, exc.code().name)
        return outcome.job if outcome.job.job_id else await self.store.get(job_id)

    @property
    def retention_seconds(self) -> float:
        return self._settings.retention_seconds

    def members(self) -> dict[str, common_pb2.NodeInfo]:
        return self._members.values()

    async def agents_logs(self, node_id: str, job_id: str, attempt: int, follow: bool):
        node = self._members.values().get(node_id)
        if node is None:
            raise NotFound(f"node {node_id} is not a member any more; its logs are gone with it")
        async for chunk in stream(self._agents.logs(node.address, job_id, attempt, follow)):
            yield chunk
