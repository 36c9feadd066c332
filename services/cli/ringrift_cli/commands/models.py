"""The registry and ratings: models, elo, train."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli.console import console, fail
from ringrift_cli.gateway import DIRECTORY, GATEWAY, JSON, TIMEOUT, gateway_call
from ringrift_cli.render import print_json, when
from ringrift_contracts.tables import MODEL_STATUSES

models_app = typer.Typer(help="The model registry: list (the default), rollback.")


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    config: str = typer.Option("", help="only this config key"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Models of the registry, with the best one per config (the default)."""
    if ctx.invoked_subcommand:
        return
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda client, t: client.list_models(orchestrator_pb2.ListModelsRequest(config_key=config), timeout=t),
    )
    if as_json:
        print_json(reply)
        return
    best = set(reply.best_model_by_config.values())
    table = Table("config", "gen", "model", "status", "games", "created", "reason", title="models (* best)")
    for m in sorted(reply.models, key=lambda m: (m.config_key, m.generation)):
        status = MODEL_STATUSES.name(m.status)
        table.add_row(
            m.config_key,
            str(m.generation),
            m.model_id + (" *" if m.model_id in best else ""),
            status,
            str(m.training_games),
            when(m.created_at),
            m.status_reason[:60],
        )
    console.print(table)


@models_app.command()
def show(
    model_id: str = typer.Argument(..., help="the model id (see `ringrift models`)"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """One model with its lineage: parent, training job and file(s), and per self-play job
    the node and the games of its training window."""
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda client, t: client.list_models(orchestrator_pb2.ListModelsRequest(), timeout=t),
    )
    found = next((m for m in reply.models if m.model_id == model_id), None)
    if found is None:
        fail(f"no model {model_id[:80]!r} in the registry: `ringrift models` lists them")
    if as_json:
        print_json(found)
        return
    best = found.model_id in set(reply.best_model_by_config.values())
    console.print(
        f"{found.model_id}{' (best)' if best else ''}: {found.config_key} generation {found.generation}, "
        f"{MODEL_STATUSES.name(found.status)} {found.status_reason[:80]}"
    )
    console.print(f"parent {found.parent_model_id or 'none'}; trained by job {found.training_job_id or '?'}")
    console.print(f"file {found.path} (sha256 {found.sha256[:16]}…) on {found.node_id or '?'}")
    console.print(f"training files: {', '.join(found.training_files) or 'not recorded'}")
    console.print(f"games: {found.training_games} in the window, {found.skipped_games} skipped by the export's checks")
    table = Table("self-play job", "node", "games", "skipped", title="where its games came from")
    for source in found.game_sources:
        table.add_row(source.job_id, source.node_id or "?", str(source.games), str(source.skipped))
    console.print(table)


@models_app.command()
def rollback(
    config: str = typer.Argument(..., help="config key whose best model moves back, e.g. square8_2p"),
    to: str = typer.Option("", "--to", help="the promoted model to make the best (default: the one before)"),
    reason: str = typer.Option("", help="why, kept in the models' status reasons"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Move the config's best model back to an earlier promoted one; the models promoted
    after it are archived and self-play follows the new best."""
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda client, t: client.rollback_model(
            orchestrator_pb2.RollbackModelRequest(config_key=config, to_model_id=to, reason=reason), timeout=t
        ),
    )
    if as_json:
        print_json(reply)
        return
    archived = ", ".join(reply.archived_model_ids) or "none"
    console.print(
        f"{config}: best is now {reply.best.model_id} (generation {reply.best.generation}); archived {archived}"
    )


def elo(
    config: str = typer.Option("", help="only this config key"),
    history: bool = typer.Option(False, "--history", help="every fit, not only the latest"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Ratings per config (maximum likelihood over all matches, anchored on random)."""
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda client, t: client.list_ratings(
            orchestrator_pb2.ListRatingsRequest(config_key=config, include_history=history), timeout=t
        ),
    )
    if as_json:
        print_json(reply)
        return
    table = Table("config", "player", "elo", "+-", "games", "fitted", title="ratings")
    for r in sorted(reply.ratings, key=lambda r: (r.config_key, r.fitted_at.seconds, -r.elo)):
        table.add_row(r.config_key, r.player, f"{r.elo:.0f}", f"{r.stderr:.0f}", str(r.games), when(r.fitted_at))
    console.print(table)


def train(
    config: str = typer.Argument(..., help="config key to train, e.g. square8_2p"),
    force: bool = typer.Option(False, help="train even if the config is not ready"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
) -> None:
    """Ask for training of a config; the leader starts it on its next round."""
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda client, t: client.trigger_training(
            orchestrator_pb2.TriggerTrainingRequest(config_key=config, force=force), timeout=t
        ),
    )
    console.print(reply.reason)


COMMANDS = [elo, train]
