"""SyncPlannerService servicer: decode -> SyncPlanner -> encode."""

from __future__ import annotations

import asyncio

from ringrift.common.v1 import common_pb2
from ringrift.sync.v1 import sync_pb2, sync_pb2_grpc
from ringrift_contracts.check import Check
from ringrift_sync.adapters.clients import file_entry
from ringrift_sync.domain.executor import Progress
from ringrift_sync.domain.planner import Goal, NodeFiles, Plan
from ringrift_sync.domain.service import SyncPlanner

GOALS = {
    sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER: Goal.GAMES_TO_TRAINER,
    sync_pb2.SYNC_GOAL_TRAINING_TO_TRAINER: Goal.TRAINING_TO_TRAINER,
    sync_pb2.SYNC_GOAL_MODEL_TO_PLAYERS: Goal.MODEL_TO_PLAYERS,
}
GOAL_CODES = {goal: code for code, goal in GOALS.items()}
KIND_GOALS = {
    common_pb2.FILE_KIND_GAMES: Goal.GAMES_TO_TRAINER,
    common_pb2.FILE_KIND_TRAINING: Goal.TRAINING_TO_TRAINER,
    common_pb2.FILE_KIND_MODEL: Goal.MODEL_TO_PLAYERS,
}
MAX_NODES = 1000


def manifest_message(manifest: NodeFiles, config_key: str) -> sync_pb2.NodeManifest:
    return sync_pb2.NodeManifest(
        node_id=manifest.node_id,
        disk_percent=manifest.disk_percent,
        disk_free_bytes=manifest.disk_free,
        files=[file_entry(f) for f in manifest.files if not config_key or f.config_key == config_key],
    )


def plan_message(plan: Plan) -> sync_pb2.SyncPlan:
    return sync_pb2.SyncPlan(
        plan_id=plan.plan_id,
        goal=GOAL_CODES[plan.goal],
        config_key=plan.config_key,
        total_bytes=plan.total_bytes,
        transfers=[
            sync_pb2.PlannedTransfer(
                transfer_id=t.transfer_id, source_node_id=t.source, target_node_id=t.target, file=file_entry(t.file)
            )
            for t in plan.transfers
        ],
        skipped=[
            sync_pb2.SkippedFile(file=file_entry(s.file), target_node_id=s.target, reason=s.reason)
            for s in plan.skipped
        ],
    )


def progress_message(progress: Progress) -> sync_pb2.ExecuteSyncPlanResponse:
    return sync_pb2.ExecuteSyncPlanResponse(
        plan_id=progress.plan_id,
        transfers_done=progress.transfers_done,
        transfers_failed=progress.transfers_failed,
        transfers_total=progress.transfers_total,
        bytes_done=progress.bytes_done,
        bytes_total=progress.bytes_total,
        finished=progress.finished,
    )


class SyncPlannerServicer(sync_pb2_grpc.SyncPlannerServiceServicer):
    def __init__(self, planner: SyncPlanner) -> None:
        self._planner = planner

    async def CollectManifests(self, request, context):
        check = Check()
        check.check("node_ids", len(request.node_ids) <= MAX_NODES, f"at most {MAX_NODES} nodes")
        for index, node_id in enumerate(request.node_ids):
            check.node_id(f"node_ids[{index}]", node_id)
        check.config_key("config_key", request.config_key, required=False)
        check.raise_if_invalid()
        collected = await self._planner.collect(list(request.node_ids), request.refresh)
        return sync_pb2.CollectManifestsResponse(
            manifests=[manifest_message(m, request.config_key) for _, m in sorted(collected.manifests.items())],
            missing_node_ids=collected.missing,
            partial=bool(collected.missing),
        )

    async def CreateSyncPlan(self, request, context):
        check = Check()
        check.check("goal", request.goal in GOALS, "is required: one of the SYNC_GOAL_* values")
        check.config_key("config_key", request.config_key)
        check.check("target_node_ids", len(request.target_node_ids) <= MAX_NODES, f"at most {MAX_NODES} nodes")
        for index, node_id in enumerate(request.target_node_ids):
            check.node_id(f"target_node_ids[{index}]", node_id)
        if request.model_sha256:
            check.check("model_sha256", len(request.model_sha256) == 64, "must be 64 hex digits")
        check.raise_if_invalid()
        plan, _ = await self._planner.plan(
            GOALS[request.goal], request.config_key, list(request.target_node_ids), request.model_sha256
        )
        return sync_pb2.CreateSyncPlanResponse(plan=plan_message(plan))

    async def ExecuteSyncPlan(self, request, context):
        check = Check()
        check.check("plan_id", bool(request.plan_id), "is required")
        check.leader_epoch("epoch", request.epoch)
        check.raise_if_invalid()
        updates: asyncio.Queue = asyncio.Queue()
        run = asyncio.create_task(
            self._planner.execute(request.plan_id, request.epoch, lambda p: updates.put_nowait(progress_message(p)))
        )
        getter = None
        try:
            while True:
                getter = asyncio.create_task(updates.get())
                await asyncio.wait({getter, run}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    message = getter.result()
                    latest = _drain(updates, message)
                    yield latest
                    if latest.finished:
                        break
                else:
                    getter.cancel()
                    run.result()  # raises the execution's error, if any
                    while not updates.empty():
                        yield _drain(updates, updates.get_nowait())
                    break
            await run
        finally:
            if getter is not None and not getter.done():
                getter.cancel()
            if not run.done():
                run.cancel()  # the caller went away: stop pulling on its behalf

    async def GetSyncPlan(self, request, context):
        check = Check()
        check.check("plan_id", bool(request.plan_id), "is required")
        check.raise_if_invalid()
        plan, progress = self._planner.get(request.plan_id)
        reply = sync_pb2.GetSyncPlanResponse(plan=plan_message(plan))
        if progress is not None:
            reply.progress.CopyFrom(progress_message(progress))
        return reply

    async def GetSyncTargets(self, request, context):
        check = Check()
        check.check("kind", request.kind in KIND_GOALS, "is required: FILE_KIND_GAMES, _TRAINING or _MODEL")
        check.config_key("config_key", request.config_key)
        check.raise_if_invalid()
        manifests = (await self._planner.collect([], refresh=False)).manifests
        nodes = await self._planner.targets(KIND_GOALS[request.kind], request.config_key, manifests)
        return sync_pb2.GetSyncTargetsResponse(node_ids=nodes)


def _drain(queue: asyncio.Queue, latest):
    """The newest progress message waiting (intermediate ones are superseded)."""
    while not queue.empty():
        latest = queue.get_nowait()
        if latest.finished:
            break
    return latest
