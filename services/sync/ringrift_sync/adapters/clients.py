"""SyncPlanner's clients: the agents (manifests, pulls), StateService (transfer records,
events, the model registry) and NodeSelector (who trains a config)."""

from __future__ import annotations

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.tables import FILE_KINDS, TRANSFER_STATES
from ringrift_runtime.grpc.calls import call
from ringrift_runtime.grpc.client import ChannelPool
from ringrift_runtime.grpc.status import domain_error
from ringrift_runtime.grpc.times import from_timestamp
from ringrift_sync.domain.planner import DataFile, NodeFiles, Transfer


def data_file(entry: common_pb2.FileEntry) -> DataFile:
    return DataFile(
        path=entry.path,
        kind=FILE_KINDS.name(entry.kind, "other"),
        config_key=entry.config_key,
        size=entry.size_bytes,
        sha256=entry.sha256,
        game_count=entry.game_count,
        mtime=from_timestamp(entry.mtime).timestamp() if entry.HasField("mtime") else 0.0,
    )


def file_entry(file: DataFile) -> common_pb2.FileEntry:
    return common_pb2.FileEntry(
        path=file.path,
        kind=FILE_KINDS.value(file.kind) or common_pb2.FILE_KIND_OTHER,
        config_key=file.config_key,
        size_bytes=file.size,
        sha256=file.sha256,
        game_count=file.game_count,
    )


class AgentFiles:
    def __init__(self, pool: ChannelPool, addresses) -> None:
        self._pool = pool
        self._addresses = addresses  # callable: node id -> agent address (or None)

    def _stub(self, node_id: str) -> agent_pb2_grpc.NodeAgentServiceStub:
        address = self._addresses(node_id)
        if not address:
            raise LookupError(f"node {node_id} is not a member")
        return agent_pb2_grpc.NodeAgentServiceStub(self._pool.agent(address, node_id))

    async def manifest(self, node_id: str, timeout: float) -> NodeFiles:
        reply = await call(self._stub(node_id).GetManifest(agent_pb2.GetManifestRequest(), timeout=timeout))
        return NodeFiles(node_id, [data_file(f) for f in reply.files], reply.disk_percent, reply.disk_free_bytes)

    async def pull(self, transfer: Transfer, max_bytes_per_second: int, epoch: int):
        request = agent_pb2.PullFileRequest(
            source_address=self._addresses(transfer.source) or "",
            source_node_id=transfer.source,
            path=transfer.file.path,
            sha256=transfer.file.sha256,
            size_bytes=transfer.file.size,
            transfer_id=transfer.transfer_id,
            max_bytes_per_second=max_bytes_per_second,
            epoch=epoch,
        )
        if not request.source_address:
            raise LookupError(f"source node {transfer.source} is not a member")
        try:
            async for progress in self._stub(transfer.target).PullFile(request):
                yield progress.bytes_done
                if progress.completed:
                    return
        except Exception as exc:
            if hasattr(exc, "code"):
                raise domain_error(exc) from None
            raise
        raise RuntimeError(f"pull of {transfer.file.path} ended without completing")


class StateClient:
    def __init__(self, channel) -> None:
        self._stub = state_pb2_grpc.StateServiceStub(channel)

    async def record(self, plan_id: str, updates: list[tuple[Transfer, str, int, str]], epoch: int) -> None:
        """Upsert transfer records: (transfer, state name, bytes done, error)."""
        records = [
            state_pb2.SyncTransfer(
                transfer_id=t.transfer_id,
                plan_id=plan_id,
                source_node_id=t.source,
                target_node_id=t.target,
                file=file_entry(t.file),
                state=TRANSFER_STATES.values[state],
                bytes_done=done,
                error=error[:500],
            )
            for t, state, done, error in updates
        ]
        await call(self._stub.RecordSyncTransfers(state_pb2.RecordSyncTransfersRequest(transfers=records, epoch=epoch)))

    async def publish(
        self, event_type: str, subject: str, config_key: str, attributes: dict, epoch: int, key: str
    ) -> None:
        event = common_pb2.Event(
            type=common_pb2.EventType.Value(f"EVENT_TYPE_{event_type}"),
            source="sync",
            subject=subject,
            config_key=config_key,
            attributes={k: str(v) for k, v in attributes.items()},
            epoch=epoch,
            idempotency_key=key,
        )
        await call(self._stub.PublishEvent(state_pb2.PublishEventRequest(event=event)))

    async def best_model(self, config_key: str) -> common_pb2.Model | None:
        """The config's best model, if it has one."""
        reply = await call(self._stub.GetBestModels(state_pb2.GetBestModelsRequest(config_keys=[config_key])))
        return reply.models[0] if reply.models else None


class Trainers:
    def __init__(self, channel) -> None:
        self._stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)

    async def best(self, config_key: str, prefer: list[str]) -> list[str]:
        spec = common_pb2.JobSpec(
            kind="train",
            config_key=config_key,
            requirements=common_pb2.ResourceRequirements(role=common_pb2.NODE_ROLE_TRAINING, preferred_node_ids=prefer),
        )
        reply = await call(self._stub.RankNodes(nodes_pb2.RankNodesRequest(spec=spec, top_k=1)))
        return [score.node_id for score in reply.ranked]
