"""StateService servicer: decode -> one use case -> encode (registry RPCs in
registry_rpcs.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.check import Check
from ringrift_runtime.errors import NotFound, PermissionDenied
from ringrift_runtime.security.authz import caller
from ringrift_runtime.security.identity import Kind
from ringrift_state.api import jobs_mapping, mapping
from ringrift_state.api.registry_rpcs import RegistryRpcs
from ringrift_state.domain.usecases import StateUseCases

# What an agent may publish (the authorization table lets agents call PublishEvent for these).
AGENT_EVENTS = frozenset({common_pb2.EVENT_TYPE_RECORD_SKIPPED})

PUBLISHED_BY = "published_by"  # event attribute: the publisher's identity, set by StateService


class StateServicer(RegistryRpcs, state_pb2_grpc.StateServiceServicer):
    def __init__(self, use_cases: StateUseCases, jobs, registry, default_max_attempts: int) -> None:
        self._use_cases = use_cases
        self._registry = registry
        self._jobs = jobs  # SqlJobRepository
        self._max_attempts = default_max_attempts

    async def CreateJobs(self, request, context):
        created = await self._jobs.create(jobs_mapping.new_jobs(request, self._max_attempts), request.epoch)
        self._use_cases.notify()
        return state_pb2.CreateJobsResponse(
            jobs=[jobs_mapping.job_message(j) for j, _ in created], created=[fresh for _, fresh in created]
        )

    async def GetJob(self, request, context):
        job = await self._jobs.get(jobs_mapping.job_id(request))
        if job is not None:
            return state_pb2.GetJobResponse(job=jobs_mapping.job_message(job))
        archived = await self._jobs.archived(request.job_id)
        if archived is None:
            raise NotFound(f"job {request.job_id} does not exist")
        return state_pb2.GetJobResponse(job=common_pb2.Job.FromString(archived))

    async def ArchiveJobs(self, request, context):
        now = datetime.now(UTC)
        cutoff = now - timedelta(seconds=request.older_than_seconds)
        moved = await self._jobs.archive(
            cutoff, request.epoch, lambda j: jobs_mapping.job_message(j).SerializeToString()
        )
        deleted = 0
        if request.delete_history_older_than_seconds:
            history_cutoff = now - timedelta(seconds=request.delete_history_older_than_seconds)
            deleted = await self._jobs.delete_history(history_cutoff, request.epoch)
        return state_pb2.ArchiveJobsResponse(moved=moved, deleted=deleted)

    async def ListJobs(self, request, context):
        query, size, token = jobs_mapping.list_query(request)
        found = await self._jobs.query(query, size, token)
        next_token = found[-1].job_id if len(found) == size else ""
        return state_pb2.ListJobsResponse(jobs=[jobs_mapping.job_message(j) for j in found], next_page_token=next_token)

    async def CountJobsOnNodes(self, request, context):
        counts = await self._jobs.on_nodes()
        return state_pb2.CountJobsOnNodesResponse(
            nodes=[state_pb2.NodeJobCount(node_id=n, jobs=jobs, gpu_jobs=gpu) for n, jobs, gpu in counts]
        )

    async def TransitionJobs(self, request, context):
        outcomes = await self._jobs.transition(
            jobs_mapping.transitions(request), request.epoch, with_jobs=not request.omit_jobs
        )
        self._use_cases.notify()
        return state_pb2.TransitionJobsResponse(
            outcomes=[
                state_pb2.TransitionOutcome(
                    job_id=o.job_id,
                    applied=o.applied,
                    reason=o.reason,
                    job=jobs_mapping.job_message(o.job) if o.job else None,
                )
                for o in outcomes
            ]
        )

    async def GetClusterEpoch(self, request, context):
        record = await self._use_cases.get_epoch()
        return state_pb2.GetClusterEpochResponse(
            epoch=record.epoch, leader_id=record.leader_id, advanced_at=mapping.timestamp(record.advanced_at)
        )

    async def AdvanceEpoch(self, request, context):
        epoch, leader_id = mapping.advance_epoch(request)
        previous, current = await self._use_cases.advance_epoch(epoch, leader_id)
        return state_pb2.AdvanceEpochResponse(epoch=current.epoch, previous_epoch=previous.epoch)

    async def ClaimEpoch(self, request, context):
        check = Check()
        check.require("leader_key", request.leader_key, "is required: the caller's election key")
        check.max_length("leader_key", request.leader_key, 256)
        check.raise_if_invalid()
        who = caller()
        previous, current = await self._use_cases.claim_epoch(request.leader_key, who.name if who else None)
        return state_pb2.ClaimEpochResponse(epoch=current.epoch, previous_epoch=previous.epoch)

    async def GetClusterStats(self, request, context):
        record = await self._use_cases.get_epoch()
        counts = await self._jobs.counts()
        return state_pb2.GetClusterStatsResponse(
            epoch=record.epoch,
            leader_id=record.leader_id,
            last_event_sequence=await self._use_cases.last_sequence(),
            jobs=[state_pb2.JobCount(kind=kind, state=int(state), count=count) for kind, state, count in counts],
        )

    async def PublishEvent(self, request, context):
        publisher = caller()
        if publisher is not None and publisher.kind is Kind.AGENT and request.event.type not in AGENT_EVENTS:
            raise PermissionDenied(f"{publisher} may publish only RECORD_SKIPPED events")
        # Who published it, from the certificate (a request field says nothing). An absent
        # event is left absent: validation names the field, and stamping would create one.
        if request.HasField("event") and publisher is not None:
            request.event.attributes[PUBLISHED_BY] = str(publisher)
        elif request.HasField("event"):
            request.event.attributes.pop(PUBLISHED_BY, None)
        stored = await self._use_cases.publish(mapping.new_event(request))
        return state_pb2.PublishEventResponse(event=mapping.event_message(stored))

    async def ListEvents(self, request, context):
        after, event_filter, limit = mapping.list_events(request)
        stored = await self._use_cases.list_events(after, event_filter, limit)
        return state_pb2.ListEventsResponse(events=[mapping.event_message(s) for s in stored])

    async def WatchEvents(self, request, context):
        after, event_filter = mapping.watch_events(request)
        async for stored in self._use_cases.watch(after, event_filter):
            yield state_pb2.WatchEventsResponse(event=mapping.event_message(stored))

    async def GetEventHead(self, request, context):
        return state_pb2.GetEventHeadResponse(sequence=await self._use_cases.event_head())

    async def PersistState(self, request, context):
        version = await self._use_cases.persist_state(*mapping.persist_state(request))
        return state_pb2.PersistStateResponse(version=version)

    async def LoadState(self, request, context):
        found = await self._use_cases.load_state(*mapping.load_state(request))
        if found is None:
            return state_pb2.LoadStateResponse(found=False)
        return state_pb2.LoadStateResponse(found=True, value=found.value, version=found.version)
