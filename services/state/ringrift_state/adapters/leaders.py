"""The election as StateService checks it before issuing an epoch: the lowest key under
/ringrift/<cluster>/leader/ and the candidate its value names. One etcd client, kept
between claims (a claim is on the handover's critical path)."""

from __future__ import annotations

import json

import aetcd

from ringrift_runtime.aio import quietly
from ringrift_runtime.cluster.etcd import TRANSIENT_ERRORS, Keyspace, make_client
from ringrift_runtime.errors import DependencyUnavailable
from ringrift_runtime.settings import EtcdSettings


class EtcdLeaderKeys:
    def __init__(self, settings: EtcdSettings) -> None:
        self._settings = settings
        self._keyspace = Keyspace(settings.cluster_name)
        self._client: aetcd.Client | None = None
        self._attempt = 0

    async def lowest(self) -> tuple[str, str] | None:
        if self._client is None:
            self._client = make_client(self._settings, self._attempt)
        try:
            listing = await self._client.get_prefix(self._keyspace.leader, sort_order="ascend", sort_target="create")
        except TRANSIENT_ERRORS as exc:
            await self.close()  # the next claim connects again (to the next endpoint)
            self._attempt += 1
            raise DependencyUnavailable(f"cannot read the election from etcd ({type(exc).__name__})") from None
        if not listing:
            return None
        first = listing[0]
        key = first.key[len(self._keyspace.leader) :].decode(errors="replace")
        try:
            candidate = str(json.loads(first.value).get("candidate", ""))
        except (ValueError, AttributeError):
            candidate = ""
        return key, candidate

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await quietly(client.close())
