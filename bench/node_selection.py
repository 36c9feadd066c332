"""How long does SelectBestNodeForJob take over 10,000 nodes?

Builds the selector's index from 10,000 varied nodes and times the placement decision
itself (the domain call the servicer makes), and the same call through gRPC on a real
socket. Reference in the same run: a plain Python loop that only reads one attribute of
each node (the floor for any per-node Python code).

    .venv/bin/python -m bench.node_selection [--nodes 10000] [--calls 2000] [--quick] [--json]

``--quick``: 200 calls of each kind (seconds). ``--json`` prints one object: nodes, calls,
best_gpu_ms_p50/_p99/_min/_max, best_cpu_ms_*, rank10_ms_*, grpc_ms_*, loop_ms_p50 (the
floor: a Python loop reading one field of every node).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from bench._common import figures, machine, percentile, summary, table
from ringrift.common.v1 import common_pb2
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift_nodes.api.servicer import NodeSelectorServicer
from ringrift_nodes.domain.model import JobNeeds, NodeView
from ringrift_nodes.domain.view import PlacementView
from ringrift_runtime.grpc.server import registration
from ringrift_runtime.testing.inprocess import serve_in_process
from ringrift_settings import NodeSelectorSettings, RingriftSettings

MODELS = ["NVIDIA A100", "NVIDIA H100", "RTX 4090", "RTX 3060", ""]


class _Members:
    def __init__(self) -> None:
        self.revision = 1

    def values(self) -> dict:
        return {}


def build(nodes: int) -> PlacementView:
    rng = random.Random(1)
    view = PlacementView(NodeSelectorSettings())
    for i in range(nodes):
        model = rng.choice(MODELS)
        view.upsert(
            NodeView(
                f"n{i}",
                gpu_model=model,
                gpu_count=rng.randint(1, 8) if model else 0,
                cpu_cores=rng.choice([16, 32, 64]),
                free_ram_mb=rng.choice([16, 64, 256]) * 1024,
                cpu_percent=rng.random() * 100,
                memory_percent=rng.random() * 90,
                disk_percent=rng.random() * 90,
                selfplay_jobs=rng.randint(0, 8),
            )
        )
    return view


def timed(call, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def over_grpc(view: PlacementView, calls: int) -> list[float]:
    # Plaintext: this measures the selector behind gRPC, not TLS (bench/transfer.py and bench/dispatch.py do).
    settings = RingriftSettings(server={"port": 0}, metrics={"enabled": False}, security={"insecure": True})
    servicer = NodeSelectorServicer(view, _Members())
    async with serve_in_process([registration("ringrift.nodes.v1.NodeSelectorService", servicer)], settings) as host:
        import grpc

        async with grpc.aio.insecure_channel(host.address) as channel:
            stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)
            request = nodes_pb2.SelectBestNodeForJobRequest(
                spec=common_pb2.JobSpec(kind="selfplay", requirements=common_pb2.ResourceRequirements(needs_gpu=True))
            )
            for _ in range(50):
                await stub.SelectBestNodeForJob(request)
            samples = []
            for _ in range(calls):
                started = time.perf_counter()
                await stub.SelectBestNodeForJob(request)
                samples.append((time.perf_counter() - started) * 1000)
            return samples


def main(nodes: int, calls: int, as_json: bool = False) -> None:
    view = build(nodes)
    gpu, cpu = JobNeeds("selfplay", needs_gpu=True), JobNeeds("selfplay")
    timed(lambda: view.best(gpu, frozenset()), 50)  # warm-up
    ids = view.index.ids
    best_gpu = timed(lambda: view.best(gpu, frozenset()), calls)
    loop = timed(lambda: sum(len(i) for i in ids), 200)
    best_cpu = timed(lambda: view.best(cpu, frozenset()), calls)
    rank = timed(lambda: view.rank(gpu, 10, frozenset()), calls)
    remote = asyncio.run(over_grpc(view, calls))
    if as_json:
        result: dict[str, float] = {"nodes": nodes, "calls": calls, "loop_ms_p50": round(percentile(loop, 50), 3)}
        for prefix, values in (("best_gpu_ms", best_gpu), ("best_cpu_ms", best_cpu), ("rank10_ms", rank)):
            result.update(figures(prefix, values))
        result.update(figures("grpc_ms", remote))
        print(json.dumps(result))
        return
    rows = [
        (
            "select best, GPU job (ms)",
            summary(best_gpu),
            f"Python loop reading one field of {nodes} nodes: {summary(loop)}",
        ),
        ("select best, CPU job (ms)", summary(best_cpu), "—"),
        ("rank top 10 (ms)", summary(rank), "—"),
        ("SelectBestNodeForJob over gRPC (ms)", summary(remote), "—"),
    ]
    print(table(f"Node selection over {nodes} nodes — {machine()}", rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 calls of each kind")
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    main(args.nodes, 200 if args.quick else args.calls, args.json)
