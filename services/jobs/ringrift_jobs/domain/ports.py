"""What the job lifecycle needs from the rest of the cluster. The adapters speak the
contracts and translate failures into the error taxonomy (StaleEpoch, NotFound,
InvalidArgument, DependencyUnavailable, ...)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Protocol

from ringrift_contracts.jobparams import ParamSpec
from ringrift_jobs.domain.model import Job, LogChunk, Node, Outcome, Spec, Transition


class JobStore(Protocol):
    """StateService's jobs."""

    async def create(self, jobs: list[tuple[Spec, str]], epoch: int = 0) -> list[tuple[Job, bool]]:
        """PENDING jobs from (spec, idempotency key); (job, created) each."""
        ...

    async def get(self, job_id: str) -> Job: ...

    async def dispatchable(self, limit: int) -> list[Job]:
        """PENDING jobs whose backoff has passed, highest priority and oldest first."""
        ...

    async def on_nodes(self) -> list[Job]:
        """Every job placed on a node (SCHEDULED, STARTING, RUNNING)."""
        ...

    async def node_counts(self) -> dict[str, tuple[int, int]]:
        """Per node holding any: (jobs placed on it, of those needing a GPU), counted
        where the jobs are stored."""
        ...

    async def transition(
        self, transitions: list[Transition], epoch: int = 0, with_jobs: bool = False
    ) -> list[Outcome]: ...

    async def epoch(self) -> int: ...

    async def event_head(self) -> int:
        """The sequence of the last event appended (0: none)."""
        ...

    def job_events(self, job_id: str, after: int) -> AsyncGenerator[int, None]:
        """The sequence of every event about ``job_id`` appended after ``after``, then of
        each one appended later, until the caller stops."""
        ...


class Placement(Protocol):
    """NodeSelector."""

    async def rank(self, spec: Spec, top_k: int, exclude: list[str], only: list[str] | None = None) -> list[str]:
        """Usable nodes for ``spec`` (not in ``exclude``; among ``only`` when given), best first."""
        ...


class Agents(Protocol):
    """The node agents."""

    async def run(self, node: Node, job: Job, epoch: int, gpu_indices: list[int]) -> None: ...

    async def cancel(self, node: Node, job_id: str, attempt: int, epoch: int) -> None: ...

    async def templates(self, node: Node) -> dict[str, dict[str, ParamSpec]]:
        """The parameter schema of every job kind the agent runs."""
        ...

    def logs(self, node: Node, job_id: str, attempt: int, follow: bool) -> AsyncIterator[LogChunk]: ...


class Members(Protocol):
    """The cluster's current members (etcd)."""

    def nodes(self) -> Mapping[str, Node]: ...
