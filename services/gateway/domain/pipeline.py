"""The leader's pipeline loops (BEHAVIOUR.md, Background loops): keep every self-play
node at its target with weighted config picks, count the games of finished self-play
jobs, ask the TrainingCoordinator to train every ready config, and refit ratings.

Each is one fenced round that the LoopManager repeats (QueuePopulator, GameCounter,
TrainingTrigger, EloSync): it runs only while this replica leads, with its epoch."""

from __future__ import annotations

import json
import logging
import random

log = logging.getLogger("ringrift.gateway.pipeline")
GAMES_CURSOR = ("pipeline", "games-cursor")
INTENTS = "intents"  # written by any gateway replica (ringrift_gateway.adapters.facade)


def selfplay_members(members) -> dict:
    """The members (PrefixCache[NodeInfo]) that take self-play work: neither draining nor
    quarantined, and running selfplay jobs (an agent that lists no kinds runs any)."""
    return {
        node_id: node for node_id, node in members.values().items()
        if not (node.draining or node.quarantined) and (not node.job_kinds or "selfplay" in node.job_kinds)
    }


class PipelineLoops:
    def __init__(self, client, state, members, configs: list[str], games_per_job: int, temperature: float,
                 max_top_up: int) -> None:
        self._client = client  # PipelineClient
        self._state = state  # StateClient (the games cursor)
        self._members = members  # PrefixCache[NodeInfo]
        self._configs = configs
        self._games_per_job = games_per_job
        self._temperature = temperature
        self._max_top_up = max_top_up
        self._rng = random.Random()

    def _selfplay_nodes(self) -> list[str]:
        return sorted(selfplay_members(self._members))

    async def populate_queue(self, epoch: int, only: list[str] | None = None) -> int:
        """Top every self-play node (or the ``only`` ones) up to its target (at most
        ``max_top_up`` new jobs per node per cycle), each job's config drawn by the
        scheduler for that node."""
        active = await self._client.active_selfplay_by_node()
        models = await self._client.best_model_paths()
        jobs = []
        for node_id in self._selfplay_nodes():
            if only is not None and node_id not in only:
                continue
            target = await self._client.target(node_id)
            for _ in range(max(0, min(target - active.get(node_id, 0), self._max_top_up))):
                config = await self._client.pick(node_id, self._rng.getrandbits(62) or 1)
                if not config:
                    break
                params = {"games": self._games_per_job, "temperature": self._temperature}
                if config in models:
                    params["model"] = models[config]
                jobs.append((node_id, config, params))
        submitted = await self._client.submit_selfplay(jobs)
        if submitted:
            log.info("queued %d self-play jobs", submitted)
        return submitted

    async def count_games(self, epoch: int) -> int:
        """Add the games of self-play jobs that succeeded since the stored cursor to their
        config's statistics (idempotent per job), then move the cursor."""
        stored = await self._state.load_state(*GAMES_CURSOR)
        after = json.loads(stored.value or b"0") if stored.found else 0
        finished, cursor = await self._client.succeeded_selfplay(after)
        for job_id, config, games in finished:
            if games:
                await self._client.add_games(config, games, job_id, epoch)
        if cursor != after:
            await self._state.persist_state(*GAMES_CURSOR, json.dumps(cursor).encode(), stored.version, epoch)
        return sum(g for _, _, g in finished)

    async def trigger_training(self, epoch: int) -> None:
        """Every config whose readiness allows it, and every operator request (an intent
        stored by any replica). A forced request stays until its run has started (a run
        already in progress makes it wait); an unforced one is what this loop does anyway."""
        for config in self._configs:
            intent = await self._state.load_state(INTENTS, f"train/{config}")
            requested = json.loads(intent.value) if intent.found and intent.value else None
            reply = await self._client.trigger_training(config, epoch, bool(requested and requested.get("force")))
            if reply.started:
                log.info("training started for %s: run %s%s", config, reply.run.run_id,
                         " (requested by an operator)" if requested else "")
            if requested and (reply.started or not requested.get("force")):
                await self._state.persist_state(INTENTS, f"train/{config}", b"", intent.version, epoch)

    async def fit_ratings(self, epoch: int) -> None:
        await self._client.fit_ratings(epoch)
