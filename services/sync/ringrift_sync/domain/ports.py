"""What SyncPlanner needs from the cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from ringrift_sync.domain.planner import NodeFiles, Transfer


class AgentFiles(Protocol):
    """The agents: their manifests, and pulls between them."""

    async def manifest(self, node_id: str, timeout: float) -> NodeFiles: ...

    def pull(self, transfer: Transfer, max_bytes_per_second: int, epoch: int) -> AsyncIterator[int]:
        """Bytes done so far, a few times a second, until the target holds the file."""
        ...


class SyncRecords(Protocol):
    """StateService: transfer records, events, the best model of a config."""

    async def record(self, plan_id: str, updates: list[tuple[Transfer, str, int, str]], epoch: int) -> None: ...

    async def publish(
        self, event_type: str, subject: str, config_key: str, attributes: dict[str, Any], epoch: int, key: str
    ) -> None: ...

    async def best_model(self, config_key: str) -> Any:
        """The config's best model (``.sha256``, ``.path``, ...), or None."""
        ...


class Trainers(Protocol):
    """Where a config trains: the best training nodes, preferring the given holders."""

    async def best(self, config_key: str, prefer: list[str]) -> list[str]: ...
