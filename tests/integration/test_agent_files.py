"""The agent's data plane over real gRPC between two agent processes: manifests with
hashes and game counts, pulls that verify sha256, a transfer killed half way that
resumes from its offset, and paths that try to leave the data directory."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2
from ringrift_agent.adapters.files import sha256_of
from ringrift_reference.data import write_games
from ringrift_reference.players import RandomPlayer, play_game
from ringrift_runtime.grpc.status import field_violations
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.security.identity import agent, service
from ringrift_runtime.testing.pki import TestPki
from tests.fakes.state import serve_issued_epochs

PKI: TestPki | None = None
SYNC = service("sync", "test")  # who asks agents for manifests and pulls in these tests


@pytest.fixture(autouse=True)
def _test_pki(pki: TestPki) -> None:
    global PKI
    PKI = pki


def agent_process(tmp_path: Path, etcd: EtcdServer, node_id: str, state: str, **env: str) -> ServiceProcess:
    assert PKI is not None
    return ServiceProcess(
        "agent",
        tmp_path / node_id,
        env={
            **PKI.env(agent(node_id, "test")),
            "RINGRIFT_AGENT__NODE_ID": node_id,
            "RINGRIFT_AGENT__DATA_DIR": str(tmp_path / node_id / "data"),
            "RINGRIFT_ENDPOINTS__JOBS": "127.0.0.1:9",  # job events are not part of this test
            "RINGRIFT_ENDPOINTS__STATE": state,  # which epochs were issued
            "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
            "RINGRIFT_METRICS__ENABLED": "false",
            **env,
        },
    )


@pytest.fixture
async def issued(pki: TestPki):
    """StateService as agents ask it which epochs were issued."""
    async with serve_issued_epochs(pki, 1) as (_, address):
        yield address


@pytest.fixture
async def agents(etcd: EtcdServer, tmp_path: Path, issued: str):
    source = agent_process(tmp_path, etcd, "source", issued)
    target = agent_process(tmp_path, etcd, "target", issued, RINGRIFT_METRICS__ENABLED="true")
    try:
        await asyncio.gather(asyncio.to_thread(source.start), asyncio.to_thread(target.start))
        await asyncio.gather(_registered(etcd, source), _registered(etcd, target))  # pulls read only from members
        yield source, target
    finally:
        await asyncio.gather(asyncio.to_thread(source.stop), asyncio.to_thread(target.stop))


def stub(process: ServiceProcess):
    """The agent's stub over mutual TLS, as the sync service."""
    assert PKI is not None
    node = agent(process.env["RINGRIFT_AGENT__NODE_ID"], "test")
    return agent_pb2_grpc.NodeAgentServiceStub(PKI.channel(process.address, node, SYNC))


