"""In-memory fakes of JobService's ports, for unit tests of the job lifecycle. The job
store decides transitions with StateService's own table (``ringrift_state.domain.jobs``)
and passes the same contract tests as the real store (tests/integration/jobs)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ringrift_contracts.jobparams import ParamSpec
from ringrift_contracts.jobs import ON_NODE, JobState
from ringrift_jobs.domain.model import AttemptView, Job, LogChunk, Node, Outcome, Spec, Transition
from ringrift_runtime.errors import NotFound, StaleEpoch, WrongState
from ringrift_state.domain import jobs as table


@dataclass
class _Record:
    job: Job
    not_before: datetime | None = None
    priority: int = 0
    attempts: dict[int, AttemptView] = field(default_factory=dict)


class FakeJobStore:
    def __init__(self, now=lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._records: dict[str, _Record] = {}
        self._keys: dict[str, str] = {}
        self._ids = itertools.count(1)
        self.highest_epoch = 0
        self.transitions: list[Transition] = []
        self._events: list[tuple[int, str]] = []  # (sequence, job id) of each event appended
        self._appended = asyncio.Event()  # set (and replaced) at each event appended

    def _event(self, job_id: str) -> None:
        """StateService appends an event for each job created and each transition applied."""
        self._events.append((len(self._events) + 1, job_id))
        self._appended.set()
        self._appended = asyncio.Event()

    def _fence(self, epoch: int) -> None:
        """StateService's rule: a write below the registered epoch is refused (0: not on
        behalf of a leader); only AdvanceEpoch raises it."""
        if epoch and epoch < self.highest_epoch:
            raise StaleEpoch(received=epoch, highest=self.highest_epoch)
        if epoch > self.highest_epoch:
            raise WrongState(f"epoch {epoch} was never issued (the highest is {self.highest_epoch})")

    def advance_epoch(self, epoch: int) -> None:
        self.highest_epoch = max(self.highest_epoch, epoch)

    def _view(self, record: _Record) -> Job:
        return replace(record.job, attempts=tuple(record.attempts[n] for n in sorted(record.attempts)))

    async def create(self, jobs: list[tuple[Spec, str]], epoch: int = 0) -> list[tuple[Job, bool]]:
        self._fence(epoch)
        created = []
        for spec, key in jobs:
            if key and key in self._keys:
                created.append((self._view(self._records[self._keys[key]]), False))
                continue
            job_id = f"J{next(self._ids):08d}"
            job = Job(job_id, 1, JobState.PENDING, "", spec, updated_at=self._now())
            self._records[job_id] = _Record(job, attempts={1: AttemptView(1, "", None)})
            if key:
                self._keys[key] = job_id
            self._event(job_id)
            created.append((self._view(self._records[job_id]), True))
        return created

    async def get(self, job_id: str) -> Job:
        record = self._records.get(job_id)
        if record is None:
            raise NotFound(f"job {job_id} does not exist")
        return self._view(record)

    async def dispatchable(self, limit: int) -> list[Job]:
        now = self._now()
        ready = [
            r
            for r in self._records.values()
            if r.job.state == JobState.PENDING and (r.not_before is None or r.not_before <= now)
        ]
        ready.sort(key=lambda r: (-r.priority, r.job.job_id))
        return [self._view(r) for r in ready[:limit]]

    async def on_nodes(self) -> list[Job]:
        return [self._view(r) for r in self._records.values() if r.job.state in ON_NODE]

    async def node_counts(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, tuple[int, int]] = {}
        for record in self._records.values():
            if record.job.state in ON_NODE:
                jobs, gpu = counts.get(record.job.node_id, (0, 0))
                counts[record.job.node_id] = (jobs + 1, gpu + record.job.spec.needs_gpu)
        return counts

    async def transition(self, transitions: list[Transition], epoch: int = 0, with_jobs: bool = False) -> list[Outcome]:
        self._fence(epoch)
        outcomes = []
        for t in transitions:
            self.transitions.append(t)
            record = self._records.get(t.job_id)
            current = None
            if record is not None:
                j = record.job
                current = table.CurrentJob(j.job_id, j.state, j.attempt, j.node_id, j.spec.kind, j.spec.config_key)
            decision = table.decide(
                current,
                table.Transition(
                    job_id=t.job_id,
                    attempt=t.attempt,
                    to_state=t.to_state,
                    from_state=t.from_state,
                    node_id=t.node_id,
                    exit_code=t.exit_code,
                    error=t.error,
                    result_json=t.result_json,
                    retry=t.retry,
                    not_before=t.not_before,
                    permanent=t.permanent,
                    reported_by=t.reported_by,
                    cpu_seconds=t.cpu_seconds,
                ),
            )
            if record is not None and decision.attempt is not None:
                write = decision.attempt
                before = record.attempts.get(write.attempt, AttemptView(write.attempt, "", None))
                started = self._now() if write.started and before.started_at is None else before.started_at
                record.attempts[write.attempt] = AttemptView(write.attempt, write.node_id or before.node_id, started)
            if not decision.applied or record is None:
                outcomes.append(Outcome(t.job_id, False, decision.reason))
                continue
            changes = decision.job_changes
            record.job = replace(
                record.job,
                state=JobState(changes["state"]),
                node_id=str(changes.get("node_id", record.job.node_id)),
                attempt=int(changes.get("attempt", record.job.attempt)),
                updated_at=self._now(),
            )
            if decision.next_attempt:
                record.attempts[decision.next_attempt] = AttemptView(decision.next_attempt, "", None)
                record.not_before = changes.get("not_before")  # type: ignore[assignment]
            self._event(t.job_id)
            outcomes.append(Outcome(t.job_id, True, "", self._view(record) if with_jobs else None))
        return outcomes

    async def epoch(self) -> int:
        return self.highest_epoch

    async def event_head(self) -> int:
        return len(self._events)

    async def job_events(self, job_id: str, after: int) -> AsyncGenerator[int, None]:
        last = after
        while True:
            for sequence, subject in self._events[last:]:
                if subject == job_id:
                    yield sequence
                last = sequence
            if len(self._events) <= last:
                await self._appended.wait()


class FakePlacement:
    """Ranks every member that runs the kind, in node-id order (or ``order`` when set)."""

    def __init__(self, members: FakeMembers, order: list[str] | None = None) -> None:
        self._members = members
        self.order = order
        self.calls: list[tuple[str, int, list[str]]] = []

    async def rank(self, spec: Spec, top_k: int, exclude: list[str], only: list[str] | None = None) -> list[str]:
        self.calls.append((spec.kind, top_k, exclude, only))
        names = self.order or sorted(self._members.nodes())
        members = self._members.nodes()
        excluded, named = set(exclude), None if only is None else set(only)
        usable = [n for n in names if n not in excluded and (named is None or n in named) and n in members]
        return [n for n in usable if spec.kind in members[n].job_kinds][:top_k]


class FakeAgents:
    def __init__(self, templates: dict[str, dict[str, ParamSpec]] | None = None) -> None:
        self._templates = templates or {}
        self.runs: list[tuple[str, str, int, int, list[int]]] = []
        self.cancels: list[tuple[str, str, int, int]] = []
        self.fail_with: dict[str, Exception] = {}  # node -> error RunJob raises there

    async def run(self, node: Node, job: Job, epoch: int, gpu_indices: list[int]) -> None:
        if node.node_id in self.fail_with:
            raise self.fail_with[node.node_id]
        self.runs.append((node.node_id, job.job_id, job.attempt, epoch, gpu_indices))

    async def cancel(self, node: Node, job_id: str, attempt: int, epoch: int) -> None:
        self.cancels.append((node.node_id, job_id, attempt, epoch))

    async def templates(self, node: Node) -> dict[str, dict[str, ParamSpec]]:
        return self._templates

    async def logs(self, node: Node, job_id: str, attempt: int, follow: bool) -> AsyncIterator[LogChunk]:
        yield LogChunk(1, f"{node.node_id}:{job_id}:{attempt}".encode())


class FakeMembers:
    def __init__(self, *nodes: Node) -> None:
        self.members = {n.node_id: n for n in nodes}

    def nodes(self) -> Mapping[str, Node]:
        return self.members
