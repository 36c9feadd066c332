"""Why a job would run where, and why self-play is allocated as it is."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ringrift.nodes.v1 import nodes_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli.commands.jobs import job_spec
from ringrift_cli.console import console
from ringrift_cli.gateway import DIRECTORY, GATEWAY, JSON, TIMEOUT, gateway_call
from ringrift_cli.render import print_json
from ringrift_contracts.tables import EnumTable

REJECTIONS = EnumTable(nodes_pb2.RejectionReason, "REJECTION_REASON_")
explain_app = typer.Typer(help="Why a job would run where, and why self-play is allocated as it is.")


@explain_app.command("placement")
def explain_placement(
    kind: str = typer.Argument(..., help="job kind, e.g. train"),
    config: str = typer.Option("", help="config key"),
    param: list[str] = typer.Option([], "--param", "-p", help="template parameter key=value (repeatable)"),
    node: list[str] = typer.Option([], "--node", help="only these nodes (repeatable)"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Score every node for a job, with the reason a node is rejected."""
    request = orchestrator_pb2.ExplainPlacementRequest(spec=job_spec(kind, config, param, node))
    reply = gateway_call(gateway, directory, timeout, lambda client, t: client.explain_placement(request, timeout=t))
    if as_json:
        print_json(list(reply.scores))
        return
    table = Table(
        "rank",
        "node",
        "usable",
        "effective power",
        "GPU",
        "CPU",
        "load",
        "locality",
        "why not",
        title=f"placement of a {kind} job",
    )
    for score in sorted(reply.scores, key=lambda s: (not s.usable, s.rank)):
        reason = REJECTIONS.name(score.rejection_reason)
        table.add_row(
            str(score.rank) if score.usable else "-",
            score.node_id,
            "yes" if score.usable else "no",
            f"{score.effective_power:.2f}",
            f"{score.gpu_power:.2f}",
            f"{score.cpu_power:.2f}",
            f"{score.load_score:.2f}",
            f"{score.locality_bonus:.2f}",
            "" if score.usable else f"{reason}: {score.rejection_detail}"[:80],
        )
    console.print(table)


@explain_app.command("allocation")
def explain_allocation(
    node: str = typer.Option("", help="also the target job count of this node"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Self-play priority of every config, term by term."""
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda client, t: client.explain_allocation(orchestrator_pb2.ExplainAllocationRequest(node_id=node), timeout=t),
    )
    if as_json:
        print_json(list(reply.terms))
        return
    table = Table(
        "config",
        "games",
        "base",
        "elo",
        "curriculum",
        "starved",
        "bootstrap",
        "gap x",
        "penalty x",
        "cpu s/game",
        "gain/gen",
        "cost x",
        "diversity",
        "priority",
        "share",
        "note",
        title="self-play allocation",
    )
    for t in sorted(reply.terms, key=lambda t: -t.probability):
        note = (
            t.excluded_reason or ("plateau" if t.plateau else "") or ("starvation floor" if t.starvation_floor else "")
        )
        table.add_row(
            t.config_key,
            str(t.games_total),
            f"{t.base:.2f}",
            str(t.elo_boost),
            str(t.curriculum_boost),
            str(t.data_starvation_boost),
            str(t.bootstrap_boost),
            f"{t.elo_gap_factor:.2f}",
            f"{t.promotion_penalty_factor:.2f}",
            f"{t.cpu_seconds_per_game:.2f}" if t.cpu_seconds_per_game else "-",
            f"{t.expected_gain_elo:.0f}",
            f"{t.cost_factor:.2f}",
            str(t.diversity_bonus),
            f"{t.effective_priority:.2f}",
            f"{t.probability:.0%}",
            note,
        )
    console.print(table)