def pull_counts(process: ServiceProcess) -> dict[tuple[str, str], float]:
    """ringrift_agent_pulls_total of an agent, by (via, outcome)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    counts = {}
    for family in text_string_to_metric_families(text):
        if family.name == "ringrift_agent_pulls":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["via"], sample.labels["outcome"]] = sample.value
    return counts


def pull_request(source: ServiceProcess, path: str, data_file: Path, transfer_id: str = "t1", rate: int = 0):
    return agent_pb2.PullFileRequest(
        source_address=source.address,
        source_node_id=source.env["RINGRIFT_AGENT__NODE_ID"],
        path=path,
        sha256=sha256_of(data_file),
        size_bytes=data_file.stat().st_size,
        transfer_id=transfer_id,
        epoch=1,
        max_bytes_per_second=rate,
    )


async def test_manifest_lists_data_files_with_hashes_and_game_counts(agents, tmp_path):
    source, _ = agents
    data = tmp_path / "source" / "data"
    records = [play_game("square6_2p", [RandomPlayer(), RandomPlayer()], s) for s in range(7)]
    write_games(data / "games/square6_2p/job-1.db", records, "gen0", {})
    (data / "models/square8_2p").mkdir(parents=True)
    (data / "models/square8_2p/m1.npz").write_bytes(b"model")
    (data / "models/square8_2p/m1.npz.json").write_text("{}")  # sidecar: not data
    (data / "games/square6_2p/job-2.db.partial").write_bytes(b"half")  # in flight: not listed
    manifest = await stub(source).GetManifest(agent_pb2.GetManifestRequest(), timeout=10)
    files = {f.path: f for f in manifest.files}
    assert set(files) == {"games/square6_2p/job-1.db", "models/square8_2p/m1.npz"}
    games = files["games/square6_2p/job-1.db"]
    assert (games.kind, games.config_key, games.game_count) == (common_pb2.FILE_KIND_GAMES, "square6_2p", 7)
    assert games.sha256 == sha256_of(data / games.path) and games.size_bytes == (data / games.path).stat().st_size
    model = files["models/square8_2p/m1.npz"]
    assert (model.kind, model.config_key, model.game_count) == (common_pb2.FILE_KIND_MODEL, "square8_2p", 0)
    assert 0 < manifest.disk_percent < 100 and manifest.disk_free_bytes > 0
    only_models = await stub(source).GetManifest(
        agent_pb2.GetManifestRequest(kind=common_pb2.FILE_KIND_MODEL), timeout=10
    )
    assert [f.path for f in only_models.files] == ["models/square8_2p/m1.npz"]


async def test_a_pull_copies_and_verifies_and_a_second_pull_moves_nothing(agents, tmp_path):
    source, target = agents
    src = tmp_path / "source/data/training/square6_2p/t.npz"
    src.parent.mkdir(parents=True)
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    request = pull_request(source, "training/square6_2p/t.npz", src)
    progress = [p async for p in stub(target).PullFile(request, timeout=30)]
    assert progress[-1].completed and progress[-1].bytes_done == src.stat().st_size
    copied = tmp_path / "target/data/training/square6_2p/t.npz"
    assert copied.read_bytes() == src.read_bytes()
    again = [p async for p in stub(target).PullFile(request, timeout=30)]
    assert len(again) == 1 and again[0].completed and not again[0].resumed
    assert await asyncio.to_thread(pull_counts, target) == {("stream", "completed"): 1, ("none", "completed"): 1}


async def test_a_transfer_killed_half_way_resumes_from_its_offset(agents, tmp_path):
    source, target = agents
    src = tmp_path / "source/data/games/square8_2p/big.db"
    src.parent.mkdir(parents=True)
    size = 8 * 1024 * 1024
    src.write_bytes(os.urandom(size))
    request = pull_request(source, "games/square8_2p/big.db", src, rate=4 * 1024 * 1024)
    partial = tmp_path / "target/data/games/square8_2p/big.db.partial"
    seen = 0
    with pytest.raises(grpc.aio.AioRpcError):
        async for progress in stub(target).PullFile(request, timeout=30):
            seen = progress.bytes_done
            if seen >= size // 4:
                target.signal(signal.SIGKILL)  # the target dies mid-transfer
    assert 0 < partial.stat().st_size < size
    assert source.process.poll() is None, "the source must survive its reader's death"
    await asyncio.to_thread(target.stop)
    await asyncio.to_thread(target.start)
    # It once died with SIGSEGV here: the access log read context.peer() of a released call.
    assert source.process.poll() is None, f"the source exited with {source.process.returncode}"
    request.max_bytes_per_second = 0
    progress = [p async for p in stub(target).PullFile(request, timeout=30)]
    assert progress[-1].completed and all(p.resumed for p in progress)
    final = tmp_path / "target/data/games/square8_2p/big.db"
    assert sha256_of(final) == sha256_of(src) and not partial.exists()


async def test_a_corrupt_partial_is_caught_by_the_sha256_check(agents, tmp_path):
    source, target = agents
    src = tmp_path / "source/data/models/square6_2p/m.npz"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"A" * 5000)
    partial = tmp_path / "target/data/models/square6_2p/m.npz.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"B" * 1000)  # not a prefix of the source file
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        [p async for p in stub(target).PullFile(pull_request(source, "models/square6_2p/m.npz", src), timeout=30)]
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not (tmp_path / "target/data/models/square6_2p/m.npz").exists() and not partial.exists()
    done = [p async for p in stub(target).PullFile(pull_request(source, "models/square6_2p/m.npz", src), timeout=30)]
    assert done[-1].completed and not done[-1].resumed


OUTSIDE = [
    "../secret",
    "/etc/passwd",
    "games/../../secret",
    "games/escape/secret",  # a symlink out of the data directory
    "games/inward/fence.json",  # a symlink into the agent's own files
    "agent/fence.json",  # the agent's own files: its fence, outbox, job states
    "agent/outbox/zzzz.json",
    "jobs/j/1/state.json",
    ".",
    "",
]


@pytest.mark.parametrize("path", OUTSIDE)
async def test_paths_outside_the_data_subtrees_are_refused(agents, tmp_path, path):
    source, target = agents
    (tmp_path / "secret").write_text("not yours")
    for side in ("source", "target"):
        games = tmp_path / side / "data/games"
        games.mkdir(parents=True, exist_ok=True)
        if not (games / "escape").exists():
            (games / "escape").symlink_to(tmp_path)  # a symlink that leads out
            (games / "inward").symlink_to(tmp_path / side / "data/agent")  # one that leads to the agent's files
    fence = tmp_path / "target/data/agent/fence.json"
    before = fence.read_bytes() if fence.exists() else b""
    with pytest.raises(grpc.aio.AioRpcError) as read:
        [c async for c in stub(source).ReadFile(agent_pb2.ReadFileRequest(path=path), timeout=10)]
    assert read.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as opened:
        await stub(source).OpenFileStream(agent_pb2.OpenFileStreamRequest(path=path), timeout=10)
    assert opened.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = agent_pb2.PullFileRequest(
        source_address=source.address,
        source_node_id="source",
        path=path,
        sha256="0" * 64,
        size_bytes=9,
        transfer_id="t",
        epoch=1,
    )
    with pytest.raises(grpc.aio.AioRpcError) as pull:
        [p async for p in stub(target).PullFile(request, timeout=10)]
    assert pull.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "path" in field_violations(pull.value), pull.value.details()
    manifest = await stub(source).GetManifest(agent_pb2.GetManifestRequest(), timeout=10)
    assert all("escape" not in f.path and "inward" not in f.path for f in manifest.files)
    assert not list((tmp_path / "target").rglob("secret*"))
    assert (fence.read_bytes() if fence.exists() else b"") == before


async def _registered(etcd: EtcdServer, process: ServiceProcess) -> None:
    """Until the agent's membership key holds its address."""
    key = f"/ringrift/test/nodes/{process.env['RINGRIFT_AGENT__NODE_ID']}"
    for _ in range(200):
        value = await asyncio.to_thread(lambda: etcd.etcdctl("get", key, "--print-value-only").stdout)
        if process.address.encode() in value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} never held {process.address}")


