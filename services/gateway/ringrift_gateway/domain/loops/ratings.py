"""EloSync (BEHAVIOUR.md, Background loops): refit ratings from every stored match."""

from __future__ import annotations

from typing import Protocol


class RatingFitter(Protocol):
    async def fit_ratings(self, epoch: int) -> None: ...


class EloSync:
    def __init__(self, fitter: RatingFitter) -> None:
        self._fitter = fitter

    async def __call__(self, epoch: int) -> None:
        await self._fitter.fit_ratings(epoch)
