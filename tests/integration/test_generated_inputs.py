"""Every unary method of every service, driven with generated inputs (hypothesis, from the
request descriptors: huge and odd strings and bytes, extreme numbers, NaN, unknown enum
values, nested messages, lists and maps) as an identity the authorization table allows,
against the processes of `ringrift up`. Only the answers a client can act on are
accepted (OK, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, OUT_OF_RANGE,
PERMISSION_DENIED, UNAUTHENTICATED, RESOURCE_EXHAUSTED); a refusal's message stays short
and its metadata under 8 KiB; every process still answers its health check after."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ringrift_cli.local_cluster import CERTS_DIR, LOCAL_HOSTS
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS, service_descriptors
from ringrift_runtime.security.directory import CertificateDirectory
from ringrift_runtime.security.identity import Identity, Role, agent, any_gateway, service, user
from ringrift_runtime.security.tls import channel_credentials
from tests.callers import allowed_identity
from tests.integration.local_up import local_cluster

pytestmark = pytest.mark.integrations

CLUSTER = "local"
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
MAX_DETAILS = 1200  # the bounded message (status.MAX_MESSAGE) and its marker
MAX_METADATA = 8 * 1024
ODD_TEXT = ["", " ", "../../etc/passwd", "\x00", "a\nb", "\u202eevil", "é" * 3000, "x" * 70_000, "J" + "0" * 25]
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=40))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=40), st.sampled_from([b"\xff" * 70_000, b"\x00"]))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e300]), st.floats(width=32))
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 1000)  # open enums: unknown values arrive as numbers
    low, high = INT_RANGES[kind]
    return st.one_of(st.sampled_from([low, high, 0, 1, -1 if low < 0 else 2]), st.integers(low, high))


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            value_strategy = message_strategy(value.message_type, depth + 1) if value.message_type else _scalar(value)
            fields[field.name] = st.dictionaries(_scalar(key), value_strategy, max_size=3)
        elif field.message_type is not None:
            if depth >= 2 or field.message_type.full_name.startswith("google.protobuf."):
                continue
            inner = message_strategy(field.message_type, depth + 1)
            fields[field.name] = st.lists(inner, max_size=3) if _repeated(field) else inner
        else:
            fields[field.name] = st.lists(_scalar(field), max_size=3) if _repeated(field) else _scalar(field)

    def build(values: dict[str, Any]) -> Any:
        message = cls()
        for name, value in values.items():
            target = getattr(message, name)
            if isinstance(value, dict):
                for key, item in value.items():
                    if hasattr(item, "DESCRIPTOR"):
                        target[key].CopyFrom(item)
                    else:
                        target[key] = item
            elif isinstance(value, list):
                for item in value:
                    target.add().CopyFrom(item) if hasattr(item, "DESCRIPTOR") else target.append(item)
            elif hasattr(value, "DESCRIPTOR"):
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def unary_methods() -> list[tuple[str, MethodDescriptor]]:
    """(process, method) for every unary method of every service, in a stable order."""
    by_service = {full: process for process, full in SERVICE_BY_PROCESS.items()}
    return [
        (by_service[full], method)
        for full, descriptor in sorted(service_descriptors().items())
        for method in descriptor.methods
        if not method.client_streaming and not method.server_streaming
    ]


class Callers:
    """Blocking mutual-TLS channels to each process, one per calling identity."""

    def __init__(self, directory: Path) -> None:
        description = json.loads((directory / "cluster.json").read_text())
        self.processes = {p["service"]: p["address"] for p in description["processes"] if p["name"] != "gateway-2"}
        self.node = next(p["name"] for p in description["processes"] if p["service"] == "agent")
        self._certs = CertificateDirectory(directory / CERTS_DIR)
        self._channels: dict[tuple[str, Identity], grpc.Channel] = {}

    def _server_name(self, process: str) -> str:
        if process == "gateway":
            return any_gateway(CLUSTER)
        if process == "agent":
            return agent(self.node, CLUSTER).dns
        return service(process, CLUSTER).dns

    def channel(self, process: str, caller: Identity) -> grpc.Channel:
        if (process, caller) not in self._channels:
            files = self._certs.ensure(caller, LOCAL_HOSTS)
            options = [("grpc.ssl_target_name_override", self._server_name(process))]
            self._channels[(process, caller)] = grpc.secure_channel(
                self.processes[process], channel_credentials(files), options=options
            )
        return self._channels[(process, caller)]

    def call(self, process: str, method: MethodDescriptor, request: Any) -> tuple[grpc.StatusCode, str, int]:
        full = f"{method.containing_service.full_name}/{method.name}"
        try:
            caller = allowed_identity(full, CLUSTER)
        except LookupError:  # a method nobody may call: the administrator is refused too
            caller = user("admin", Role.ADMIN, CLUSTER)
        stub = self.channel(process, caller).unary_unary(
            f"/{full}", request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b
        )
        try:
            stub(request, timeout=10)
        except grpc.RpcError as exc:
            trailing = exc.trailing_metadata() or ()
            size = sum(len(k) + len(v) for k, v in trailing) + len((exc.details() or "").encode())
            return exc.code(), exc.details() or "", size
        return grpc.StatusCode.OK, "", 0

    def healthy(self) -> dict[str, str]:
        answers = {}
        for process in self.processes:
            caller = allowed_identity("grpc.health.v1.Health/Check", CLUSTER)
            health = health_pb2_grpc.HealthStub(self.channel(process, caller))
            try:
                answers[process] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                    health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
                )
            except grpc.RpcError as exc:
                answers[process] = exc.code().name
        return answers

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


@pytest.fixture(scope="module")
def callers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callers]:
    directory = tmp_path_factory.mktemp("generated") / "cluster"
    with local_cluster(directory, 1):
        callers = Callers(directory)
        try:
            yield callers
        finally:
            callers.close()


METHODS = unary_methods()


def test_the_walk_covers_every_unary_method_of_every_service() -> None:
    processes = {process for process, _ in METHODS}
    assert processes == set(SERVICE_BY_PROCESS) and len(METHODS) > 90


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure here is reproducible
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as drawn (shrinking ~100 calls an example is slow)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_every_unary_method_answers_generated_input_clearly_and_stays_up(callers: Callers, data: st.DataObject) -> None:
    for process, method in METHODS:
        request = data.draw(message_strategy(method.input_type), label=f"{method.full_name}")
        code, details, metadata = callers.call(process, method, request)
        where = f"{method.containing_service.name}/{method.name}"
        assert code in ALLOWED, (where, code, details[:300])
        assert len(details) <= MAX_DETAILS, (where, len(details), details[:300])
        assert metadata <= MAX_METADATA, (where, metadata)
    assert set(callers.healthy().values()) == {"SERVING"}, callers.healthy()
