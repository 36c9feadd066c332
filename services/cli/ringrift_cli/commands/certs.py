"""The cluster's CA and credentials: `ringrift certs init`, `issue`, `token`, `fingerprint`.
Keys never leave the folder; a bearer token is printed once and stored only as a hash."""

from __future__ import annotations

from pathlib import Path

import typer

from ringrift_cli.console import console, fail
from ringrift_contracts.ids import node_id_problem
from ringrift_runtime.security.directory import RENEW_WITHIN_DAYS, CertificateDirectory, needs_issuing
from ringrift_runtime.security.identity import Identity, Kind, Role
from ringrift_runtime.security.tokens import TokenStore

certs_app = typer.Typer(help="The cluster's certificate authority, certificates and tokens.", no_args_is_help=True)
CERTS = typer.Option(Path("./ringrift-local/certs"), "--dir", help="folder of the CA and the certificates")


@certs_app.command("init")
def init(
    cluster: str = typer.Option(..., "--cluster", help="the cluster's name (etcd.cluster_name)"),
    directory: Path = CERTS,
) -> None:
    """Create the cluster's CA (never overwrites one) and print its fingerprint."""
    folder = CertificateDirectory(directory)
    try:
        created = folder.init(cluster)
    except (FileExistsError, ValueError) as exc:
        fail(str(exc), 2)
    console.print(f"{'created' if created else 'kept'} the CA in {folder.ca_file}")
    console.print(f"fingerprint: {folder.fingerprint()}")


@certs_app.command("issue")
def issue(
    kind: Kind = typer.Argument(..., help="service, gateway, agent or user"),
    name: str = typer.Argument(..., help="service name, gateway instance, node id or user name"),
    cluster: str = typer.Option(..., "--cluster", help="the cluster's name"),
    role: Role | None = typer.Option(None, "--role", help="a user's role: viewer, operator or admin"),
    host: list[str] = typer.Option([], "--host", help="a host name or address the process serves on (repeat)"),
    days: int = typer.Option(90, "--days", min=1, max=3650, help="validity"),
    directory: Path = CERTS,
) -> None:
    """Issue a certificate whose SAN URI names the identity."""
    folder = CertificateDirectory(directory)
    try:
        identity = Identity(kind, name, cluster, role)
        files = folder.issue(identity, host, days)
    except (ValueError, FileNotFoundError) as exc:
        fail(f"cannot issue: {exc}", 2)
    console.print(f"{identity.uri}\n  certificate {files.cert}\n  key         {files.key}\n  CA          {files.ca}")


def parse_holder(text: str, cluster: str) -> Identity:
    """``kind:name`` (``user:<role>:<name>`` for a user) as an identity."""
    parts = text.split(":")
    try:
        if len(parts) == 3 and parts[0] == Kind.USER.value:
            return Identity(Kind.USER, parts[2], cluster, Role(parts[1]))
        if len(parts) == 2 and parts[0] != Kind.USER.value:
            return Identity(Kind(parts[0]), parts[1], cluster)
    except ValueError:
        pass
    raise ValueError(f"{text[:60]!r} is not kind:name (service, gateway, agent) or user:<role>:<name>")


def holder_hosts(pairs: list[str], names: list[str]) -> dict[str, list[str]]:
    """``--holder-host NAME=HOST`` values by holder name (each NAME one of the holders)."""
    found: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, host = pair.partition("=")
        if not sep or not name or not host:
            raise ValueError(f"--holder-host wants NAME=HOST, got {pair[:60]!r}")
        if name not in names:
            raise ValueError(f"--holder-host names {name[:60]!r}, which is not one of the holders")
        found.setdefault(name, []).append(host)
    return found


