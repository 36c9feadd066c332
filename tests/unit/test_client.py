"""ringrift_client without a server: contexts from config files, errors decoded from what
the servers send, and one typed method per gateway RPC (sync and asyncio)."""

from __future__ import annotations

import inspect
from pathlib import Path

import grpc
import pytest

from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_client import AsyncClient, Client, ConfigError, Context, InvalidArgument, NotFound, load_context
from ringrift_client.config import context_file
from ringrift_client.errors import RingriftError, error_from
from ringrift_client.methods import AsyncMethods, Methods, _request
from ringrift_runtime import errors
from ringrift_runtime.grpc.status import rich_status, trailing_metadata_for

CONFIG = """
current-context = "local"

[contexts.local]
address = "127.0.0.1:50050"
ca = "certs/ca.pem"
cert = "certs/me.pem"
key = "certs/me-key.pem"
server-name = "gateway.local.ringrift"

[contexts.prod]
address = "gw.example.com:50049"
ca = "/etc/ringrift/ca.pem"
token-file = "token"
"""


def test_contexts_come_from_the_config_file_with_paths_beside_it(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(CONFIG)
    (tmp_path / "token").write_text("secret-token\n")
    local = load_context(config=tmp_path / "config.toml")
    assert local == Context(
        "127.0.0.1:50050",
        tmp_path / "certs/ca.pem",
        tmp_path / "certs/me.pem",
        tmp_path / "certs/me-key.pem",
        server_name="gateway.local.ringrift",
    )
    prod = load_context("prod", tmp_path / "config.toml")
    assert prod.token == "secret-token" and prod.ca == Path("/etc/ringrift/ca.pem") and prod.cert is None
    # What `ringrift up` writes reads back as the same context.
    (tmp_path / "again.toml").write_text(context_file("local", local, relative_to=tmp_path))
    assert "certs/ca.pem" in (tmp_path / "again.toml").read_text()
    assert load_context(config=tmp_path / "again.toml") == local


@pytest.mark.parametrize(
    ("text", "name", "says"),
    [
        (CONFIG, "staging", "no context 'staging'"),
        ('[contexts.a]\naddress = "h:1"\n', "", "sets no current-context"),
        ('current-context = "a"\n[contexts.a]\naddress = "h:1"\ncertificate = "x"\n', "", "unknown keys certificate"),
        ("current-context = [", "", "cannot read the client config"),
    ],
)
def test_a_bad_config_says_what_to_fix(tmp_path: Path, text: str, name: str, says: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_context(name, tmp_path / "config.toml")
    with pytest.raises(ConfigError, match="no client config at"):
        load_context(config=tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"address": "h:1", "ca": "ca.pem"}, "credentials are needed"),
        ({"address": "h:1", "cert": "c.pem", "key": "k.pem"}, "CA certificate is needed"),
        ({"address": "h:1", "ca": "ca.pem", "token": "t", "cert": "c.pem", "key": "k.pem"}, "either a token"),
    ],
)
def test_connect_refuses_incomplete_credentials(arguments: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Client.connect(**arguments)


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, trailing=()) -> None:
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self):
        return self._trailing


def test_errors_carry_the_status_the_reason_and_every_named_field() -> None:
    refused = errors.InvalidArgument(
        [errors.FieldViolation("jobs[3].spec.kind", "unknown job kind"), errors.FieldViolation("x", "y")]
    )
    status = rich_status(grpc.StatusCode.INVALID_ARGUMENT, refused.message, refused)  # as every server sends it
    error = error_from(_Failed(grpc.StatusCode.INVALID_ARGUMENT, refused.message, trailing_metadata_for(status)))
    assert isinstance(error, InvalidArgument) and isinstance(error, RingriftError)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT and error.fields == ["jobs[3].spec.kind", "x"]
    assert error.violations[0].description == "unknown job kind" and error.reason == "INVALID_FIELD"
    missing = error_from(_Failed(grpc.StatusCode.NOT_FOUND, "no job 'J1'"))  # no details: still typed
    assert isinstance(missing, NotFound) and missing.fields == [] and str(missing) == "NOT_FOUND: no job 'J1'"
    odd = error_from(_Failed(grpc.StatusCode.DATA_LOSS, "lost", (("grpc-status-details-bin", b"\xff\x00"),)))
    assert type(odd) is RingriftError and odd.code is grpc.StatusCode.DATA_LOSS


def test_every_gateway_rpc_is_a_typed_method_sync_and_async() -> None:
    service = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"]
    for method in service.methods:
        name = "".join(f"_{c.lower()}" if c.isupper() else c for c in method.name).lstrip("_")
        sync, asynchronous = getattr(Methods, name), getattr(AsyncMethods, name)
        assert method.name in inspect.getsource(sync)
        assert inspect.iscoroutinefunction(asynchronous) != method.server_streaming, method.name
        assert method.input_type.name in str(inspect.signature(sync).parameters["request"].annotation)
    assert issubclass(Client, Methods) and issubclass(AsyncClient, AsyncMethods)
    assert _request(orchestrator_pb2.GetJobRequest, None, {"job_id": "J1"}).job_id == "J1"
    with pytest.raises(TypeError, match="not both"):
        _request(orchestrator_pb2.GetJobRequest, orchestrator_pb2.GetJobRequest(), {"job_id": "J1"})
    with pytest.raises(TypeError, match="expected GetJobRequest"):
        _request(orchestrator_pb2.GetJobRequest, orchestrator_pb2.ListJobsRequest(), {})
