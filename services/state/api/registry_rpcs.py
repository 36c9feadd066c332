"""StateService RPCs for nodes seen, models, matches, ratings, per-config statistics and
sync transfers: validate -> registry -> encode."""

from __future__ import annotations

import re

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2
from ringrift_runtime.validation import Validator

ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$")
MAX_ITEMS, DEFAULT_PAGE, MAX_PAGE = 1000, 100, 1000
MODEL_STATUSES = frozenset(common_pb2.ModelStatus.values()) - {common_pb2.MODEL_STATUS_UNSPECIFIED}
TRANSFER_STATES = frozenset(state_pb2.TransferState.values()) - {state_pb2.TRANSFER_STATE_UNSPECIFIED}
MAX_CONFIG_KEYS = 1000


def _items(check: Validator, field: str, items) -> None:
    check.check(field, len(items) <= MAX_ITEMS, f"at most {MAX_ITEMS} entries")


def _page(check: Validator, page: common_pb2.PageRequest) -> int:
    size = page.page_size or DEFAULT_PAGE
    check.check("page.page_size", size <= MAX_PAGE, f"must be at most {MAX_PAGE}")
    check.check("page.page_token", not page.page_token or bool(ID.match(page.page_token)), "is not a page token")
    return size


class RegistryRpcs:
    """Mixed into StateServicer; ``self._registry`` is a SqlRegistry."""

    _registry = None

    async def RecordNodes(self, request, context):
        check = Validator()
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
        check = Validator()
        model = request.model
        check.check("model", request.HasField("model"), "is required")
        check.config_key("model.config_key", model.config_key)
        check.check("model.model_id", not model.model_id or bool(ID.match(model.model_id)), "letters, digits, '.', '-', '_'")
        check.check("model.sha256", bool(re.fullmatch(r"[0-9a-f]{64}", model.sha256)), "must be a hex sha256")
        check.require("model.path", model.path, "is required (relative to a data directory)")
        check.raise_if_invalid()
        return state_pb2.RegisterModelResponse(model=await self._registry.register_model(model, request.epoch))

    async def SetModelStatus(self, request, context):
        check = Validator()
        check.check("model_id", bool(ID.match(request.model_id)), "is required")
        check.check("status", request.status in MODEL_STATUSES, "must be a model status other than UNSPECIFIED")
        if request.status in (common_pb2.MODEL_STATUS_REJECTED, common_pb2.MODEL_STATUS_ARCHIVED):
            check.require("reason", request.reason, "is required when rejecting or archiving")
        check.raise_if_invalid()
        model, previous = await self._registry.set_model_status(request.model_id, request.status, request.reason, request.epoch)
        return state_pb2.SetModelStatusResponse(model=model, previous_best_model_id=previous)

    async def ListModels(self, request, context):
        check = Validator()
        check.config_key("config_key", request.config_key, required=False)
        for index, status in enumerate(request.statuses):
            check.check(f"statuses[{index}]", status in MODEL_STATUSES, "unknown model status")
        size = _page(check, request.page)
        check.raise_if_invalid()
        found, best, token = await self._registry.list_models(request.config_key, list(request.statuses), size, request.page.page_token)
        return state_pb2.ListModelsResponse(models=found, best_model_by_config=best, next_page_token=token)

    async def GetBestModels(self, request, context):
        check = Validator()
        check.check("config_keys", len(request.config_keys) <= MAX_CONFIG_KEYS, f"at most {MAX_CONFIG_KEYS} keys")
        for index, key in enumerate(request.config_keys):
            check.config_key(f"config_keys[{index}]", key)
        check.raise_if_invalid()
        return state_pb2.GetBestModelsResponse(models=await self._registry.best_models(sorted(set(request.config_keys))))

    async def RecordMatches(self, request, context):
        check = Validator()
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
        check = Validator()
        check.config_key("config_key", request.config_key)
        check.raise_if_invalid()
        return state_pb2.ListMatchesResponse(matches=await self._registry.list_matches(request.config_key))

    async def PutRatings(self, request, context):
        check = Validator()
        check.config_key("config_key", request.config_key)
        _items(check, "ratings", request.ratings)
        for index, rating in enumerate(request.ratings):
            check.require(f"ratings[{index}].player", rating.player)
        check.raise_if_invalid()
        await self._registry.put_ratings(request.config_key, list(request.ratings), request.epoch)
        return state_pb2.PutRatingsResponse()

    async def ListRatings(self, request, context):
        check = Validator()
        check.config_key("config_key", request.config_key, required=False)
        check.raise_if_invalid()
        return state_pb2.ListRatingsResponse(ratings=await self._registry.list_ratings(request.config_key, request.include_history))

    async def UpdateConfigStats(self, request, context):
        check = Validator()
        check.config_key("config_key", request.config_key)
        check.check("add_games", request.add_games <= 10_000_000, "at most 10,000,000 per update")
        check.max_length("idempotency_key", request.idempotency_key, 256)
        check.raise_if_invalid()
        return state_pb2.UpdateConfigStatsResponse(stats=await self._registry.update_config_stats(request))

    async def ListConfigStats(self, request, context):
        return state_pb2.ListConfigStatsResponse(stats=await self._registry.list_config_stats())

    async def RecordSyncTransfers(self, request, context):
        check = Validator()
        _items(check, "transfers", request.transfers)
        for index, transfer in enumerate(request.transfers):
            check.check(f"transfers[{index}].transfer_id", bool(ID.match(transfer.transfer_id)), "is required")
            check.check(f"transfers[{index}].plan_id", bool(ID.match(transfer.plan_id)), "is required")
            check.check(f"transfers[{index}].state", transfer.state in TRANSFER_STATES, "unknown transfer state")
        check.raise_if_invalid()
        count = await self._registry.record_transfers(list(request.transfers), request.epoch)
        return state_pb2.RecordSyncTransfersResponse(recorded=count)

    async def ListSyncTransfers(self, request, context):
        check = Validator()
        for index, state in enumerate(request.states):
            check.check(f"states[{index}]", state in TRANSFER_STATES, "unknown transfer state")
        size = _page(check, request.page)
        check.raise_if_invalid()
        found, token = await self._registry.list_transfers(request.plan_id, list(request.states), size, request.page.page_token)
        return state_pb2.ListSyncTransfersResponse(transfers=found, next_page_token=token)