async def test_a_pull_reads_only_from_a_current_members_address(agents, etcd, tmp_path):
    source, target = agents
    src = tmp_path / "source/data/games/square6_2p/g.db"
    src.parent.mkdir(parents=True)
    src.write_bytes(os.urandom(4096))
    await _registered(etcd, source)
    for node_id, address in (("source", target.address), ("source", "127.0.0.1:9"), ("nobody", source.address)):
        request = pull_request(source, "games/square6_2p/g.db", src)
        request.source_node_id, request.source_address = node_id, address
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            [p async for p in stub(target).PullFile(request, timeout=10)]
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "source_address" in field_violations(refused.value), refused.value.details()
    assert not (tmp_path / "target/data/games/square6_2p").exists()
    done = [p async for p in stub(target).PullFile(pull_request(source, "games/square6_2p/g.db", src), timeout=30)]
    assert done[-1].completed


async def test_a_partial_file_planted_as_a_symlink_is_never_written_through(agents, etcd, tmp_path):
    source, target = agents
    src = tmp_path / "source/data/models/square6_2p/m.npz"
    src.parent.mkdir(parents=True)
    src.write_bytes(os.urandom(4096))
    victim = tmp_path / "target/data/agent/victim"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_bytes(b"keep")
    partial = tmp_path / "target/data/models/square6_2p/m.npz.partial"
    partial.parent.mkdir(parents=True)
    partial.symlink_to(victim)
    await _registered(etcd, source)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        [p async for p in stub(target).PullFile(pull_request(source, "models/square6_2p/m.npz", src), timeout=30)]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert victim.read_bytes() == b"keep"


