"""The ``ringrift`` command line (typer + rich): the app and its commands. It reaches a
cluster only through the gateway's gRPC API (``ringrift_cli.gateway``)."""

from __future__ import annotations

from pathlib import Path

import typer

from ringrift_cli import credentials
from ringrift_cli.commands import certs, cluster, events, explain, jobs, local, loops, models

app = typer.Typer(help="RingRift Orchestrator: self-play training on a cluster.", no_args_is_help=True)


@app.callback()
def main(
    ca: Path | None = typer.Option(None, "--ca", envvar="RINGRIFT_CLI_CA", help="the cluster's CA certificate"),
    cert: Path | None = typer.Option(None, "--cert", envvar="RINGRIFT_CLI_CERT", help="your client certificate"),
    key: Path | None = typer.Option(None, "--key", envvar="RINGRIFT_CLI_KEY", help="its private key"),
    token: str | None = typer.Option(
        None, "--token", envvar="RINGRIFT_CLI_TOKEN", help="a bearer token (for the gateway's token port)"
    ),
    insecure: bool = typer.Option(False, "--insecure", help="plaintext, for a cluster that runs without TLS"),
) -> None:
    """Credentials for every command (default: the local cluster's administrator in --dir)."""
    credentials.OPTIONS = credentials.Options(ca, cert, key, token, insecure)


for module in (cluster, jobs, models, events, local):
    for command in module.COMMANDS:
        app.command()(command)
app.add_typer(cluster.nodes_app, name="nodes")
app.add_typer(models.models_app, name="models")
app.add_typer(loops.loops_app, name="loops")
app.add_typer(explain.explain_app, name="explain")
app.add_typer(certs.certs_app, name="certs")
