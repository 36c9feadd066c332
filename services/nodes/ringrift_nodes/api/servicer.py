"""NodeSelectorService servicer: decode -> placement view -> encode."""

from __future__ import annotations

from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift_contracts.membership import quarantine_message
from ringrift_nodes.api import mapping
from ringrift_nodes.domain.view import PlacementView
from ringrift_runtime.errors import NotFound
from ringrift_runtime.security.authz import caller


class NodeSelectorServicer(nodes_pb2_grpc.NodeSelectorServiceServicer):
    def __init__(self, view: PlacementView, members, reservations=None, quarantines=None) -> None:
        self._view = view
        self._members = members  # ringrift_contracts.membership.Membership
        self._reservations = reservations  # ReservationStore
        self._quarantines = quarantines  # QuarantineStore

    async def SelectBestNodeForJob(self, request, context):
        needs, exclude = mapping.select_request(request)
        best = self._view.best(needs, exclude)
        if best is None:
            return nodes_pb2.SelectBestNodeForJobResponse(found=False)
        node = self._members.values().get(best.node_id)
        return nodes_pb2.SelectBestNodeForJobResponse(found=True, best=mapping.score_message(best), node=node)

    async def RankNodes(self, request, context):
        needs, k, exclude, only = mapping.rank_request(request, self._view.settings.max_top_k)
        return nodes_pb2.RankNodesResponse(
            ranked=[mapping.score_message(s) for s in self._view.rank(needs, k, exclude, only)]
        )

    async def GetNodeScore(self, request, context):
        node_id, needs = mapping.score_request(request)
        return nodes_pb2.GetNodeScoreResponse(score=mapping.score_message(self._view.score(node_id, needs)))

    async def FilterByCapability(self, request, context):
        needs = mapping.filter_request(request)
        members = self._members.values()
        usable = [s.node_id for s in self._view.explain(needs) if s.usable]
        return nodes_pb2.FilterByCapabilityResponse(nodes=[members[n] for n in usable if n in members])

    async def ExplainPlacement(self, request, context):
        needs = mapping.explain_request(request)
        scores = self._view.explain(needs)
        return nodes_pb2.ExplainPlacementResponse(
            scores=[mapping.score_message(s) for s in scores],
            members=len(scores),
            view_revision=self._members.revision,
        )

    async def ListNodes(self, request, context):
        nodes = sorted(self._members.values().values(), key=lambda n: n.node_id)
        if not request.include_unschedulable:
            nodes = [n for n in nodes if not (n.draining or n.quarantined)]
        return nodes_pb2.ListNodesResponse(
            nodes=nodes,
            reservations=[mapping.reservation_message(r) for r in self._view.active_reservations()],
            view_revision=self._members.revision,
            quarantines=[quarantine_message(n, q) for n, q in sorted(self._members.quarantined().items())],
        )

    async def ReserveNode(self, request, context):
        node_id, purpose, holder, ttl = mapping.reserve_request(request, self._view.settings.max_reservation_seconds)
        if node_id not in self._members.values():
            raise NotFound(f"node {node_id} is not a member")
        reservation, current = await self._reservations.reserve(node_id, purpose, holder, ttl, request.epoch)
        self._view.reservations = current
        return nodes_pb2.ReserveNodeResponse(reservation=mapping.reservation_message(reservation))

    async def ReleaseNode(self, request, context):
        node_id, holder = mapping.release_request(request)
        released, current = await self._reservations.release(node_id, holder, request.epoch)
        self._view.reservations = current
        return nodes_pb2.ReleaseNodeResponse(released=released)

    async def QuarantineNode(self, request, context):
        settings = self._view.settings
        node_id, reason, seconds = mapping.quarantine_request(
            request, settings.quarantine_seconds, settings.max_quarantine_seconds
        )
        record = await self._quarantines.quarantine(node_id, reason, seconds, _who())
        return nodes_pb2.QuarantineNodeResponse(quarantine=quarantine_message(node_id, record))

    async def LiftQuarantine(self, request, context):
        node_id = mapping.lift_request(request)
        return nodes_pb2.LiftQuarantineResponse(lifted=await self._quarantines.lift(node_id, _who()))


def _who() -> str:
    """Who asks, from the caller's certificate ("" on an insecure cluster)."""
    identity = caller()
    return str(identity) if identity is not None else ""
