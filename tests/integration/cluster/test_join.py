"""A node on another machine joins with the gateway's token port, the CA fingerprint and a
one-time join token: the agent pins the CA, sends a request for its own key, gets its
certificate, registers and serves; the token joins one node once; a wrong fingerprint or a
token bound to another node is refused with a clear reason; and the certificate is renewed
before it expires without a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from cryptography import x509

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.security import pki as certificates
from ringrift_runtime.security.identity import Kind, agent, service
from ringrift_runtime.security.tokens import TokenStore
from tests.callers import gateway_client
from tests.integration.cluster.conftest import CLUSTER, PIPELINE_CATALOG, LocalCluster

CERT_SECONDS = 12  # short, so the test sees a renewal


async def _gateway(cluster: LocalCluster):
    await cluster.start_state()
    await cluster.start(
        "gateway",
        "gw-a",
        RINGRIFT_SECURITY__TOKENS_FILE=str(cluster.tokens_file),
        RINGRIFT_SECURITY__TOKEN_PORT="0",
        RINGRIFT_SECURITY__CA_KEY_FILE=str(cluster.pki.ca_key_file),
        RINGRIFT_SECURITY__ISSUED_CERT_SECONDS=str(CERT_SECONDS),
    )
    await cluster.wait_for_leader()
    return cluster.processes["gw-a"]


def _joining_agent(cluster: LocalCluster, node_id: str, token: str, fingerprint: str, port: int) -> ServiceProcess:
    """An agent with no certificate at all: only where to join and where to keep its files."""
    home = cluster.root / f"joined-{node_id}"
    env = {
        **cluster.base_env(),
        "RINGRIFT_INSTANCE_ID": node_id,
        "RINGRIFT_AGENT__NODE_ID": node_id,
        "RINGRIFT_AGENT__DATA_DIR": str(home / "data"),
        "RINGRIFT_AGENT__TEMPLATES_FILE": str(PIPELINE_CATALOG),
        "RINGRIFT_SECURITY__CA_FILE": str(home / "certs/ca.pem"),
        "RINGRIFT_SECURITY__CERT_FILE": str(home / "certs/cert.pem"),
        "RINGRIFT_SECURITY__KEY_FILE": str(home / "certs/key.pem"),
        "RINGRIFT_SECURITY__RELOAD_SECONDS": "0.5",
        "RINGRIFT_SECURITY__RENEW_CHECK_SECONDS": "1",
        "RINGRIFT_SECURITY__JOIN_GATEWAY": f"127.0.0.1:{port}",
        "RINGRIFT_SECURITY__JOIN_CA_FINGERPRINT": fingerprint,
        "RINGRIFT_SECURITY__JOIN_TOKEN": token,
    }
    process = ServiceProcess("agent", home, env=env)
    cluster.processes[node_id] = process
    cluster.identities[node_id] = agent(node_id, CLUSTER)
    return process


async def _refused(process: ServiceProcess) -> str:
    with pytest.raises(RuntimeError) as failed:
        await asyncio.to_thread(process.start)
    assert process.process is not None and process.process.returncode == 2
    return str(failed.value)


async def test_a_node_joins_with_a_one_time_token_and_renews_its_certificate(cluster: LocalCluster) -> None:
    gateway = await _gateway(cluster)
    assert gateway.token_port > 0
    tokens = TokenStore(cluster.tokens_file)
    fingerprint = certificates.fingerprint(cluster.pki.ca_file.read_bytes())
    token = tokens.add_join(CLUSTER, "", 600)

    joined = _joining_agent(cluster, "far-node", token, fingerprint, gateway.token_port)
    await asyncio.to_thread(joined.start)
    cert_file = Path(joined.env["RINGRIFT_SECURITY__CERT_FILE"])
    first = await asyncio.to_thread(cert_file.read_bytes)
    (identity,) = certificates.identities(first)
    assert (identity.kind, identity.name, identity.cluster) == (Kind.AGENT, "far-node", CLUSTER)
    key_mode = (await asyncio.to_thread(Path(joined.env["RINGRIFT_SECURITY__KEY_FILE"]).stat)).st_mode
    assert key_mode & 0o777 == 0o600

    async def member() -> bool:
        async with gateway_client(cluster.pki, gateway.address) as client:
            reply = await client.list_nodes()
        return "far-node" in {n.node_id for n in reply.nodes}

    deadline = time.monotonic() + 15
    while not await member():
        assert time.monotonic() < deadline, "the joined node never became a member"
        await asyncio.sleep(0.2)

    # The token joined one node: a second use is refused, whoever tries.
    again = await _refused(_joining_agent(cluster, "second-node", token, fingerprint, gateway.token_port))
    assert "used already" in again
    # A wrong fingerprint: nothing is sent to a gateway the node cannot trust.
    fresh = tokens.add_join(CLUSTER, "", 600)
    wrong = await _refused(_joining_agent(cluster, "third-node", fresh, "sha256:" + "0" * 64, gateway.token_port))
    assert "fingerprint" in wrong
    # A token bound to one node does not join another (and stays usable for its own).
    bound = tokens.add_join(CLUSTER, "bound-node", 600)
    other = await _refused(_joining_agent(cluster, "not-bound-node", bound, fingerprint, gateway.token_port))
    assert "for node bound-node" in other
    await asyncio.to_thread(_joining_agent(cluster, "bound-node", bound, fingerprint, gateway.token_port).start)

    # Renewal: a new certificate (new key) before the old one expires, picked up without a restart.
    deadline = time.monotonic() + CERT_SECONDS * 2
    while (await asyncio.to_thread(cert_file.read_bytes)) == first:
        assert time.monotonic() < deadline, "the certificate was not renewed"
        await asyncio.sleep(0.5)
    renewed = x509.load_pem_x509_certificate(await asyncio.to_thread(cert_file.read_bytes))
    assert renewed.not_valid_after_utc > x509.load_pem_x509_certificate(first).not_valid_after_utc
    await asyncio.sleep(CERT_SECONDS)  # past the first certificate's end
    async with cluster.pki.channel(joined.address, agent("far-node", CLUSTER), service("jobs", CLUSTER)) as channel:
        info = await agent_pb2_grpc.NodeAgentServiceStub(channel).GetNodeInfo(agent_pb2.GetNodeInfoRequest(), timeout=5)
    assert info.node.node_id == "far-node" and joined.process is not None and joined.process.poll() is None
    # Every join went through the audit trail as an anonymous call naming the node asked for.
    audit = [e for e in await cluster.events() if e.attributes.get("method", "").endswith("/JoinCluster")]
    assert {e.attributes["code"] for e in audit} == {"OK", "UNAUTHENTICATED", "PERMISSION_DENIED"}
