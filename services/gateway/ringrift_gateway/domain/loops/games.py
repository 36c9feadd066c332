"""GameCounter (BEHAVIOUR.md, Background loops): add the games of every self-play job
that succeeded to its config's statistics, with the CPU seconds the job used (the cost
of a game the scheduler weighs), once per job (idempotent by job), resuming from a
stored cursor over the event log. A job whose result is malformed, a count StateService
refuses or a cursor that is not a number is skipped and reported (RECORD_SKIPPED), never
retried forever."""

from __future__ import annotations

import json
from typing import Any, Protocol

from ringrift_gateway.domain.ports import VersionedValue
from ringrift_runtime.errors import InvalidArgument
from ringrift_runtime.skipped import MalformedRecord, SkippedRecords

CURSOR = ("pipeline", "games-cursor")
PAGE = 1000  # events read a round; the cursor moves on by what was read


class GameEvents(Protocol):
    async def load_state(self, namespace: str, key: str) -> VersionedValue: ...

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int: ...

    async def event_page(self, after: int, types: list[str], limit: int) -> list[Any]: ...

    async def add_games(self, config_key: str, games: int, cpu_seconds: float, job_id: str, epoch: int) -> None: ...


class GameResults(Protocol):
    async def selfplay_games(self, job_id: str) -> tuple[str, int, float]:
        """(config, games, CPU seconds of the attempt that played them; 0 when unknown).
        Raises MalformedRecord when the job's result cannot be read as games."""
        ...


class GameCounter:
    def __init__(self, state: GameEvents, jobs: GameResults, skipped: SkippedRecords | None = None) -> None:
        self._state = state
        self._jobs = jobs
        self.skipped = skipped or SkippedRecords("gateway")

    async def __call__(self, epoch: int) -> int:
        """Games added this round."""
        stored = await self._state.load_state(*CURSOR)
        after = await self._cursor(stored.value) if stored.found else 0
        cursor, added = after, 0
        for event in await self._state.event_page(after, ["JOB_SUCCEEDED"], PAGE):
            cursor = event.sequence
            if event.attributes.get("kind") != "selfplay":
                continue
            try:
                config, games, cpu_seconds = await self._jobs.selfplay_games(event.subject)
                if games:
                    await self._state.add_games(config, games, cpu_seconds, event.subject, epoch)
                    added += games
            except (MalformedRecord, InvalidArgument) as exc:
                await self.skipped.skip("selfplay_result", event.subject, str(exc))
        if cursor != after:
            await self._state.persist_state(*CURSOR, json.dumps(cursor).encode(), stored.version, epoch)
        return added

    async def _cursor(self, value: bytes) -> int:
        """The stored cursor; 0 (every job again: counting is idempotent per job) when it
        is not a sequence number."""
        try:
            cursor = json.loads(value or b"0")
            if isinstance(cursor, int) and not isinstance(cursor, bool) and cursor >= 0:
                return cursor
            reason = "not a sequence number"
        except ValueError:
            reason = "not JSON"
        await self.skipped.skip("cursor", "/".join(CURSOR), f"{reason}; counting again from the start")
        return 0
