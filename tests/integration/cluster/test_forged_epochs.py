"""Epochs nobody can forge, on a cluster of real processes over mutual TLS.

The first build's finding: one CancelJob to an agent with epoch 2**64-1, from a client
without credentials, was stored in the agent's fence; every dispatch to that node then
answered STALE_EPOCH, each leader resigned on it and leadership flapped for good. Here
that call (and its StateService twins) is made from every identity that is not the
leader, and leadership must keep one epoch for a minute while jobs keep running. Then
etcd is wiped and restarted under the running cluster (its revisions start again at 1):
one leader must come back and work."""

from __future__ import annotations

import asyncio
import shutil
import time

import grpc
import pytest

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2 as C
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime.security.identity import Identity, Role, agent, gateway, service, user
from tests.integration.cluster.conftest import CLUSTER, LocalCluster

FORGED = 2**62  # never issued, and within what is stored (past 2**63 - 1 is INVALID_ARGUMENT anywhere)
HOLD_SECONDS = 60


async def _cluster(cluster: LocalCluster) -> tuple[str, str]:
    """State, nodes, jobs, two gateways, two agents; (leader, follower)."""
    await cluster.start_state()
    await cluster.start("nodes", "nodes")
    await cluster.start("jobs", "jobs", RINGRIFT_JOBS__RETRY_BACKOFF_BASE_SECONDS="0.2")
    fast = {"RINGRIFT_GATEWAY__DISPATCH_INTERVAL_SECONDS": "0.2", "RINGRIFT_GATEWAY__REAP_INTERVAL_SECONDS": "1"}
    await cluster.start("gateway", "gw-a", **fast)
    await cluster.start("gateway", "gw-b", **fast)
    for node in ("node-1", "node-2"):
        await cluster.start_agent(node, RINGRIFT_AGENT__JOB_SLOTS="4")
    leader = (await cluster.wait_for_leader()).leader_id
    return leader, "gw-b" if leader == "gw-a" else "gw-a"


async def _run_jobs(cluster: LocalCluster, count: int, tag: str) -> None:
    """``count`` trivial jobs through JobService (as the gateway would submit them), each
    on either node, all succeeded."""
    spec = C.JobSpec(kind="sleep", params={"seconds": "0.05"}, requirements=C.ResourceRequirements())
    async with cluster.channel("jobs", gateway("gw-test", CLUSTER)) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        reply = await stub.SubmitJobs(
            jobs_pb2.SubmitJobsRequest(
                jobs=[jobs_pb2.SubmitJobRequest(spec=spec, idempotency_key=f"{tag}-{i}") for i in range(count)]
            ),
            timeout=10,
        )
        ids = [j.job_id for j in reply.jobs]
        deadline = time.monotonic() + 60
        while True:
            jobs = [(await stub.GetJob(jobs_pb2.GetJobRequest(job_id=j), timeout=5)).job for j in ids]
            if all(j.state == C.JOB_STATE_SUCCEEDED for j in jobs):
                return
            assert time.monotonic() < deadline, sorted({C.JobState.Name(j.state) for j in jobs})
            await asyncio.sleep(0.2)


async def _code(call) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


async def _forge_everything(cluster: LocalCluster, follower: str) -> dict[str, str]:
    """Every forged-epoch call, from every identity that is not the leader; code by call."""
    outcomes: dict[str, str] = {}
    callers: list[Identity | None] = [
        None,  # plaintext, no credentials at all
        agent("node-2", CLUSTER),
        gateway(follower, CLUSTER),
        user("admin", Role.ADMIN, CLUSTER),
        *(service(name, CLUSTER) for name in ("state", "nodes", "sync", "jobs", "selfplay", "training")),
    ]
    for caller in callers:
        label = str(caller) if caller else "plaintext"
        for node in ("node-1", "node-2"):
            cancel = agent_pb2.CancelJobRequest(job_id="no-such-job", epoch=FORGED)
            run = agent_pb2.RunJobRequest(
                job_id="forged-run", attempt=1, epoch=FORGED, spec=C.JobSpec(kind="sleep", params={"seconds": "0"})
            )
            async with _channel(cluster, node, caller) as channel:
                stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
                outcomes[f"{label} CancelJob@{node}"] = await _code(stub.CancelJob(cancel, timeout=5))
                outcomes[f"{label} RunJob@{node}"] = await _code(stub.RunJob(run, timeout=5))
        async with _channel(cluster, "state", caller) as channel:
            stub = state_pb2_grpc.StateServiceStub(channel)
            event = C.Event(type=C.EVENT_TYPE_NODE_JOINED, source="forger", epoch=2**62)
            calls = {
                "AdvanceEpoch": stub.AdvanceEpoch(
                    state_pb2.AdvanceEpochRequest(epoch=2**62, leader_id=label), timeout=5
                ),
                "PublishEvent": stub.PublishEvent(state_pb2.PublishEventRequest(event=event), timeout=5),
                "PersistState": stub.PersistState(
                    state_pb2.PersistStateRequest(namespace="loops", key="forged", value=b"x", epoch=2**62), timeout=5
                ),
                "ClaimEpoch": stub.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key="0000000000000001"), timeout=5),
            }
            for name, call in calls.items():
                outcomes[f"{label} {name}@state"] = await _code(call)
    return outcomes


