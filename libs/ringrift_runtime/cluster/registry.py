"""Service registry: every control-plane process registers its endpoint under
/ringrift/<cluster>/services/<service>/<instance> with its own lease."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2
from ringrift_runtime import __version__
from ringrift_runtime.cluster.cache import PrefixCache
from ringrift_runtime.cluster.etcd import Keyspace
from ringrift_runtime.cluster.leased import LeasedKey
from ringrift_runtime.settings import EtcdSettings


class ServiceEndpointRegistration:
    def __init__(self, settings: EtcdSettings, service: str, bound) -> None:
        endpoint = common_pb2.ServiceEndpoint(
            service=service,
            instance_id=bound.instance,
            address=bound.address,
            version=__version__,
            metrics_address=f"{bound.host}:{bound.metrics_port}" if bound.metrics_port else "",
        )
        payload = endpoint.SerializeToString()

        async def value() -> bytes:
            return payload

        self._leased = LeasedKey(
            settings, Keyspace(settings.cluster_name).service(service, bound.instance), value, f"service-{service}"
        )

    async def start(self) -> None:
        await self._leased.start()

    async def stop(self) -> None:
        await self._leased.stop()


def _decode_endpoint(name: str, raw: bytes) -> common_pb2.ServiceEndpoint | None:
    try:
        return common_pb2.ServiceEndpoint.FromString(raw)
    except Exception:
        return None


def control_plane_cache(settings: EtcdSettings) -> PrefixCache[common_pb2.ServiceEndpoint]:
    """Watched view of every registered control-plane endpoint ("<service>/<instance>")."""
    return PrefixCache(settings, Keyspace(settings.cluster_name).services, _decode_endpoint, "services")
