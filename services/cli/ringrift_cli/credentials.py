"""Who the command line is to the gateway: a client certificate (the local cluster's
administrator by default, under ``<dir>/certs``), a bearer token on the gateway's token
port, or nothing at all against a cluster that runs insecure. Chosen once per command
by the global options (``ringrift --cert ... status``) or RINGRIFT_CLI_* variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ringrift_cli.console import fail
from ringrift_cli.local_cluster import CERTS_DIR, admin_of, read_cluster_file
from ringrift_runtime.security import pki
from ringrift_runtime.security.directory import file_name
from ringrift_runtime.security.identity import any_gateway
from ringrift_runtime.security.tls import CertFiles, channel_credentials
from ringrift_runtime.settings import SettingsError, load_settings_of
from ringrift_settings import RingriftSettings


@dataclass
class Options:
    """The global options, set by the app's callback."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None
    insecure: bool = False


OPTIONS = Options()


def _local_files(directory: Path) -> CertFiles | None:
    try:
        description = read_cluster_file(directory)
    except FileNotFoundError:
        return None
    certs = Path(description.get("certs", directory / CERTS_DIR))
    name = file_name(admin_of(description.get("cluster", "local")))
    files = CertFiles(certs / "ca.pem", certs / f"{name}.pem", certs / f"{name}-key.pem")
    return files if files.cert.exists() else None


def _process_files() -> CertFiles | None:
    """The certificate of the process this runs beside (RINGRIFT_SECURITY__*, as in its
    container): an operator's command inside a gateway's container acts as that gateway."""
    try:
        security = load_settings_of(RingriftSettings).security
    except SettingsError:
        return None
    if security.insecure or not (security.ca_file and security.cert_file and security.key_file):
        return None
    return CertFiles(security.ca_file, security.cert_file, security.key_file)


def channel(address: str, directory: Path) -> Any:
    """A channel to the gateway at ``address`` with the credentials the options name."""
    if OPTIONS.insecure:
        return grpc.aio.insecure_channel(address)
    if OPTIONS.token:
        if OPTIONS.ca is None:
            fail("a token needs the cluster's CA certificate to check the gateway: pass --ca ca.pem", 2)
        credentials = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(OPTIONS.ca.read_bytes()), grpc.access_token_call_credentials(OPTIONS.token)
        )
        return grpc.aio.secure_channel(address, credentials)
    if OPTIONS.cert or OPTIONS.key or OPTIONS.ca:
        if not (OPTIONS.cert and OPTIONS.key and OPTIONS.ca):
            fail("a client certificate needs all of --ca, --cert and --key", 2)
        files = CertFiles(OPTIONS.ca, OPTIONS.cert, OPTIONS.key)
    else:
        local = _local_files(directory) or _process_files()
        if local is None:
            fail(
                f"no credentials: no local cluster in {directory} (start one with `ringrift up`, or pass --dir); "
                "for another cluster pass --ca/--cert/--key (from `ringrift certs issue`) or --token",
                2,
            )
        files = local
    try:
        identities = pki.identities(files.cert.read_bytes())
        credentials = channel_credentials(files)
    except (OSError, ValueError) as exc:
        fail(f"cannot use the certificate {files.cert}: {exc}", 2)
    if not identities:
        fail(f"{files.cert} names no RingRift identity (make one with `ringrift certs issue`)", 2)
    options = [("grpc.ssl_target_name_override", any_gateway(identities[0].cluster))]
    return grpc.aio.secure_channel(address, credentials, options=options)