def _channel(cluster: LocalCluster, process: str, caller: Identity | None):
    if caller is None:
        return grpc.aio.insecure_channel(cluster.processes[process].address)
    return cluster.channel(process, caller)


@pytest.mark.slow  # leadership is watched for HOLD_SECONDS
async def test_forged_epochs_from_every_identity_change_nothing_and_leadership_holds(cluster: LocalCluster) -> None:
    leader, follower = await _cluster(cluster)
    before = await cluster.wait_for_leader()
    await _run_jobs(cluster, 8, "before")

    outcomes = await _forge_everything(cluster, follower)
    accepted = {call: code for call, code in outcomes.items() if code == "OK"}
    assert accepted == {}, accepted
    # Refused as what they are: no credentials cannot connect; identities that may not
    # call are denied; JobService may call an agent but its forged epoch was never issued.
    assert {code for call, code in outcomes.items() if call.startswith("plaintext")} == {"UNAVAILABLE"}
    jobs_to_agents = {code for call, code in outcomes.items() if call.startswith("service:jobs") and "@node" in call}
    assert jobs_to_agents == {"FAILED_PRECONDITION"}
    for node in ("node-1", "node-2"):
        async with cluster.channel(node) as channel:
            info = await agent_pb2_grpc.NodeAgentServiceStub(channel).GetNodeInfo(agent_pb2.GetNodeInfoRequest())
        assert info.max_epoch_seen <= before.epoch, node  # nothing forged was remembered

    deadline = time.monotonic() + HOLD_SECONDS
    rounds = 0
    while time.monotonic() < deadline:
        now = await cluster.epoch()
        assert (now.epoch, now.leader_id) == (before.epoch, leader), "leadership moved after forged epochs"
        await _run_jobs(cluster, 2, f"during-{rounds}")  # dispatch to both nodes keeps working
        rounds += 1
        await asyncio.sleep(1)
    assert rounds >= 10
    lost = await cluster.events([C.EVENT_TYPE_LEADER_LOST])
    assert lost == []  # not one resignation


@pytest.mark.slow  # a failure scenario of 15 s: the default suite stays under its 15 minutes
async def test_an_etcd_wiped_under_a_running_cluster_leaves_one_working_leader(cluster: LocalCluster) -> None:
    """etcd loses everything (revisions start again at 1): the epochs StateService issued
    do not go back, so the next leader is not stale, and there is exactly one."""
    await _cluster(cluster)
    before = await cluster.wait_for_leader()
    await _run_jobs(cluster, 4, "before-wipe")

    await asyncio.to_thread(cluster.etcd.stop)
    await asyncio.to_thread(shutil.rmtree, cluster.etcd.data_dir)
    await asyncio.to_thread(cluster.etcd.start)

    after = await cluster.wait_for_leader(timeout=60, above=before.epoch)
    assert after.epoch > before.epoch
    await _run_jobs(cluster, 6, "after-wipe")  # the new leader dispatches to both re-registered nodes
    settled = await cluster.epoch()
    await asyncio.sleep(5)
    assert (await cluster.epoch()).epoch == settled.epoch  # one leader, not a flapping pair
    for name, process in cluster.processes.items():
        assert process.process is not None and process.process.poll() is None, f"{name} exited"


pytestmark = pytest.mark.timeout(400)
