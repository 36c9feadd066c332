"""Composition root of a co-hosting process: StateService and the managers in one
interpreter (one machine's memory for one, not six), each still its own gRPC server on
its own port, with its own certificate, authorization table, health, metrics and etcd
registration; only their composition roots are imported. Agents and gateways always run
as their own processes, and compose keeps one service per container.

    ringrift-cohost --service state=state.toml --service nodes=nodes.toml ...

Each TOML file holds what differs between the services (its certificate files, instance
id, StateService's database); what they share comes from RINGRIFT_* variables."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ringrift_jobs.main import build as build_jobs
from ringrift_nodes.main import build as build_nodes
from ringrift_runtime.grpc.server import ServiceApp
from ringrift_runtime.process import run_services
from ringrift_selfplay.main import build as build_selfplay
from ringrift_settings import RingriftSettings
from ringrift_state.main import build as build_state
from ringrift_sync.main import build as build_sync
from ringrift_training.main import build as build_training

NAME = "cohost"
# In the order a cluster starts them: StateService first, then each manager.
BUILDS: dict[str, Callable[[RingriftSettings], ServiceApp]] = {
    "state": build_state,
    "nodes": build_nodes,
    "sync": build_sync,
    "jobs": build_jobs,
    "selfplay": build_selfplay,
    "training": build_training,
}


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_services(NAME, BUILDS, RingriftSettings, argv))
