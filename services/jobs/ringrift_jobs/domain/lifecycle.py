"""The job lifecycle (BEHAVIOUR.md, JobManager): submission checked against the agents'
templates, agent reports with retry decisions, dispatch within job slots, reaping of
lost, unverified and timed-out jobs, cancellation. Legality of every state change is
StateService's job table; this module decides what to ask for."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime

from ringrift_contracts.check import Check
from ringrift_contracts.ids import is_kind
from ringrift_contracts.jobparams import ParamSpec, resolve_params
from ringrift_contracts.jobs import ON_NODE, TERMINAL, JobState
from ringrift_contracts.limits import MAX_BATCH, MAX_ECHO
from ringrift_jobs.domain.batching import Batcher
from ringrift_jobs.domain.model import Job, LogChunk, Node, Outcome, Report, Spec, Transition
from ringrift_jobs.domain.policy import after_failure, assign, cooling_nodes, overdue, unverified
from ringrift_jobs.domain.ports import Agents, JobStore, Members, Placement
from ringrift_runtime.errors import InvalidArgument, NotFound, RingriftError, StaleEpoch
from ringrift_runtime.tracing import TRACEPARENT_PATTERN, resumed
from ringrift_settings import JobSettings

# A dispatch round looks at LOOK_AHEAD pending jobs per free slot (at least LOOK_AHEAD_MIN)
# before it widens to a whole batch (jobs that fit nowhere, cooling nodes).
LOOK_AHEAD = 4
LOOK_AHEAD_MIN = 32

log = logging.getLogger("ringrift.jobs")

MAX_PARAMS, MAX_TIMEOUT, MAX_ATTEMPTS = 64, 7 * 86400, 20
RUN_CONCURRENCY = 64
# A job not yet handed to its agent (waiting for a node, or placed and being sent to it).
UNSTARTED = frozenset({JobState.PENDING, JobState.SCHEDULED})
REPORTED_STATES = frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST})


class JobLifecycle:
    def __init__(
        self,
        store: JobStore,
        placement: Placement,
        agents: Agents,
        members: Members,
        settings: JobSettings,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self._placement = placement
        self._agents = agents
        self._members = members
        self._settings = settings
        self._clock = clock
        self._now = now
        self._templates: dict[str, dict[str, ParamSpec]] = {}
        self._last_top_up: dict[str, float] = {}  # node -> clock time of its last top-up round
        # Concurrent agent reports share one TransitionJobs call (one transaction).
        self._reports: Batcher[Transition, Outcome] = Batcher(lambda batch: self.store.transition(batch), max_size=500)
        # STARTING transitions not written yet (starting_write_delay_seconds), by (job,
        # attempt), with the epoch of the round that started them.
        self._starting: dict[tuple[str, int], tuple[Transition, int]] = {}
        self._writes: set[asyncio.Task[None]] = set()  # the delayed writes, held until done
        # The last round from the backlog saw every dispatchable job and placed them all.
        self.backlog_empty = False

    @property
    def retention_seconds(self) -> float:
        return self._settings.retention_seconds

    @property
    def history_seconds(self) -> float:
        return self._settings.history_retention_days * 86400

    def members(self) -> Mapping[str, Node]:
        return self._members.nodes()

    # -- validation ---------------------------------------------------------------
    async def _param_specs(self, kind: str) -> dict[str, ParamSpec] | None:
        """The parameter schema of ``kind`` as an agent that runs it publishes it."""
        if kind in self._templates:
            return self._templates[kind]
        for node in self._members.nodes().values():
            if kind not in node.job_kinds:
                continue
            try:
                self._templates.update(await self._agents.templates(node))
            except RingriftError as exc:  # that agent cannot tell: ask another
                log.warning("templates of %s unavailable: %s", node.node_id, exc)
                continue
            return self._templates.get(kind)
        return None

    async def check_spec(self, check: Check, field: str, spec: Spec) -> None:
        """Everything wrong with ``spec``: its kind runs on no node, a parameter its
        template does not know or does not accept, limits exceeded."""
        kind = spec.kind
        if not is_kind(kind):
            check.kind(f"{field}.kind", kind)
            return
        check.config_key(f"{field}.config_key", spec.config_key, required=False)
        check.check(f"{field}.params", len(spec.params) <= MAX_PARAMS, f"at most {MAX_PARAMS} parameters")
        check.check(f"{field}.timeout_seconds", spec.timeout_seconds <= MAX_TIMEOUT, f"at most {MAX_TIMEOUT}")
        check.check(f"{field}.max_attempts", spec.max_attempts <= MAX_ATTEMPTS, f"at most {MAX_ATTEMPTS}")
        check.check(
            f"{field}.traceparent",
            not spec.traceparent or bool(TRACEPARENT_PATTERN.match(spec.traceparent)),
            "must be a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>, or empty",
        )
        kinds = sorted({k for node in self._members.nodes().values() for k in node.job_kinds})
        if kinds and kind not in kinds:
            check.fail(
                f"{field}.kind", f"unknown job kind {kind[:MAX_ECHO]!r}: no node runs it (kinds: {', '.join(kinds)})"
            )
            return
        specs = await self._param_specs(kind)
        if specs is not None:
            resolve_params(kind, specs, spec.params, check, f"{field}.params")

    # -- submission ---------------------------------------------------------------
    async def submit(self, requests: list[tuple[Spec, str]], epoch: int = 0) -> list[tuple[Job, bool]]:
        """Validate every spec (all violations in one error), then create them at once."""
        check = Check()
        for index, (spec, key) in enumerate(requests):
            field = "spec" if len(requests) == 1 else f"jobs[{index}].spec"
            await self.check_spec(check, field, spec)
            check.idempotency_key(field.replace("spec", "idempotency_key"), key)
        check.raise_if_invalid()
        return await self.store.create(requests, epoch)

    def selfplay_shares(self, games: int, max_jobs: int) -> list[int]:
        """``games`` split as evenly as possible over one job per self-play node (at most
        ``max_jobs``, at most one job per game)."""
        runners = [n for n in self._members.nodes().values() if "selfplay" in n.job_kinds]
        count = max(1, min(max_jobs or len(runners) or 1, games))
        share, extra = divmod(games, count)
        return [share + (index < extra) for index in range(count)]

    # -- agent reports --------------------------------------------------------------
    async def report(self, report: Report) -> bool:
        """Record an agent's report; a failure or loss gets its retry decision. Whether
        it applies (a superseded attempt, an illegal change) is StateService's answer."""
        if report.state not in REPORTED_STATES:
            raise InvalidArgument.field("state", "must be RUNNING, SUCCEEDED, FAILED, CANCELLED or LOST")
        transition = Transition(
            job_id=report.job_id,
            attempt=report.attempt,
            to_state=report.state,
            node_id=report.node_id,
            exit_code=report.exit_code,
            error=report.error,
            result_json=report.result_json,
            reported_by=report.reported_by,
            cpu_seconds=report.cpu_seconds,
        )
        if report.state in (JobState.FAILED, JobState.LOST):
            # Only a failure needs the job (its attempt limit) to decide on a retry.
            self._decide_retry(transition, await self.store.get(report.job_id), retriable=True)
        pending = self._starting.pop((report.job_id, report.attempt), None)
        if pending is None:
            return (await self._reports.submit(transition)).applied
        # The agent's report came before the delayed STARTING was written: both go in one
        # commit, STARTING first (JOB_STARTED, then the report's event). It is the agent's
        # own word that it started the job, credited like its report (reported_by).
        starting, epoch = pending
        starting.reported_by = report.reported_by
        try:
            return (await self._reports.submit_all([starting, transition]))[1].applied
        except RingriftError:
            # Not recorded: STARTING waits again, for the agent's retry or its delayed write.
            self._write_starting_later([starting], epoch, self._settings.starting_write_delay_seconds)
            raise

    async def superseded(self, report: Report) -> bool:
        """Whether the attempt ``report`` says is running should not be: the job is on
        another attempt, has ended, or is gone (an agent that was cut off, or restarted
        and re-adopted its processes, learns this when it reports again)."""
        try:
            job = await self.store.get(report.job_id)
        except NotFound:
            return True
        return job.attempt != report.attempt or job.state in TERMINAL

    def _decide_retry(self, transition: Transition, job: Job, retriable: bool) -> None:
        max_attempts = job.spec.max_attempts or self._settings.max_attempts
        decision = after_failure(transition.attempt, max_attempts, retriable, self._now(), self._settings)
        transition.retry, transition.permanent = decision.retry, decision.permanent
        transition.not_before = decision.not_before

    # -- dispatch -------------------------------------------------------------------
    @staticmethod
    def _free_slots(
        members: Mapping[str, Node], counts: Mapping[str, tuple[int, int]]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """(free slots, GPU jobs) per member, from the per-node counts of placed jobs."""
        slots = {name: max(0, (node.job_slots or 1) - counts.get(name, (0, 0))[0]) for name, node in members.items()}
        gpu_used: dict[str, int] = defaultdict(int, {name: gpu for name, (_, gpu) in counts.items()})
        return slots, gpu_used

    async def dispatch(self, limit: int, epoch: int, only: set[str] | None = None) -> tuple[int, int]:
        """Place up to ``limit`` pending jobs (or the ``only`` ones) within the nodes' free
        slots, best-ranked node first, and start them; (dispatched, still pending among
        those looked at).

        A round looks at as many pending jobs as the free slots could take (LOOK_AHEAD
        times over), not at a whole page of the backlog: a round runs on every job event,
        and listing a thousand pending jobs each time cost StateService most of its CPU
        under load. When those leave free slots unfilled it looks further, at up to
        ``limit``, so jobs that fit are not stuck behind ones that do not."""
        members = self._members.nodes()
        topped_up: set[str] = set()
        self.backlog_empty = False  # until this round says otherwise
        if only is None:
            pending, chosen, gpu_used, listed_all = await self._from_backlog(members, limit, topped_up)
        else:
            (pending, chosen, gpu_used), listed_all = await self._named(members, only, topped_up), False
        for node_id in topped_up:
            self._last_top_up[node_id] = self._clock()
        applied: set[str] = set()
        if chosen:
            scheduled = await self.store.transition(
                [
                    Transition(
                        job.job_id, job.attempt, JobState.SCHEDULED, from_state=JobState.PENDING, node_id=node_id
                    )
                    for job, node_id in chosen
                ],
                epoch,
            )
            applied = {o.job_id for o in scheduled if o.applied}
        self.backlog_empty = listed_all and len(applied) == len(pending)
        if not applied:
            return 0, len(pending)
        semaphore = asyncio.Semaphore(RUN_CONCURRENCY)
        started = await asyncio.gather(
            *(
                self._start(members, job, node_id, epoch, gpu_used, semaphore)
                for job, node_id in chosen
                if job.job_id in applied
            )
        )
        stale = next((r for r in started if isinstance(r, StaleEpoch)), None)
        if stale is not None:
            raise stale
        taken = [t for t in started if isinstance(t, Transition) and t.to_state is JobState.STARTING]
        refused = [t for t in started if isinstance(t, Transition) and t.to_state is not JobState.STARTING]
        delay = self._settings.starting_write_delay_seconds
        now = refused if delay > 0 else refused + taken
        if now:
            await self.store.transition(now, epoch)
        if delay > 0 and taken:
            self._write_starting_later(taken, epoch, delay)
        return len(applied), len(pending) - len(applied)

    def _write_starting_later(self, transitions: list[Transition], epoch: int, delay: float) -> None:
        """STARTING for jobs their agents took, written (fenced) ``delay`` seconds from now
        unless an agent's report takes it along first (report). A short job's end comes
        within milliseconds: its STARTING then costs no commit of its own, and the end's
        commit does not queue behind it."""
        keys = [(t.job_id, t.attempt) for t in transitions]
        for key, transition in zip(keys, transitions, strict=True):
            self._starting[key] = (transition, epoch)
        task = asyncio.create_task(self._write_starting(keys, epoch, delay), name="write-starting")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_starting(self, keys: list[tuple[str, int]], epoch: int, delay: float) -> None:
        await asyncio.sleep(delay)
        due = [pending[0] for key in keys if (pending := self._starting.pop(key, None)) is not None]
        if not due:
            return
        try:
            await self.store.transition(due, epoch)
        except StaleEpoch as exc:  # the leader's next fenced act ends its term
            log.warning("STARTING of %d jobs not recorded: %s", len(due), exc)
        except RingriftError as exc:
            # Nothing is lost: each agent's first report moves its job on from SCHEDULED.
            log.warning("STARTING of %d jobs not recorded (%s); their agents' reports move them on", len(due), exc)

    async def _named(
        self, members: Mapping[str, Node], only: set[str], topped_up: set[str]
    ) -> tuple[list[Job], list[tuple[Job, str]], dict[str, int]]:
        """Named jobs, read by id wherever they stand in the backlog, and their nodes."""
        counts, named = await asyncio.gather(
            self.store.node_counts(), asyncio.gather(*(self.store.get(job_id) for job_id in sorted(only)))
        )
        pending = [job for job in named if job.state == JobState.PENDING]
        free, gpu_used = self._free_slots(members, counts)
        if not pending or sum(free.values()) <= 0:
            return pending, [], gpu_used
        return pending, await self._choose(pending, free, topped_up), gpu_used

    async def _from_backlog(
        self, members: Mapping[str, Node], limit: int, topped_up: set[str]
    ) -> tuple[list[Job], list[tuple[Job, str]], dict[str, int], bool]:
        """The head of the backlog that the free slots can take, its nodes, and whether
        the last listing held the whole dispatchable backlog (it came back short)."""
        wanted = max(1, min(limit, MAX_BATCH))
        guess = min(wanted, LOOK_AHEAD_MIN)
        # The per-node counts and the head of the backlog at once (one round trip, not two);
        # a longer look-ahead only when the free slots call for it and the backlog has it.
        counts, pending = await asyncio.gather(self.store.node_counts(), self.store.dispatchable(guess))
        listed_all = len(pending) < guess
        free, gpu_used = self._free_slots(members, counts)
        capacity = sum(free.values())
        first = min(wanted, max(LOOK_AHEAD_MIN, LOOK_AHEAD * capacity))
        if first > guess and len(pending) == guess:
            pending = await self.store.dispatchable(first)
            listed_all = len(pending) < first
        if not pending or capacity <= 0:
            return pending, [], gpu_used, listed_all
        chosen = await self._choose(pending, free, topped_up)
        if len(chosen) < capacity and len(pending) == first < wanted:
            # Free slots are left and the look-ahead did not fill them: look further.
            seen = {job.job_id for job in pending}
            listed = await self.store.dispatchable(wanted)
            listed_all = len(listed) < wanted
            further = [job for job in listed if job.job_id not in seen]
            pending += further
            chosen += await self._choose(further, free, topped_up)
        return pending, chosen, gpu_used, listed_all

    async def _choose(self, pending: list[Job], free: dict[str, int], topped_up: set[str]) -> list[tuple[Job, str]]:
        """A node for each job that fits (``free`` is used up as slots are taken)."""
        groups: dict[bytes, list[Job]] = defaultdict(list)
        for job in pending:
            groups[job.spec.group].append(job)
        chosen: list[tuple[Job, str]] = []
        cooling = cooling_nodes(self._last_top_up, self._clock(), self._settings.dispatch_cooldown_seconds)
        for jobs in groups.values():
            skip = {name for name, count in free.items() if count <= 0}
            if jobs[0].spec.top_up:
                skip |= cooling
            open_nodes = [name for name, count in free.items() if count > 0 and name not in skip]
            if not open_nodes:
                continue
            # The shorter list goes to the selector: the nodes that may take a job, or
            # those that may not. Every job needs at most one node of its own.
            k = min(MAX_BATCH, len(jobs), len(open_nodes))
            if len(open_nodes) <= len(skip):
                ranked = await self._placement.rank(jobs[0].spec, k, [], sorted(open_nodes))
            else:
                ranked = await self._placement.rank(jobs[0].spec, k, sorted(skip))
            order = [node_id for node_id in ranked if node_id not in skip]
            for job in jobs:
                node_id = assign(order, free)
                if node_id is not None:
                    chosen.append((job, node_id))
                    if job.spec.top_up:
                        topped_up.add(node_id)
        return chosen

    async def _start(
        self,
        members: Mapping[str, Node],
        job: Job,
        node_id: str,
        epoch: int,
        gpu_used: dict[str, int],
        semaphore: asyncio.Semaphore,
    ) -> Transition | StaleEpoch | None:
        """RunJob on the chosen node: STARTING once the agent took it, FAILED for good when
        the agent refused the job as invalid, nothing (spawn verification decides) when the
        agent could not be reached. A stale epoch is returned for the caller to raise."""
        node = members.get(node_id)
        if node is None:
            return None  # left meanwhile: the reaper handles it
        gpus: list[int] = []
        if job.spec.needs_gpu and node.gpu_count:
            gpus = [gpu_used[node_id] % node.gpu_count]
            gpu_used[node_id] += 1
        async with semaphore:
            # The job's own trace (its SubmitJob's) continues here: RunJob and the agent's
            # reports join it.
            with resumed("dispatch job", job.spec.traceparent, {"job.id": job.job_id, "node.id": node_id}):
                try:
                    await self._agents.run(node, job, epoch, gpus)
                except StaleEpoch as exc:
                    return exc
                except InvalidArgument as exc:
                    detail = "; ".join(f"{v.field}: {v.description}" for v in exc.violations)
                    return Transition(
                        job.job_id,
                        job.attempt,
                        JobState.FAILED,
                        from_state=JobState.SCHEDULED,
                        error=f"refused by {node_id}: {detail}",
                        permanent=True,
                    )
                except RingriftError as exc:
                    log.warning("RunJob %s on %s failed (%s); spawn verification will decide", job.job_id, node_id, exc)
                    return None
        return Transition(job.job_id, job.attempt, JobState.STARTING, from_state=JobState.SCHEDULED)

    # -- reaping --------------------------------------------------------------------
    def _reap_one(self, job: Job, members: Mapping[str, Node], now: datetime) -> tuple[Transition, str, bool] | None:
        """What the reaper does about ``job``: (transition, counter, cancel it on its node)."""
        transition = Transition(job.job_id, job.attempt, JobState.LOST, from_state=job.state)
        if job.node_id not in members:
            transition.error = f"node {job.node_id} left the cluster"
            self._decide_retry(transition, job, retriable=True)
            return transition, "lost", False
        if job.state != JobState.RUNNING and job.updated_at and unverified(job.updated_at, now, self._settings):
            transition.to_state = JobState.FAILED
            seconds = self._settings.spawn_verification_seconds
            transition.error = f"not confirmed running on {job.node_id} within {seconds:.0f}s"
            self._decide_retry(transition, job, retriable=True)
            return transition, "unverified", True
        current = job.attempt_view()
        timeout = job.spec.timeout_seconds or self._settings.timeout_for(job.spec.kind)
        if job.state == JobState.RUNNING and current is not None and overdue(current.started_at, timeout, now):
            transition.to_state, transition.error, transition.permanent = JobState.FAILED, "timed out", True
            return transition, "timed_out", True
        return None

    async def reap(self, epoch: int) -> tuple[int, int, int]:
        """LOST for jobs whose node left, a retry for jobs not confirmed running in time,
        FAILED for jobs past their timeout; at most ``max_reaps_per_node`` per node a
        round. Returns (lost, timed out, unverified)."""
        now = self._now()
        members = self._members.nodes()
        per_node: dict[str, int] = defaultdict(int)
        transitions: list[Transition] = []
        cancels: list[tuple[Node, Job]] = []
        counts = {"lost": 0, "timed_out": 0, "unverified": 0}
        for job in await self.store.on_nodes():
            if per_node[job.node_id] >= self._settings.max_reaps_per_node:
                continue
            verdict = self._reap_one(job, members, now)
            if verdict is None:
                continue
            transition, counter, cancel = verdict
            counts[counter] += 1
            per_node[job.node_id] += 1
            transitions.append(transition)
            if cancel:
                cancels.append((members[job.node_id], job))
        # Recorded first (fenced: an epoch StateService did not issue stops the round here),
        # then the agents told to stop what they run.
        await self.store.transition(transitions, epoch)
        for node, job in cancels:
            try:
                await self._agents.cancel(node, job.job_id, job.attempt, epoch)
            except StaleEpoch:
                raise
            except RingriftError as exc:
                log.warning("cancel of %s on %s failed: %s", job.job_id, node.node_id, exc)
        return counts["lost"], counts["timed_out"], counts["unverified"]

    # -- cancellation ---------------------------------------------------------------------
    async def cancel(self, job_id: str, reason: str) -> Job:
        """CANCELLED, and the agent told to stop it when it is on a node; a job that has
        ended already is returned as it is."""
        job = await self.store.get(job_id)
        if job.state in TERMINAL:
            return job
        (outcome,) = await self.store.transition(
            [
                Transition(
                    job.job_id, job.attempt, JobState.CANCELLED, from_state=job.state, error=reason or "cancelled"
                )
            ],
            with_jobs=True,
        )
        node = self._members.nodes().get(job.node_id)
        if outcome.applied and node is not None and job.state in ON_NODE:
            epoch = await self.store.epoch()
            if epoch:
                try:
                    await self._agents.cancel(node, job.job_id, job.attempt, epoch)
                except RingriftError as exc:
                    log.warning("cancel of %s on %s failed: %s", job_id, job.node_id, exc)
        return outcome.job if outcome.job is not None else await self.store.get(job_id)

    # -- logs -------------------------------------------------------------------------------
    async def logs(self, job_id: str, attempt: int, follow: bool) -> AsyncIterator[LogChunk]:
        """The output of one attempt (0: the current one), from the node that ran it.
        Following the current attempt of a job its agent does not hold yet waits until it
        does (a job followed right after its submission), woken by the job's events."""
        job = await self.store.get(job_id)
        if follow and not attempt and job.state in UNSTARTED:
            job = await self._placed(job_id)
        view = job.attempt_view(attempt)
        if view is None or not view.node_id:
            raise NotFound(f"job {job.job_id} attempt {attempt or job.attempt} has not been placed on a node")
        node = self._members.nodes().get(view.node_id)
        if node is None:
            raise NotFound(f"node {view.node_id} is not a member any more; its logs are gone with it")
        async for chunk in self._agents.logs(node, job.job_id, view.attempt, follow):
            yield chunk

    async def _placed(self, job_id: str) -> Job:
        """The job once its agent holds it (STARTING or later) or it ended without one.
        The event head is taken before the job is read again, so a change after that read
        is among the events watched from it."""
        head = await self.store.event_head()
        job = await self.store.get(job_id)
        if job.state not in UNSTARTED:
            return job
        async with aclosing(self.store.job_events(job_id, head)) as events:  # the watch ends with the wait
            async for _sequence in events:
                job = await self.store.get(job_id)
                if job.state not in UNSTARTED:
                    return job
        return job