@certs_app.command("ensure")
def ensure(
    holders: list[str] = typer.Argument(
        ..., help="kind:name (service:state, gateway:gateway-1, agent:node-1) or user:<role>:<name>"
    ),
    cluster: str = typer.Option(..., "--cluster", help="the cluster's name"),
    host: list[str] = typer.Option([], "--host", help="another host name every certificate serves on (repeat)"),
    holder_host: list[str] = typer.Option(
        [],
        "--holder-host",
        help="NAME=HOST: another host name the certificate of holder NAME serves on (repeat; "
        "e.g. etcd=etcd-2 for each member of a three-member etcd sharing etcd's certificate)",
    ),
    ca_key: Path | None = typer.Option(None, "--ca-key", help="the CA's key file, when not beside the certificates"),
    per_holder: bool = typer.Option(
        False, "--per-holder", help="each holder's ca.pem, cert.pem and key.pem in a folder <dir>/<name>/ of its own"
    ),
    renew_within_days: float = typer.Option(
        RENEW_WITHIN_DAYS, "--renew-within-days", min=0, help="issue again a certificate that expires this soon"
    ),
    directory: Path = CERTS,
) -> None:
    """The CA and a certificate per holder, each made only when missing or expiring soon
    (safe to run at every start: compose's certificate job does; running processes reload
    renewed files). A process's name is one of its hosts, with localhost and 127.0.0.1."""
    folder = CertificateDirectory(directory, ca_key)
    try:
        identities = [parse_holder(text, cluster) for text in holders]
        names = [identity.name for identity in identities]
        own_hosts = holder_hosts(holder_host, names)
        if per_holder and len(set(names)) != len(names):
            raise ValueError("--per-holder needs a distinct name per holder (each is a folder)")
        created = folder.init(cluster)
        made = []
        for identity in identities:
            hosts = [identity.name, *own_hosts.get(identity.name, []), *host, "localhost", "127.0.0.1"]
            own = directory / identity.name
            files = folder.files(identity)
            cert, key = (own / "cert.pem", own / "key.pem") if per_holder else (files.cert, files.key)
            if needs_issuing(cert, key, renew_within_days):
                if per_holder:
                    folder.issue_into(identity, hosts, own)
                else:
                    folder.issue(identity, hosts)
                made.append(str(identity))
    except (ValueError, FileExistsError, FileNotFoundError, OSError) as exc:
        fail(f"cannot make the certificates: {exc}", 2)
    console.print(f"CA {'created' if created else 'kept'}: {folder.ca_file}  fingerprint {folder.fingerprint()}")
    console.print(f"issued {len(made)} ({', '.join(made) or 'all were there'})", highlight=False)


@certs_app.command("token")
def token(
    name: str = typer.Argument(..., help="the user the token stands for"),
    cluster: str = typer.Option(..., "--cluster", help="the cluster's name"),
    role: Role = typer.Option(Role.VIEWER, "--role", help="viewer, operator or admin"),
    tokens_file: Path = typer.Option(
        Path("./ringrift-local/certs/tokens.json"), "--tokens-file", help="the gateway's security.tokens_file"
    ),
    days: int = typer.Option(90, "--days", min=1, max=3650, help="validity"),
) -> None:
    """A bearer token for a user, for the gateway's token port. Printed once; only its hash is kept."""
    try:
        identity = Identity(Kind.USER, name, cluster, role)
    except ValueError as exc:
        fail(str(exc), 2)
    secret = TokenStore(tokens_file).add(identity, days * 86400)
    console.print(secret, soft_wrap=True, highlight=False)


@certs_app.command("join-token")
def join_token(
    cluster: str = typer.Option(..., "--cluster", help="the cluster's name"),
    node_id: str = typer.Option("", "--node-id", help="the only node that may join with it (default: any one node)"),
    minutes: int = typer.Option(60, "--minutes", min=1, max=7 * 24 * 60, help="how long it stays valid"),
    tokens_file: Path = typer.Option(
        Path("./ringrift-local/certs/tokens.json"), "--tokens-file", help="the gateways' security.tokens_file"
    ),
) -> None:
    """A one-time token a node on another machine joins with. Printed once; only its hash is kept.

    On the new machine: RINGRIFT_SECURITY__JOIN_GATEWAY=<gateway>:<token port>,
    RINGRIFT_SECURITY__JOIN_CA_FINGERPRINT=$(ringrift certs fingerprint),
    RINGRIFT_SECURITY__JOIN_TOKEN=<this token>, and where to keep the files
    (RINGRIFT_SECURITY__CA_FILE, __CERT_FILE, __KEY_FILE); then start ringrift-agent."""
    if node_id:
        problem = node_id_problem(node_id)
        if problem:
            fail(f"--node-id: {problem}", 2)
    try:
        Identity(Kind.AGENT, node_id or "any", cluster)
    except ValueError as exc:
        fail(str(exc), 2)
    secret = TokenStore(tokens_file).add_join(cluster, node_id, minutes * 60)
    console.print(secret, soft_wrap=True, highlight=False)


@certs_app.command("fingerprint")
def fingerprint(directory: Path = CERTS) -> None:
    """The CA's fingerprint (what a joining node pins the cluster by)."""
    try:
        console.print(CertificateDirectory(directory).fingerprint())
    except FileNotFoundError as exc:
        fail(str(exc), 2)
