"""The benchmarks' clusters, secure (mutual TLS, the default) or plaintext
(security.insecure), built the same way so one figure can be set beside the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime.cluster.etcd import ETCD_IDENTITY
from ringrift_runtime.local.etcd import COMPACTION_ARGS, EtcdServer
from ringrift_runtime.security.identity import Identity, agent, gateway, service
from ringrift_runtime.settings import EtcdSettings
from ringrift_runtime.testing.election import hold_leader_key
from ringrift_runtime.testing.pki import TestPki

CLUSTER = "bench"


class BenchSecurity:
    def __init__(self, root: Path, secure: bool) -> None:
        self.secure = secure
        self.pki = TestPki(root / "pki", cluster=CLUSTER) if secure else None

    @property
    def label(self) -> str:
        return "mutual TLS" if self.secure else "plaintext"

    def etcd(self, root: Path, compaction: tuple[str, ...] = COMPACTION_ARGS) -> EtcdServer:
        if self.pki is None:
            return EtcdServer(root, compaction=compaction)
        return EtcdServer(
            root,
            tls=self.pki.files(service(ETCD_IDENTITY, CLUSTER)),
            client=self.pki.files(self.pki.admin()),
            compaction=compaction,
        )

    def etcd_settings(self, etcd: EtcdServer) -> EtcdSettings:
        if self.pki is None:
            return EtcdSettings(endpoints=[etcd.endpoint], cluster_name=CLUSTER, insecure=True)
        return self.pki.etcd_settings(etcd.endpoint)

    def env(self, identity: Identity) -> dict[str, str]:
        """RINGRIFT_* security variables of a process with this identity."""
        if self.pki is None:
            return {"RINGRIFT_SECURITY__INSECURE": "true", "RINGRIFT_ETCD__CLUSTER_NAME": CLUSTER}
        return self.pki.env(identity)

    def settings(self, identity: Identity) -> dict[str, Any]:
        """The ``security`` section of in-process settings."""
        return {"insecure": True} if self.pki is None else self.pki.security(identity)

    def channel(self, address: str, server: Identity, caller: Identity) -> grpc.aio.Channel:
        if self.pki is None:
            return grpc.aio.insecure_channel(address)
        return self.pki.channel(address, server, caller)  # type: ignore[return-value]

    async def issue_epoch(self, etcd: EtcdServer, state_address: str) -> int:
        """Lead without a gateway: hold the lowest election key and claim its epoch."""
        key, _ = await hold_leader_key(self.etcd_settings(etcd), "bench-leader", ttl=3600)
        channel = self.channel(state_address, service("state", CLUSTER), gateway("bench-leader", CLUSTER))
        async with channel:
            stub = state_pb2_grpc.StateServiceStub(channel)
            return (await stub.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=key), timeout=10)).epoch


__all__ = ["CLUSTER", "BenchSecurity", "agent", "gateway", "service"]
