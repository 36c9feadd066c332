"""Helpers for the state repository tests."""

from __future__ import annotations

from ringrift_state.adapters.sql import SqlStateRepository


async def claim_until(repository: SqlStateRepository, epoch: int, leader_id: str = "leader") -> None:
    """Terms come and go until ``epoch`` is the current one (each claim by a new election key
    issues the next epoch), the last one claimed by ``leader_id``."""
    current = (await repository.get_epoch()).epoch
    for term in range(current + 1, epoch + 1):
        await repository.claim_epoch(f"key-{term}", leader_id if term == epoch else f"leader-{term}")
