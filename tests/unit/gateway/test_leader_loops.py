"""The leader's periodic JobService calls: a failing dependency is retried next round,
only a stale epoch ends the term, and nothing runs once the lease is not confirmed."""

from __future__ import annotations

import asyncio

import pytest

from ringrift_gateway.domain.leader import LeaderDuties
from ringrift_runtime.cluster.election import Leadership
from ringrift_runtime.errors import NotLeader, RingriftError, StaleEpoch
from ringrift_runtime.settings import GatewaySettings


class Keeper:
    def __init__(self) -> None:
        self.alive = True

    def valid(self) -> bool:
        return self.alive


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def labels(self, outcome: str):
        counter = self

        class _Inc:
            def inc(self) -> None:
                counter.counts[outcome] = counter.counts.get(outcome, 0) + 1

        return _Inc()


def duties(acts: Counter) -> LeaderDuties:
    return LeaderDuties(None, None, None, "gw", GatewaySettings(), acts)


async def test_failures_are_retried_and_a_stale_epoch_ends_the_term() -> None:
    acts, calls = Counter(), []
    outcomes = [RingriftError("internal"), None, StaleEpoch(3, 5)]

    async def operation(epoch: int) -> None:
        calls.append(epoch)
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome

    leadership = Leadership(3, "gw", Keeper())
    with pytest.raises(StaleEpoch):
        await asyncio.wait_for(duties(acts)._every(leadership, "dispatch", 0.01, operation), 5)
    assert calls == [3, 3, 3] and leadership.deposed
    assert acts.counts == {"accepted": 1, "stale": 1}


async def test_nothing_runs_without_a_confirmed_lease() -> None:
    keeper, calls = Keeper(), []

    async def operation(epoch: int) -> None:
        calls.append(epoch)

    keeper.alive = False
    with pytest.raises(NotLeader):
        await duties(Counter())._every(Leadership(3, "gw", keeper), "reap", 0.01, operation)
    assert calls == []