async def test_a_source_killed_mid_stream_leaves_a_prefix_the_next_pull_resumes(agents, etcd, tmp_path):
    source, target = agents
    src = tmp_path / "source/data/games/square8_2p/big.db"
    src.parent.mkdir(parents=True)
    size = 32 * 1024 * 1024  # more than the socket buffers hold once the pull is under way
    await asyncio.to_thread(src.write_bytes, os.urandom(size))
    opened = await stub(source).OpenFileStream(agent_pb2.OpenFileStreamRequest(path="games/square8_2p/big.db"))
    assert opened.port > 0 and opened.count == size  # pulls between these agents take the byte stream
    request = pull_request(source, "games/square8_2p/big.db", src, rate=16 * 1024 * 1024)
    partial = tmp_path / "target/data/games/square8_2p/big.db.partial"
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        async for progress in stub(target).PullFile(request, timeout=30):
            if progress.bytes_done >= size // 4 and source.process.poll() is None:
                source.signal(signal.SIGKILL)  # the source dies mid-stream
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value.details()
    assert await asyncio.to_thread(pull_counts, target) == {("stream", "failed"): 1}
    assert target.process.poll() is None
    assert 0 < partial.stat().st_size < size
    await asyncio.to_thread(source.stop)
    await asyncio.to_thread(source.start)
    await _registered(etcd, source)
    retry = pull_request(source, "games/square8_2p/big.db", src)  # the source's new address
    progress = [p async for p in stub(target).PullFile(retry, timeout=30)]
    assert progress[-1].completed and all(p.resumed for p in progress)
    final = tmp_path / "target/data/games/square8_2p/big.db"
    assert sha256_of(final) == sha256_of(src) and not partial.exists()


async def test_an_agent_without_byte_streams_pulls_and_serves_over_grpc(agents, etcd, tmp_path, issued):
    source, _ = agents
    grpc_only = agent_process(
        tmp_path, etcd, "grpc-only", issued, RINGRIFT_AGENT__FILE_STREAM_PORT="-1", RINGRIFT_METRICS__ENABLED="true"
    )
    await asyncio.to_thread(grpc_only.start)
    await _registered(etcd, grpc_only)
    try:
        src = tmp_path / "source/data/training/square6_2p/t.npz"
        src.parent.mkdir(parents=True)
        src.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
        progress = [
            p
            async for p in stub(grpc_only).PullFile(pull_request(source, "training/square6_2p/t.npz", src), timeout=30)
        ]
        pulled = tmp_path / "grpc-only/data/training/square6_2p/t.npz"
        assert progress[-1].completed and pulled.read_bytes() == src.read_bytes()
        assert await asyncio.to_thread(pull_counts, grpc_only) == {("grpc", "completed"): 1}
        offered = await stub(grpc_only).OpenFileStream(
            agent_pb2.OpenFileStreamRequest(path="training/square6_2p/t.npz", offset=5)
        )
        assert (offered.port, offered.token, offered.count, offered.sha256) == (
            0,
            "",
            src.stat().st_size - 5,
            sha256_of(src),
        )
        pulled.rename(pulled.with_name("u.npz"))  # a file only the gRPC-only agent has, under a new name
        back = pull_request(grpc_only, "training/square6_2p/u.npz", pulled.with_name("u.npz"))
        progress = [p async for p in stub(source).PullFile(back, timeout=30)]
        assert progress[-1].completed
        assert (tmp_path / "source/data/training/square6_2p/u.npz").read_bytes() == src.read_bytes()
    finally:
        await asyncio.to_thread(grpc_only.stop)
