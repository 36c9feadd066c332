"""StateService RPCs for nodes seen, models, matches, ratings, per-config statistics and
sync transfers: validate -> registry -> encode."""

from __future__ import annotations

import math

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2
from ringrift_contracts.check import Check
from ringrift_contracts.limits import MAX_BATCH
from ringrift_contracts.tables import MODEL_STATUSES, TRANSFER_STATES


def _items(check: Check, field: str, items) -> None:
    check.check(field, len(items) <= MAX_BATCH, f"at most {MAX_BATCH} entries")


def _page(check: Check, page: common_pb2.PageRequest) -> int:
    return check.page("page", page.page_size, page.page_token)


class RegistryRpcs:
    """Mixed into StateServicer; ``self._registry`` is a SqlRegistry."""

    _registry = None

    async def RecordNodes(self, request, context):
        check = Check()
        _items(check, "alive", request.alive)
        for index, node in enumerate(request.alive):
            check.node_id(f"alive[{index}].node_id", node.node_id)
        for index, node_id in enumerate(request.departed_node_ids):
            check.node_id(f"departed_node_ids[{index}]", node_id)
        check.raise_if_invalid()
        count = await self._registry.record_nodes(list(request.alive), list(request.departed_node_ids), request.epoch)
        return state_pb2.RecordNodesResponse(recorded=count)

    async def ListNodesSeen(self, request, context):
        return state_pb2.ListNodesSeenResponse(nodes=await self._registry.nodes(request.alive_only))

    async def RegisterModel(self, request, context):
        check = Check()
        model = request.model
        check.check("model", request.HasField("model"), "is required")
        check.config_key("model.config_key", model.config_key)
        check.record_id("model.model_id", model.model_id, required=False)
        check.sha256("model.sha256", model.sha256)
        check.require("model.path", model.path, "is required (relative to a data directory)")
        check.raise_if_invalid()
        return state_pb2.RegisterModelResponse(model=await self._registry.register_model(model, request.epoch))

    async def SetModelStatus(self, request, context):
        check = Check()
        check.record_id("model_id", request.model_id)
        check.check("status", MODEL_STATUSES.known(request.status), "must be a model status other than UNSPECIFIED")
        if request.status in (common_pb2.MODEL_STATUS_REJECTED, common_pb2.MODEL_STATUS_ARCHIVED):
            check.require("reason", request.reason, "is required when rejecting or archiving")
        check.raise_if_invalid()
        model, previous = await self._registry.set_model_status(
            request.model_id, request.status, request.reason, request.epoch
        )
        return state_pb2.SetModelStatusResponse(model=model, previous_best_model_id=previous)

    async def ListModels(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key, required=False)
        for index, status in enumerate(request.statuses):
            check.check(f"statuses[{index}]", MODEL_STATUSES.known(status), "unknown model status")
        size = _page(check, request.page)
        check.raise_if_invalid()
        found, best, token = await self._registry.list_models(
            request.config_key, list(request.statuses), size, request.page.page_token
        )
        return state_pb2.ListModelsResponse(models=found, best_model_by_config=best, next_page_token=token)

    async def GetBestModels(self, request, context):
        check = Check()
        check.check("config_keys", len(request.config_keys) <= MAX_BATCH, f"at most {MAX_BATCH} keys")
        for index, key in enumerate(request.config_keys):
            check.config_key(f"config_keys[{index}]", key)
        check.raise_if_invalid()
        return state_pb2.GetBestModelsResponse(
            models=await self._registry.best_models(sorted(set(request.config_keys)))
        )

    async def RecordMatches(self, request, context):
        check = Check()
        _items(check, "matches", request.matches)
        for index, match in enumerate(request.matches):
            check.config_key(f"matches[{index}].config_key", match.config_key)
            check.require(f"matches[{index}].player_a", match.player_a)
            check.require(f"matches[{index}].player_b", match.player_b)
        check.max_length("idempotency_key", request.idempotency_key, 256)
        check.raise_if_invalid()
        count = await self._registry.record_matches(list(request.matches), request.idempotency_key, request.epoch)
        return state_pb2.RecordMatchesResponse(recorded=count)

    async def ListMatches(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key)
        check.raise_if_invalid()
        return state_pb2.ListMatchesResponse(matches=await self._registry.list_matches(request.config_key))

    async def PutRatings(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key)
        _items(check, "ratings", request.ratings)
        for index, rating in enumerate(request.ratings):
            check.require(f"ratings[{index}].player", rating.player)
        check.raise_if_invalid()
        await self._registry.put_ratings(request.config_key, list(request.ratings), request.epoch)
        return state_pb2.PutRatingsResponse()

    async def ListRatings(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key, required=False)
        check.raise_if_invalid()
        return state_pb2.ListRatingsResponse(
            ratings=await self._registry.list_ratings(request.config_key, request.include_history)
        )

    async def UpdateConfigStats(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key)
        check.check("add_games", request.add_games <= 10_000_000, "at most 10,000,000 per update")
        cpu = request.add_cpu_seconds
        check.check("add_cpu_seconds", math.isfinite(cpu) and 0 <= cpu <= 1e9, "must be between 0 and 1e9")
        check.max_length("idempotency_key", request.idempotency_key, 256)
        check.raise_if_invalid()
        return state_pb2.UpdateConfigStatsResponse(stats=await self._registry.update_config_stats(request))

    async def ListConfigStats(self, request, context):
        return state_pb2.ListConfigStatsResponse(stats=await self._registry.list_config_stats())

    async def RecordSyncTransfers(self, request, context):
        check = Check()
        _items(check, "transfers", request.transfers)
        for index, transfer in enumerate(request.transfers):
            check.record_id(f"transfers[{index}].transfer_id", transfer.transfer_id)
            check.record_id(f"transfers[{index}].plan_id", transfer.plan_id)
            check.check(f"transfers[{index}].state", TRANSFER_STATES.known(transfer.state), "unknown transfer state")
        check.raise_if_invalid()
        count = await self._registry.record_transfers(list(request.transfers), request.epoch)
        return state_pb2.RecordSyncTransfersResponse(recorded=count)

    async def ListSyncTransfers(self, request, context):
        check = Check()
        for index, state in enumerate(request.states):
            check.check(f"states[{index}]", TRANSFER_STATES.known(state), "unknown transfer state")
        size = _page(check, request.page)
        check.raise_if_invalid()
        found, token = await self._registry.list_transfers(
            request.plan_id, list(request.states), size, request.page.page_token
        )
        return state_pb2.ListSyncTransfersResponse(transfers=found, next_page_token=token)
